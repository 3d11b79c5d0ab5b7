# capsa as a drop-in for Apptainer (issue 14, front end): the apptainer,
# singularity and run-singularity names and what --version says (parsed
# the way Snakemake and cwltool parse it), "./image.sif", the global flags
# (--quiet, --silent, --nocolor, -c), the option variables under CAPSA_,
# APPTAINER_ and SINGULARITY_ with Apptainer's precedence, options capsa
# refuses, test, run-help, inspect --all/--list-apps/--app, and Docker-
# format seccomp profiles (containers-common's default; includes/excludes
# on capabilities), as root, through the setuid starter and with --userns.

BIN=$CAPSA_PREFIX/bin
SIF=$WORK/bb.sif
cp "$FIXTURES/sif/busybox_amd64.sif" "$SIF"
chmod 0755 "$SIF"
D=$WORK/d
mkdir -p "$D" && echo from-host > "$D/f" && chmod -R a+rX "$D"

# ---- names and versions ------------------------------------------------------------
for n in apptainer singularity run-singularity; do
    expect_eq "make install: $n is a link to capsa" "capsa" "$(readlink "$BIN/$n")"
done
expect_eq "apptainer --version" "apptainer version 1.5.3" "$("$BIN/apptainer" --version)"
expect_eq "singularity --version" "singularity version 3.9.5" "$("$BIN/singularity" --version)"
expect_eq "apptainer version: the bare version, as Apptainer" "1.5.3" "$("$BIN/apptainer" version)"
expect_match "capsa version: capsa's and the Apptainer level" "^capsa version [0-9.]+ \(Apptainer 1\.5\.3 command line\)$" \
    "$("$CAPSA" version)"
# Snakemake (deployment/singularity.py): last word, parsed with
# packaging.version; apptainer needs >= 1.0.0, singularity >= 2.4.1.
snakemake_ok () {
    /usr/bin/python3 - "$1" <<'EOF'
import sys
from packaging.version import Version, InvalidVersion
v = sys.argv[1]
raw = v.rsplit(" ", 1)[-1].lstrip("v")
parsed = None
for end in range(len(raw), 0, -1):
    try:
        parsed = Version(raw[:end]); break
    except InvalidVersion:
        pass
ok = parsed is not None and (parsed >= Version("1.0.0") if v.startswith("apptainer") else parsed >= Version("2.4.1"))
sys.exit(0 if ok else 1)
EOF
}
# cwltool (singularity.py): "(.+) version ([0-9.]+)", every part an int.
cwltool_ok () {
    /usr/bin/python3 -c 'import re, sys
m = re.match(r"(.+) version ([0-9\.]+)", sys.argv[1])
sys.exit(0 if m and all(int(x) >= 0 for x in m.group(2).split(".")) and m.group(1) in ("apptainer", "singularity") else 1)' "$1"
}
for n in apptainer singularity; do
    v=$("$BIN/$n" --version)
    check "Snakemake accepts '$n --version' ($v)" snakemake_ok "$v"
    check "cwltool parses '$n --version' ($v)" cwltool_ok "$v"
done
if snakemake_ok "singularity version 1.5.3"; then fail "the Snakemake check can fail" "accepted singularity 1.5.3"; else
    pass "the Snakemake check can fail (singularity 1.5.3 is refused)"; fi

# A SIF runs itself: "#!/usr/bin/env run-singularity" (run-singularity is
# "--quiet run").
expect_eq "a SIF starts with the run-singularity line" "#!/usr/bin/env run-singularity" "$(head -c 31 "$SIF")"
OUT=$(cd "$WORK" && PATH=$BIN:$PATH ./bb.sif echo hi 2>&1); RC=$?
expect_eq "./image.sif ARGS as root" "0 hi" "$RC $OUT"
run_user "PATH=$BIN:\$PATH $SIF echo hi"
expect_eq "./image.sif ARGS as $TUSER (setuid)" "0 hi" "$RC $OUT"

