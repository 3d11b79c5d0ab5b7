# capsa exec/run/shell on directory and squashfs images, in the three
# modes: root, a user through the setuid starter, a user with --userns.

U=$TUSER
UID_U=$(id -u "$U")
UHOME=$(getent passwd "$U" | cut -d: -f6)

# FUSE servers of this installation still serving a container of $U
# (others' may run on the machine): squashfuse_ll children of its starter,
# image servers with a FUSE connection left (one lingers without any for
# 'image server linger' seconds).  Waits up to 3 s for them to end.
fuse_servers_left () {
    local p left i
    for i in $(seq 30); do
        left=
        for p in $(pgrep -u "$U" -x squashfuse_ll); do
            [ "$(readlink "/proc/$(ps -o ppid= -p "$p" | tr -d ' ')/exe")" = "$CAPSA_PREFIX/libexec/capsa/starter" ] \
                && left="$left $p"
        done
        for p in $(pgrep -u "$U" -x imagefuse); do
            [ "$(readlink "/proc/$p/exe")" = "$CAPSA_PREFIX/libexec/capsa/imagefuse" ] || continue
            ls -l "/proc/$p/fd" 2>/dev/null | grep -q ' -> /dev/fuse$\| -> /fuse$' && left="$left $p"
        done
        [ -z "$left" ] && break
        sleep 0.1
    done
    echo $left
}

# --- identity, capability masks, files written to $HOME --------------------
for img in "$IMG_DIR" "$IMG_SQFS"; do
    kind=$([ -d "$img" ] && echo dir || echo sqfs)
    for mode in setuid userns; do
        flag=$([ $mode = userns ] && echo --userns || true)
        run_user "$CAPSA exec $flag $img id -u"
        expect_eq "$kind/$mode: id -u is the caller's uid" "$UID_U" "$OUT"
        run_user "$CAPSA exec $flag $img grep -E 'Cap(Prm|Eff|Inh|Bnd|Amb)|NoNewPrivs' /proc/self/status"
        expect_eq "$kind/$mode: five capability masks zero, NoNewPrivs 1" \
            "$(printf 'CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1')" "$OUT"
        rm -f "$UHOME/written-$kind-$mode"
        run_user "$CAPSA exec $flag $img sh -c 'echo x > \$HOME/written-$kind-$mode'"
        expect_eq "$kind/$mode: file written to \$HOME is the user's" "$U" "$(stat -c %U "$UHOME/written-$kind-$mode" 2>&1)"
    done
    run "$CAPSA" exec "$img" id -u
    expect_eq "$kind/root: id -u is 0" "0" "$OUT"
    run "$CAPSA" exec "$img" grep CapEff /proc/self/status
    expect_match "$kind/root: root keeps its capabilities" "CapEff:.*[1-9a-f]" "$OUT"
    run "$CAPSA" exec "$img" sh -c 'touch /newfile'
    expect_match "$kind/root: the image is read-only" "Read-only file system" "$OUT"
done
no_leftover_mounts "no capsa mount left after the identity runs"
expect_eq "no FUSE server left serving a container" "" "$(fuse_servers_left)"

# --- a root-only host file through --bind -----------------------------------
secret=$WORK/secret-dir
mkdir -p "$secret" && echo topsecret > "$secret/file" && chmod 0600 "$secret/file"
for flag in "" --userns; do
    run_user "$CAPSA exec $flag -B $secret/file:/mnt/s $IMG_DIR cat /mnt/s"
    expect_nomatch "user cannot read a 0600 root file through --bind ${flag:-(setuid)}" "topsecret" "$OUT"
    # ... because reading it was refused (cat's error or capsa's FATAL),
    # not because nothing ran.
    if [ "$RC" != 0 ] && printf '%s\n' "$OUT" | grep -q "Permission denied"; then
        pass "a 0600 root file through --bind: permission denied ${flag:-(setuid)}"
    else
        fail "a 0600 root file through --bind: permission denied ${flag:-(setuid)}" "exit $RC: $OUT"
    fi