# ---- global options ----------------------------------------------------------------
# A warning of the front end: APPTAINER_ and SINGULARITY_ disagree.
warn_env () { env APPTAINER_PWD=/ SINGULARITY_PWD=/tmp "$@"; }
OUT=$(warn_env "$CAPSA" exec "$IMG_DIR" pwd 2>&1)
expect_match "no flag: warnings are shown" "^WARNING: SINGULARITY_PWD and APPTAINER_PWD have different values" "$OUT"
expect_match "APPTAINER_PWD wins over SINGULARITY_PWD" "^/$" "$OUT"
OUT=$(warn_env "$CAPSA" --quiet exec "$IMG_DIR" pwd 2>&1)
expect_match "--quiet still shows warnings (as Apptainer)" "^WARNING:" "$OUT"
OUT=$(warn_env "$CAPSA" -s exec "$IMG_DIR" pwd 2>&1)
expect_eq "-s/--silent: errors only" "/" "$OUT"
OUT=$(warn_env APPTAINER_SILENT=1 "$CAPSA" exec "$IMG_DIR" pwd 2>&1)
expect_eq "APPTAINER_SILENT=1" "/" "$OUT"
OUT=$(warn_env "$BIN/singularity" --quiet --silent exec "$IMG_DIR" pwd 2>&1)
expect_match "--quiet --silent: --quiet wins (Apptainer's order)" "^WARNING:" "$OUT"
run "$CAPSA" --silent exec --app foo "$IMG_DIR" true
expect_match "--silent keeps FATAL" "^FATAL: " "$OUT"
# Colours on a terminal, as Apptainer; --nocolor and APPTAINER_NOCOLOR turn them off.
OUT=$(script -qec "$CAPSA exec --app foo $IMG_DIR true" /dev/null 2>&1)
expect_match "on a terminal FATAL is red" $'\e\\[31mFATAL' "$OUT"
OUT=$(script -qec "$CAPSA --nocolor exec --app foo $IMG_DIR true" /dev/null 2>&1)
expect_match "--nocolor: plain FATAL" "^FATAL: " "$OUT"
expect_nomatch "--nocolor: no escape codes" $'\e\\[' "$OUT"
OUT=$(APPTAINER_NOCOLOR=1 script -qec "$CAPSA exec --app foo $IMG_DIR true" /dev/null 2>&1)
expect_nomatch "APPTAINER_NOCOLOR=1: no escape codes" $'\e\\[' "$OUT"
run "$CAPSA" --bogus exec "$IMG_DIR" true
expect_eq "an unknown global option is fatal" 255 "$RC"

# What reaches the starter: as a user, CAPSA_STARTER may name another
# program (never setuid), here one that prints its arguments.
starter_args () { run_user "CAPSA_STARTER=/bin/echo $*"; }
starter_args "$CAPSA -c /etc/site.conf exec $IMG_DIR true"
expect_eq "-c FILE is passed to the starter as --config=FILE" "--config=/etc/site.conf exec $IMG_DIR true" "$OUT"
starter_args "APPTAINER_CONFIG_FILE=/etc/b.conf $CAPSA exec $IMG_DIR true"
expect_eq "APPTAINER_CONFIG_FILE" "--config=/etc/b.conf exec $IMG_DIR true" "$OUT"
starter_args "APPTAINER_CWD=/w APPTAINER_NO_MOUNT=tmp,cwd SINGULARITY_FAKEROOT=true APPTAINER_WRITABLE_TMPFS=1 APPTAINER_OVERLAY=/o1,/o2 APPTAINER_NOSHIMINIT=1 APPTAINER_NO_EVAL=1 APPTAINER_NO_UMASK=1 APPTAINER_MOUNT=type=bind,source=/a,destination=/b $CAPSA exec $IMG_DIR true"
for want in --cwd=/w --no-mount=tmp,cwd --fakeroot --writable-tmpfs --overlay=/o1 --overlay=/o2 --no-init --no-eval \
    --no-umask --mount=type=bind,source=/a,destination=/b; do
    expect_match "variable for $want" " $want( |$)" "$OUT"
done
starter_args "APPTAINER_CWD=/w $CAPSA exec --cwd /cmdline $IMG_DIR true"
expect_eq "a flag wins over its variable" "exec --cwd=/cmdline $IMG_DIR true" "$OUT"
starter_args "$CAPSA exec --compat $IMG_DIR true"
expect_eq "--compat is --containall --writable-tmpfs --no-init --no-umask --no-eval" \
    "exec --writable-tmpfs --no-init --no-umask --no-eval --contain --cleanenv --ipc --pid $IMG_DIR true" "$OUT"
starter_args "$CAPSA exec --containall --no-pid $IMG_DIR true"
expect_eq "--containall --no-pid: no PID namespace" "exec --contain --cleanenv --ipc $IMG_DIR true" "$OUT"
starter_args "$CAPSA exec --pid --no-pid $IMG_DIR true"
expect_eq "--no-pid wins over --pid" "exec $IMG_DIR true" "$OUT"
starter_args "$CAPSA exec --no-nv --unsquash $IMG_DIR true"
expect_eq "--no-nv passed on (against 'always use nv'), --unsquash accepted with nothing to pass on" \
    "exec --no-nv $IMG_DIR true" "$OUT"
starter_args "SINGULARITY_NV=1 APPTAINER_ROCM=true $CAPSA exec $IMG_DIR true"
expect_match "SINGULARITY_NV=1, APPTAINER_ROCM=true: --nv and --rocm for the starter (issue 18)" "^exec --nv --rocm( |$)" "$OUT"

# ---- option variables, really run (root, setuid user, --userns) -------------------------
for mode in root setuid userns; do
    case $mode in
        root) r () { run sh -c "$*"; } ;;
        setuid) r () { run_user "$*"; } ;;
        userns) r () { run_user "CAPSA_USERNS=1 $*"; } ;;
    esac
    r "SINGULARITY_BINDPATH=$D:/mnt $CAPSA exec $IMG_DIR cat /mnt/f"
    expect_eq "SINGULARITY_BINDPATH ($mode)" "0 from-host" "$RC $OUT"
    r "APPTAINER_BIND=$D:/srv SINGULARITY_BINDPATH=$D:/mnt $CAPSA exec -B $D:/opt $IMG_DIR cat /srv/f /mnt/f /opt/f"
    expect_eq "APPTAINER_BIND, SINGULARITY_BINDPATH and -B together ($mode)" "0 from-host from-host from-host" "$RC $(echo $OUT)"
    r "APPTAINER_PWD=/etc CAPSA_PWD=/tmp $CAPSA exec $IMG_DIR pwd"
    expect_eq "CAPSA_ wins over APPTAINER_ ($mode)" "0 /tmp" "$RC $OUT"
    r "SINGULARITY_PWD=/etc $CAPSA exec --pwd /tmp $IMG_DIR pwd"
    expect_eq "--pwd wins over SINGULARITY_PWD ($mode)" "0 /tmp" "$RC $OUT"
    r "FOO=visible SINGULARITY_CLEANENV=1 $CAPSA exec $IMG_DIR sh -c 'echo \${FOO:-gone}'"
    expect_eq "SINGULARITY_CLEANENV=1 ($mode)" "0 gone" "$RC $OUT"
    r "APPTAINER_CONTAIN=true $CAPSA exec $IMG_DIR cat $D/f"
    expect_eq "APPTAINER_CONTAIN=true: a private /tmp, the host's file is not there ($mode)" "1" "$RC"
    r "APPTAINER_CONTAIN=false $CAPSA exec $IMG_DIR cat $D/f"
    expect_eq "APPTAINER_CONTAIN=false is no --contain ($mode)" "0 from-host" "$RC $OUT"
done
run env APPTAINER_CONTAIN=maybe "$CAPSA" exec "$IMG_DIR" true
expect_eq "a variable that is not a boolean: exit 255" 255 "$RC"
expect_match "... with a message naming it" "^FATAL: +APPTAINER_CONTAIN='maybe' is not a boolean" "$OUT"
run env SINGULARITY_MEMORY=1G "$CAPSA" exec "$IMG_DIR" true
expect_eq "SINGULARITY_MEMORY=1G: refused (no cgroup limits), exit 255" 255 "$RC"
expect_match "... saying why" "SINGULARITY_MEMORY: cgroup resource limits are not supported" "$OUT"
for opt in "--app foo" "--memory 1G" --sharens "--scratch /s"; do
    run "$CAPSA" exec $opt "$IMG_DIR" true
    expect_eq "exec $opt: refused with exit 255" 255 "$RC"