done
chmod 0700 "$secret"
run_user "$CAPSA exec -B $secret/file:/mnt/s $IMG_DIR cat /mnt/s"
expect_eq "bind source in a root-only directory: exit 255" "255" "$RC"
expect_match "bind source in a root-only directory: clear message" "^FATAL: .*bind source .*Permission denied" "$OUT"

# --- symlinks in the image never lead mounts outside the root ---------------
evil=$WORK/evil-image
cp -a "$IMG_DIR" "$evil"
rm -rf "$evil/tmp" && ln -s /etc "$evil/tmp"
mkdir -p /tmp/capsa-escape-target && rm -rf /tmp/capsa-escape-target/*
ln -s ../../../../../../../../tmp/capsa-escape-target "$evil/data"
mkdir -p "$WORK/src" && echo bound > "$WORK/src/f" && chmod -R a+rX "$WORK/src"
etc_before=$(ls -A /etc | md5sum)
touch /tmp/capsa-host-tmp-marker
for flag in "" --userns; do
    # The host's /tmp shows at /tmp, and not at the image's /etc (where
    # /tmp -> /etc would put it if the symlink were followed).
    run_user "$CAPSA exec $flag -B $WORK/src:/data/x $evil sh -c 'cat /data/x/f; ls /tmp/capsa-host-tmp-marker; ls /etc/capsa-host-tmp-marker 2>&1'"
    expect_eq "symlinked /tmp and bind destination stay inside ${flag:-(setuid)}" "bound
/tmp/capsa-host-tmp-marker
ls: /etc/capsa-host-tmp-marker: No such file or directory" "$OUT"
    expect_eq "nothing created outside the root ${flag:-(setuid)}" "" "$(ls -A /tmp/capsa-escape-target)"
done
run "$CAPSA" exec -B "$WORK/src:/data/x" "$evil" cat /data/x/f
expect_eq "as root too" "bound" "$OUT"
expect_eq "host /etc unchanged" "$etc_before" "$(ls -A /etc | md5sum)"
no_leftover_mounts "no mount left after the symlink runs"

# --- a setuid-root binary inside the image gives nothing ---------------------
cp "$HELPERS/showid" "$evil/bin/showid" && chown root:root "$evil/bin/showid" && chmod 4755 "$evil/bin/showid"
run_user "$CAPSA exec $evil /bin/showid"
expect_eq "setuid-root binary in the image: no root (setuid mode)" "uid=$UID_U euid=$UID_U" "$OUT"
run_user "$CAPSA exec --userns $evil /bin/showid"
expect_eq "setuid-root binary in the image: no root (userns)" "uid=$UID_U euid=$UID_U" "$OUT"

# --- the starter ignores a hostile environment -------------------------------
rm -f /tmp/capsa-evil-marker
mkdir -p "$WORK/evilbin"
for p in squashfuse_ll mount sh id true; do
    printf '#!/bin/sh\necho evil-%s >> /tmp/capsa-evil-marker\n' "$p" > "$WORK/evilbin/$p"
    chmod 0755 "$WORK/evilbin/$p"
done
cp "$HELPERS/evil.so" "$WORK/evil.so" && chmod 0755 "$WORK/evil.so"
STARTER=$CAPSA_PREFIX/libexec/capsa/starter
run_user "LD_PRELOAD=$WORK/evil.so LD_LIBRARY_PATH=$WORK IFS=/ PATH=$WORK/evilbin:/usr/bin:/bin $STARTER exec $IMG_SQFS /bin/echo fine"
expect_eq "starter under LD_PRELOAD/LD_LIBRARY_PATH/IFS/PATH still works" "fine" "$OUT"
expect_eq "starter loaded no preload library and ran nothing from PATH" "" "$(cat /tmp/capsa-evil-marker 2>/dev/null)"
rm -f /tmp/capsa-evil-marker

# --- namespaces and containment ----------------------------------------------
for mode in root setuid userns; do
    case $mode in
    root) r () { run "$CAPSA" exec "$@"; } ;;
    setuid) r () { run_user "$CAPSA exec $(printf "%q " "$@")"; } ;;
    userns) r () { run_user "$CAPSA exec --userns $(printf "%q " "$@")"; } ;;
    esac
    r --pid --no-init "$IMG_DIR" sh -c 'echo $$'
    expect_eq "$mode: --pid --no-init makes the command PID 1" "1" "$OUT"
    r --pid "$IMG_DIR" cat /proc/1/comm
    expect_eq "$mode: --pid: PID 1 is the init (test_apptainer_env.sh tests it)" "appinit" "$OUT"
    r --net --network none "$IMG_DIR" ls /sys/class/net
    expect_eq "$mode: --net --network none shows only lo" "lo" "$OUT"
    r --net --network none "$IMG_DIR" sh -c 'cat /sys/class/net/lo/operstate /sys/class/net/lo/flags'
    expect_match "$mode: lo is up" "0x9" "$OUT"
    r --containall "$IMG_DIR" sh -c 'ls -A $HOME | wc -l; ls /tmp/capsa-host-tmp-marker 2>&1'
    expect_match "$mode: --containall: empty \$HOME, private /tmp" "^0
ls: /tmp/capsa-host-tmp-marker: No such file or directory$" "$OUT"
    r --uts --hostname capsabox "$IMG_DIR" hostname
    expect_eq "$mode: --hostname" "capsabox" "$OUT"
    r --ipc "$IMG_DIR" true
    expect_eq "$mode: --ipc" "0" "$RC"
    r "$IMG_DIR" sh -c 'exit 3'
    expect_eq "$mode: exit status passes through" "3" "$RC"
    r "$IMG_DIR" sh -c 'kill -TERM $$'
    expect_eq "$mode: killed by SIGTERM gives 143" "143" "$RC"
    r "$IMG_DIR" no-such-command
    expect_eq "$mode: command not found exits 127" "127" "$RC"
    expect_eq "$mode: command not found: one message" 'FATAL:   "no-such-command": executable file not found in $PATH' "$OUT"
    r "$IMG_DIR" /etc/passwd
    expect_eq "$mode: not executable exits 126" "126" "$RC"
    expect_eq "$mode: not executable: one message" 'FATAL:   "/etc/passwd": permission denied' "$OUT"
    r /nonexistent-image true
    expect_eq "$mode: missing image exits 255" "255" "$RC"
    expect_eq "$mode: missing image: one message" "FATAL:   image /nonexistent-image: no such file or directory" "$OUT"
done
rm -f /tmp/capsa-host-tmp-marker

# --- binds, home, pwd, environment -------------------------------------------
mkdir -p "$WORK/data" && echo hello > "$WORK/data/f" && chmod -R a+rwX "$WORK/data"
run_user "$CAPSA exec -B $WORK/data:/d1:ro,$WORK/data:/d2 $IMG_DIR sh -c 'cat /d1/f /d2/f; touch /d1/x 2>&1; touch /d2/y && echo wrote'"
expect_match "--bind comma list, ro and rw" "^hello
hello
touch: /d1/x: Read-only file system
wrote$" "$OUT"
run_user "cd / && $CAPSA exec --no-home $IMG_DIR sh -c 'ls -A \$HOME 2>/dev/null | wc -l'"
expect_eq "--no-home: home not mounted (started outside it)" "0" "$OUT"
run_user "$CAPSA exec --home $WORK/data:/myhome $IMG_DIR sh -c 'echo \$HOME; cat /myhome/f'"
expect_eq "--home SRC:DST" "/myhome
hello" "$OUT"
run_user "$CAPSA exec --pwd /etc $IMG_DIR pwd"
expect_eq "--pwd" "/etc" "$OUT"
OUT=$(cd "$WORK/data" && "$CAPSA" exec "$IMG_DIR" sh -c 'pwd; cat f' 2>&1)
expect_eq "current directory is bound and entered" "$WORK/data
hello" "$OUT"
run_user "$CAPSA exec $IMG_DIR sh -c 'echo \$PATH'"
expect_eq "env scripts of the image are sourced" "/bin:/usr/bin:/sbin" "$OUT"
run_user "FOO=host $CAPSA exec --env BAR=1,BAZ=a=b $IMG_DIR sh -c 'echo \$FOO \$BAR \$BAZ'"
expect_eq "host environment and --env" "host 1 a=b" "$OUT"
run_user "FOO=host $CAPSA exec --cleanenv $IMG_DIR sh -c 'echo [\$FOO]'"
expect_eq "--cleanenv drops host variables" "[]" "$OUT"
printf 'export A1="one"\nB1=two\n# comment\n' > "$WORK/envfile" && chmod 0644 "$WORK/envfile"
run_user "$CAPSA exec --env-file $WORK/envfile $IMG_DIR sh -c 'echo \$A1 \$B1'"
expect_eq "--env-file" "one two" "$OUT"
run_user "CAPSA_CONTAIN=1 CAPSA_BIND=$WORK/data:/viaenv $CAPSA exec $IMG_DIR sh -c 'cat /viaenv/f; ls -A \$HOME | wc -l'"
expect_eq "CAPSA_* variables mirror the flags" "hello
0" "$OUT"
run_user "$CAPSA exec $IMG_DIR sh -c 'grep ^$U: /etc/passwd | cut -d: -f1,3; grep -c ^root: /etc/passwd; grep ^$U: /etc/group | cut -d: -f1'"
expect_eq "user in the container's passwd and group" "$U:$UID_U
1
$U" "$OUT"
run "$CAPSA" exec "$IMG_DIR" sh -c 'test -c /dev/null && test -c /dev/urandom && test -d /dev/pts && test -d /dev/shm && echo dev-ok'
expect_eq "minimal /dev" "dev-ok" "$OUT"
touch /dev/shm/capsa-shm-marker
run_user "$CAPSA exec $IMG_DIR ls /dev/shm/capsa-shm-marker"
expect_eq "the host's /dev/shm is shared (MPI shared memory)" "/dev/shm/capsa-shm-marker" "$OUT"
run_user "$CAPSA exec --contain $IMG_DIR sh -c 'ls -A /dev/shm | wc -l'"
expect_eq "--contain: private /dev/shm" "0" "$OUT"
rm -f /dev/shm/capsa-shm-marker
run_user "$CAPSA exec $IMG_DIR sh -c 'echo x > /dev/null && head -c 4 /dev/zero | wc -c'"
expect_eq "/dev/null and /dev/zero work for a user" "4" "$OUT"

# --- run and shell -------------------------------------------------------------
run_user "$CAPSA run $IMG_DIR a b"
expect_eq "run: the runscript gets the arguments" "runscript args: a b" "$OUT"
nors=$WORK/no-runscript
cp -a "$IMG_DIR" "$nors" && rm -f "$nors/.singularity.d/runscript"
run_user "$CAPSA run $nors -c 'echo default-shell'"
expect_eq "run without a runscript: the image's shell" "default-shell" "$OUT"
OUT=$(echo 'echo in-shell $((1+2))' | as_user "$U" "$CAPSA shell $IMG_DIR" 2>&1)
expect_eq "shell reads commands" "in-shell 3" "$OUT"

# --- help, version, usage errors -------------------------------------------------
run "$CAPSA" version
expect_match "version" "^capsa version [0-9]" "$OUT"
for c in exec run shell sif version help; do
    run "$CAPSA" help $c
    expect_match "help $c" "^Usage: capsa $c" "$OUT"
    run "$CAPSA" $c --help
    expect_match "$c --help" "^Usage: capsa $c" "$OUT"
done
run "$CAPSA" exec --bogus "$IMG_DIR" true
expect_eq "unknown option: 255" "255" "$RC"
expect_match "unknown option: message" "^FATAL: .*unknown option '--bogus'" "$OUT"
run "$CAPSA" exec "$IMG_DIR"
expect_eq "exec without a command: 255" "255" "$RC"

# --- capsa.conf -------------------------------------------------------------------
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
printf 'allow pid ns = maybe\n' >> "$CONF"
line=$(wc -l < "$CONF")
run_user "$CAPSA exec $IMG_DIR true"
expect_eq "bad capsa.conf value: exit 255" "255" "$RC"
expect_eq "bad capsa.conf value: exact message" "FATAL:   capsa.conf:$line: 'maybe' is not a valid value for 'allow pid ns' (allowed: yes, no)" "$OUT"
cp "$WORK/conf.orig" "$CONF" && printf 'allow wormholes = yes\n' >> "$CONF"
run "$CAPSA" exec "$IMG_DIR" true
expect_match "unknown directive: named" "^FATAL:   capsa.conf:$line: unknown directive 'allow wormholes'$" "$OUT"
cp "$WORK/conf.orig" "$CONF" && chmod 0666 "$CONF"
run_user "$CAPSA exec $IMG_DIR true"
expect_match "setuid: group/other-writable capsa.conf refused" "^FATAL: .*capsa.conf is writable by group or others" "$OUT"
chmod 0644 "$CONF"
mv "$CONF" "$WORK/conf.real" && ln -s "$WORK/conf.real" "$CONF"
run_user "$CAPSA exec $IMG_DIR true"
expect_match "setuid: symlinked capsa.conf refused" "^FATAL: .*capsa.conf is a symbolic link" "$OUT"
rm -f "$CONF" && cp "$WORK/conf.orig" "$CONF"
sed -i 's/^allow setuid = yes/allow setuid = no/' "$CONF"
run_user "$CAPSA -v exec $IMG_DIR cat /proc/self/uid_map"
expect_match "allow setuid = no: user namespace instead" "user namespace" "$OUT"
sed -i 's/^allow user ns = yes/allow user ns = no/' "$CONF"
run_user "$CAPSA exec $IMG_DIR true"
expect_eq "neither setuid nor user ns allowed: 255" "255" "$RC"
cp "$WORK/conf.orig" "$CONF"
sed -i 's/^allow pid ns = yes/allow pid ns = no/' "$CONF"
run_user "$CAPSA exec --pid $IMG_DIR true"
expect_match "allow pid ns = no refuses --pid" "^FATAL: .*allow pid ns = no" "$OUT"
cp "$WORK/conf.orig" "$CONF"

# --- nothing stays mounted after SIGKILL of the contained process ----------------
for flag in "" --userns; do
    # A sleep of its own (not another test's, nor a dead one).
    n=$(( 3000 + RANDOM % 6000 ))
    as_user "$U" "$CAPSA exec $flag $IMG_SQFS sleep $n" > /dev/null 2>&1 &
    bg=$!
    for _ in $(seq 50); do
        pid=$(pgrep -u "$U" -f -x "(/bin/)?sleep $n" | head -1)
        [ -n "$pid" ] && ! proc_gone "$pid" && break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$bg"; rc=$?
    expect_eq "SIGKILL of the command: status 137 ${flag:-(setuid)}" "137" "$rc"
    sleep 0.2
    no_leftover_mounts "SIGKILL of the command: nothing mounted ${flag:-(setuid)}"
    expect_eq "SIGKILL of the command: no FUSE server left serving it ${flag:-(setuid)}" "" "$(fuse_servers_left)"
done