done
run "$CAPSA" checkpoint create x
expect_match "an Apptainer command capsa lacks: a precise FATAL" "^FATAL: +checkpoint: DMTCP checkpoints are not supported" "$OUT"

# Workflow managers' calls (Snakemake): --quiet --silent exec --home DIR IMG sh -c CMD,
# per-task variables as SINGULARITYENV_ (the runtime turns them into variables).
run_user "cd $D && $BIN/singularity --quiet --silent exec --home $D $SIF sh -c 'echo ok; cat f'"
expect_eq "Snakemake's exec line as $TUSER" "0 ok from-host" "$RC $(echo $OUT)"

# ---- test, run-help, inspect --------------------------------------------------------
cat > "$WORK/t.def" <<EOF
Bootstrap: localimage
From: $IMG_DIR

%help
    Help of the compatibility image.

%test
    echo "test ran with \$# args: \$*"
    exit 3
EOF
"$CAPSA" build --notest "$WORK/t.sif" "$WORK/t.def" > "$WORK/build.log" 2>&1 || fail "build the test image" "$(tail -3 "$WORK/build.log")"
chmod 0644 "$WORK/t.sif"
run "$CAPSA" test "$WORK/t.sif" a b
expect_eq "test: runs %test with the arguments, its exit status passes" "3 test ran with 2 args: a b" "$RC $OUT"
run_user "$CAPSA test $WORK/t.sif x"
expect_eq "test as $TUSER (setuid)" "3 test ran with 1 args: x" "$RC $OUT"
run_user "$CAPSA test --userns $WORK/t.sif"
expect_eq "test --userns as $TUSER" "3 test ran with 0 args: " "$RC $OUT"
run "$BIN/apptainer" test "$SIF"
expect_eq "test without a test script: INFO and exit 0" "0 INFO:    No test script found in container, exiting" "$RC $OUT"
run "$CAPSA" run-help "$WORK/t.sif"
expect_eq "run-help: the %help text" "0 Help of the compatibility image." "$RC $(echo $OUT)"
run "$CAPSA" run-help "$SIF"
expect_eq "run-help without help" "0 No help sections were defined for this image" "$RC $OUT"
run "$CAPSA" run-help "$WORK/missing.sif"
expect_eq "run-help of a missing image: exit 255" 255 "$RC"
run "$CAPSA" inspect --all "$WORK/t.sif"
expect_eq "inspect --all: JSON with every section" "container help test labels runscript environment" \
    "$(printf '%s' "$OUT" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); a=d["data"]["attributes"]
print(d["type"], "help" if "Help of" in a.get("helpfile","") else "-", "test" if "exit 3" in a.get("test","") else "-",
      "labels" if a.get("labels") else "-", "runscript" if "runscript" in a else "-", "environment" if a.get("environment") else "-")')"
run "$CAPSA" inspect --json "$WORK/t.sif"
expect_eq "inspect --json: the labels only, as Apptainer" "labels" \
    "$(printf '%s' "$OUT" | /usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["data"]["attributes"]))')"
# SCIF apps: listed and inspected from a sandbox made by hand.
S=$WORK/apps
cp -a "$IMG_DIR" "$S"
mkdir -p "$S/scif/apps/foo/scif" "$S/scif/apps/bar/scif"
echo '{"APP": "foo"}' > "$S/scif/apps/foo/scif/labels.json"
printf '#!/bin/sh\necho foo runs\n' > "$S/scif/apps/foo/scif/runscript"
run "$CAPSA" inspect --list-apps "$S"
expect_eq "inspect --list-apps" "bar foo" "$(echo $OUT)"
run "$CAPSA" inspect --app foo --labels "$S"
expect_eq "inspect --app foo --labels" "APP: foo" "$OUT"
run "$CAPSA" inspect --app foo --runscript "$S"
expect_match "inspect --app foo --runscript" "echo foo runs" "$OUT"

# ---- seccomp profiles in Docker format -------------------------------------------------
CC=/usr/share/containers/seccomp.json
if [ ! -r "$CC" ]; then fail "containers-common seccomp profile" "$CC missing (scripts/deps.sh)"; fi
# Docker's rule for user namespaces: unshare only with CAP_SYS_ADMIN.
cat > "$WORK/docker-userns.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
 "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
             {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
 "syscalls": [
  {"names": ["unshare", "setns"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
  {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
  {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
 ]}
EOF
python3 - "$CC" "$WORK/docker-userns.json" <<'EOF'
import json, sys
cc = json.load(open(sys.argv[1]))
mine = json.load(open(sys.argv[2]))
# Everything containers-common allows unconditionally, except unshare and setns.
allow = [n for n in cc["syscalls"][1]["names"] if n not in ("unshare", "setns")]
mine["syscalls"].insert(0, {"names": allow, "action": "SCMP_ACT_ALLOW"})
json.dump(mine, open(sys.argv[2], "w"))
EOF
for mode in root setuid userns; do
    case $mode in
        root) r () { run "$CAPSA" exec "$@"; } ;;
        setuid) r () { run_user "$CAPSA exec $*"; } ;;
        userns) r () { run_user "$CAPSA exec --userns $*"; } ;;
    esac
    r --security "seccomp:$CC" "$IMG_DIR" /bin/true
    expect_eq "containers-common profile: /bin/true exits 0 ($mode)" "0" "$RC"
    r --security "seccomp:$CC" "$IMG_DIR" sh -c true
    expect_eq "containers-common profile: a shell runs ($mode)" "0" "$RC"
    # containers-common allows unshare without conditions (its allow list),
    # so the kernel decides: a user may make a user namespace.
    r --security "seccomp:$CC" "$IMG_DIR" unshare -U true
    expect_eq "containers-common profile allows unshare -U, as written ($mode)" "0" "$RC"
    r --security "seccomp:$WORK/docker-userns.json" "$IMG_DIR" unshare -U true
    if [ $mode = root ]; then
        expect_eq "Docker-style profile: root (CAP_SYS_ADMIN) may unshare -U" "0" "$RC"
    else
        expect_eq "Docker-style profile: unshare -U blocked for $TUSER ($mode)" "1" "$RC"
        expect_match "... by the filter (EPERM)" "Operation not permitted" "$OUT"
    fi
done
run "$CAPSA" exec --drop-caps CAP_SYS_ADMIN --security "seccomp:$WORK/docker-userns.json" "$IMG_DIR" unshare -U true
expect_eq "Docker-style profile: root without CAP_SYS_ADMIN is blocked" "1" "$RC"
run_user "$CAPSA exec --add-caps CAP_SYS_ADMIN --security seccomp:$WORK/docker-userns.json $IMG_DIR unshare -U true"
expect_eq "asking for a capability that is not granted does not open the filter" "1" "$RC"
# An administrator who wants users kept out of nested user namespaces: the
# Docker-style profile as capsa.conf's 'seccomp profile'. It is compiled
# without knowledge of grants, so its CAP_SYS_ADMIN exception is left out.
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
install -m 0644 "$WORK/docker-userns.json" "$WORK/admin-userns.json"
printf 'seccomp profile = %s\n' "$WORK/admin-userns.json" >> "$CONF"
run_user "$CAPSA exec $IMG_DIR unshare -U true"
expect_eq "admin Docker-style profile: unshare -U blocked for $TUSER (setuid)" "1" "$RC"
expect_match "... by the filter (EPERM)" "Operation not permitted" "$OUT"
run_user "$CAPSA exec --userns $IMG_DIR unshare -U true"
expect_eq "admin Docker-style profile: unshare -U blocked for $TUSER (userns)" "1" "$RC"
run "$CAPSA" exec "$IMG_DIR" unshare -U true
expect_eq "admin Docker-style profile: blocked for root too (no grant knowledge)" "1" "$RC"
run_user "$CAPSA exec $IMG_DIR /bin/true"
expect_eq "admin Docker-style profile: /bin/true runs" "0" "$RC"
cp "$WORK/conf.orig" "$CONF"
run_user "$CAPSA exec $IMG_DIR unshare -U true"
expect_eq "without it, unshare -U is the kernel's decision again" "0" "$RC"
run_user "APPTAINER_SECURITY=seccomp:$CC $CAPSA exec $IMG_DIR /bin/true"
expect_eq "APPTAINER_SECURITY=seccomp:PROFILE" "0" "$RC"
no_leftover_mounts "apptainer compatibility: no mounts left"
