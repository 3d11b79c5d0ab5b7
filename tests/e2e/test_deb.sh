# The Debian package (issue 9, acceptances 3 and 4): `make deb`, lintian,
# `apt-get install ./capsa_*.deb` into this (test) machine's real /usr and
# /etc, capsa as root and as a user through the packaged setuid starter,
# man pages, bash completion, then `apt-get remove` (only conffiles stay)
# and `apt-get purge` (nothing stays).  A /usr/local install (README) may
# exist beside it: every command here names /usr/bin/capsa, /usr/share/man
# and /usr/share/bash-completion explicitly.

IMG=$FIXTURES/sif/busybox_amd64.sif
APT=(apt-get -y -qq -o DPkg::Lock::Timeout=300)
export DEBIAN_FRONTEND=noninteractive

if [ "${CAPSA_SAN:-}" = 1 ]; then
    # The package is built with Debian's flags whatever the build under
    # test: the run against the normal build has checked it.
    echo "   (not run against the sanitizer build: the package does not depend on it)"
    return 0
fi
for c in dpkg-buildpackage dh lintian apt-get man script; do
    if ! command -v "$c" > /dev/null; then
        fail "deb: tools" "missing $c (bash scripts/deps.sh)"
        return 0
    fi
done
# One run of this test at a time on a machine: it installs into /usr.
exec 8> "$CACHE/.lock.test-deb" && flock 8
if dpkg-query -W -f '${Status}' capsa 2> /dev/null | grep -q ' installed'; then
    fail "deb: capsa not installed as a package before the test" \
        "$(dpkg-query -W -f '${Package} ${Version} ${Status}' capsa); remove it with apt-get purge capsa"
    return 0
fi
if [ -e /usr/bin/capsa ]; then
    fail "deb: /usr/bin/capsa free before the test" "$(ls -l /usr/bin/capsa)"
    return 0
fi

deb_cleanup () {
    dpkg -r capsa-test-fake-apptainer > /dev/null 2>&1
    if dpkg-query -W -f '${Status}' capsa 2> /dev/null | grep -qv 'not-installed'; then
        "${APT[@]}" purge capsa > /dev/null 2>&1
    fi
}
trap deb_cleanup EXIT
trap 'deb_cleanup; exit 130' INT TERM

# ------------------------------------------------------------------ build

VERSION=$(sed -n 's/^VERSION *:= *//p' "$TOP/Makefile")
ARCH=$(dpkg --print-architecture)
DEB=$WORK/capsa_${VERSION}_${ARCH}.deb
start=$(date +%s)
run make -s -C "$TOP" deb DEBDIR="$WORK"
if [ "$RC" -ne 0 ] || [ ! -f "$DEB" ]; then
    fail "deb: make deb builds capsa_${VERSION}_${ARCH}.deb" "rc=$RC: $(printf '%s\n' "$OUT" | tail -20)"
    return 0
fi
pass "deb: make deb builds capsa_${VERSION}_${ARCH}.deb ($(( $(date +%s) - start ))s)"

expect_eq "deb: package name, version and architecture" "capsa $VERSION $ARCH" \
    "$(dpkg-deb -f "$DEB" Package Version Architecture | awk '{ printf "%s%s", sep, $2; sep = " " }')"
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | awk 'NF { print $1 }')
expect_eq "deb: declares fuse3, squashfuse, squashfs-tools and its libraries (dpkg-shlibdeps)" \
    "fuse3 squashfuse squashfs-tools libc6 libcap2 libfuse3-3 libjson-c5 libseccomp2" \
    "$(for p in fuse3 squashfuse squashfs-tools libc6 libcap2 libfuse3-3 libjson-c5 libseccomp2; do
        printf '%s\n' "$deps" | grep -qx "$p" && printf '%s ' "$p"; done | sed 's/ $//')"
listing=$(dpkg-deb -c "$DEB")
expect_match "deb: the starter is shipped 0755 (setuid is applied by postinst)" \
    '^-rwxr-xr-x root/root .* \./usr/libexec/capsa/starter$' "$listing"
expect_eq "deb: /etc/capsa/* are conffiles" \
    "/etc/capsa/capability.json /etc/capsa/capsa.conf /etc/capsa/nvliblist.conf /etc/capsa/rocmliblist.conf /etc/capsa/seccomp-profiles/default.json" \
    "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles | sort | paste -sd' ')"

run lintian "$DEB"
expect_eq "deb: lintian ran and found no error (exit 0)" 0 "$RC"
expect_eq "deb: lintian reports no errors" "" "$(printf '%s\n' "$OUT" | grep '^E:')"
expect_nomatch "deb: lintian reports no warnings" '^W:' "$OUT"

# ---------------------------------------------------------------- install

run env -C "$WORK" "${APT[@]}" install "./capsa_${VERSION}_${ARCH}.deb"
if [ "$RC" -ne 0 ]; then
    fail "deb: apt-get install ./capsa_*.deb" "rc=$RC: $(printf '%s\n' "$OUT" | tail -20)"
    return 0
fi
pass "deb: apt-get install ./capsa_*.deb"
FILES=$(dpkg -L capsa)
CONFFILES=$(dpkg-query -W -f '${Conffiles}\n' capsa | awk 'NF { print $1 }')

expect_eq "deb: installed starter is setuid root" "4755 root root" \
    "$(stat -c '%a %U %G' /usr/libexec/capsa/starter)"
expect_match "deb: capsa version" "^capsa version $VERSION \(Apptainer [0-9.]+ command line\)$" "$(/usr/bin/capsa version)"
# Apptainer's names are alternatives, owned by no package.
expect_eq "deb: apptainer, singularity, run-singularity lead to /usr/bin/capsa" \
    "/usr/bin/capsa /usr/bin/capsa /usr/bin/capsa" \
    "$(readlink -f /usr/bin/apptainer) $(readlink -f /usr/bin/singularity) $(readlink -f /usr/bin/run-singularity)"
expect_eq "deb: /usr/bin/apptainer is an alternative" "/etc/alternatives/apptainer" "$(readlink /usr/bin/apptainer)"
expect_eq "deb: apptainer --version" "apptainer version 1.5.3" "$(/usr/bin/apptainer --version)"
run_user "cd /tmp && cp $IMG /tmp/capsa-deb-$$.sif && chmod 0755 /tmp/capsa-deb-$$.sif && /tmp/capsa-deb-$$.sif echo self-run; rm -f /tmp/capsa-deb-$$.sif"
expect_eq "deb: user: ./image.sif runs through run-singularity" "self-run" "$OUT"

run /usr/bin/capsa exec "$IMG" /bin/echo hello
expect_eq "deb: root: capsa exec busybox_amd64.sif /bin/echo hello" "hello rc=0" "$OUT rc=$RC"
run_user "/usr/bin/capsa exec $IMG /bin/echo hello"
expect_eq "deb: user: capsa exec busybox_amd64.sif /bin/echo hello" "hello rc=0" "$OUT rc=$RC"
run_user "/usr/bin/capsa -v exec $IMG /bin/echo hello"
expect_match "deb: user: through the packaged setuid starter" 'setuid mode' "$OUT"
run_user "/usr/bin/capsa exec $IMG sh -c 'exit 3'"
expect_eq "deb: user: exit status passed on" 3 "$RC"

# An administrator's dpkg-statoverride wins over the postinst.
dpkg-statoverride --add root root 0755 /usr/libexec/capsa/starter
chmod 0755 /usr/libexec/capsa/starter
run dpkg-reconfigure capsa
expect_eq "deb: postinst honours a dpkg-statoverride (starter stays 0755)" "0 755" \
    "$RC $(stat -c %a /usr/libexec/capsa/starter)"
dpkg-statoverride --remove /usr/libexec/capsa/starter
run dpkg-reconfigure capsa
expect_eq "deb: without the override, postinst makes the starter setuid again" "0 4755" \
    "$RC $(stat -c %a /usr/libexec/capsa/starter)"

# ------------------------------------------------------------- man pages

for page in capsa capsa-exec capsa-run capsa-shell capsa-inspect capsa-sif capsa-capability \
    capsa-build capsa-encrypt capsa-push capsa-pull capsa-cache capsa-registry capsa-version capsa.conf; do
    out=$(MANPATH=/usr/share/man MANWIDTH=80 man -P cat "$page" 2> "$WORK/man.err")
    title=$(printf '%s\n' "$page" | tr 'a-z' 'A-Z')
    if printf '%s\n' "$out" | head -1 | grep -q "^$title(" && [ ! -s "$WORK/man.err" ]; then
        pass "deb: man $page renders"
    else
        fail "deb: man $page renders" "$(head -c 300 "$WORK/man.err") [$(printf '%s\n' "$out" | head -3)]"
    fi
done
MANPATH=/usr/share/man man -P cat capsa-exec 2> /dev/null | grep -q -- '--add-caps LIST'
expect_eq "deb: man capsa-exec documents --add-caps" 0 $?
MANPATH=/usr/share/man man -P cat capsa.conf 2> /dev/null | grep -q 'allow setuid-mount squashfs'
expect_eq "deb: man capsa.conf documents allow setuid-mount squashfs" 0 $?
# Every flag of `capsa help exec` is in the man page.
missing=
for f in $(/usr/bin/capsa help exec | grep -oE '^ +(-[a-zA-Z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+'); do
    MANPATH=/usr/share/man man -P cat capsa-exec 2> /dev/null | grep -q -- "$f" || missing+=" $f"
done
expect_eq "deb: man capsa-exec names every flag of capsa help exec" "" "$missing"
run bash -c 'for f in /usr/share/man/man1/capsa*.1.gz /usr/share/man/man5/capsa.conf.5.gz; do
    LC_ALL=C.UTF-8 man --warnings -l -Tutf8 "$f" 2>&1 > /dev/null; done'
expect_eq "deb: groff reports nothing on the man pages" "" "$OUT"

# -------------------------------------------------------------- completion

COMP=/usr/share/bash-completion/completions/capsa
# complete_words WORDS...: what _capsa offers for the last word, one per line,
# as bash calls it (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT).
complete_words () {
    env -C "$WORK" PATH=/usr/bin:/bin bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$0"
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _capsa
        printf "%s\n" "${COMPREPLY[@]}"' "$COMP" "$@"
}
expect_eq "deb: completion: capsa exec --add- gives --add-caps" "--add-caps" \
    "$(complete_words capsa exec --add-)"
expect_match "deb: completion: commands" '^exec run shell test run-help inspect .*sif siftool capability caps instance version help$' \
    "$(complete_words capsa '' | paste -sd' ')"
expect_eq "deb: completion: capability names for --add-caps" "CAP_NET_RAW" \
    "$(complete_words capsa exec --add-caps CAP_NET_R)"
expect_eq "deb: completion: lists after a comma, lower case" "net_raw,sys_admin" \
    "$(complete_words capsa exec --add-caps net_raw,sys_adm)"
expect_eq "deb: completion: capsa capability add names" "CAP_SYS_CHROOT" \
    "$(complete_words capsa capability add CAP_SYS_CH)"
mkdir -p "$WORK/imgs/sub" && touch "$WORK/imgs/a.sif" "$WORK/imgs/b.sqfs" "$WORK/imgs/notes.txt"
expect_eq "deb: completion: images are directories, *.sif and *.sqfs" "imgs/a.sif imgs/b.sqfs imgs/sub" \
    "$(complete_words capsa exec -B /tmp imgs/ | sort | paste -sd' ')"
expect_eq "deb: completion: nothing of capsa's after IMAGE" "" \
    "$(complete_words capsa exec imgs/a.sif --add-)"
expect_match "deb: completion: inspect flags" '--deffile' "$(complete_words capsa inspect --d)"

# A real interactive bash of a user (Debian's ~/.bashrc loads
# bash-completion): type "capsa exec --add-", Tab, then go to the start of
# the line and make it an echo; then ask for the completion spec.
out=$(printf 'capsa exec --add-\t\001echo \ncomplete -p capsa\nexit\n' |
    timeout 30 runuser -u "$TUSER" -- env -i HOME="$(getent passwd "$TUSER" | cut -d: -f6)" \
        PATH=/usr/bin:/bin TERM=dumb XDG_DATA_DIRS=/usr/share script -qfec 'bash -i' /dev/null 2>&1 | tr -d '\r')
expect_match "deb: interactive bash: Tab completes capsa exec --add- to --add-caps" \
    '^capsa exec --add-caps$' "$out"
expect_match "deb: interactive bash: complete -p capsa is set" '^complete -F _capsa capsa$' "$out"

# A real Apptainer package (a stand-in made with dpkg-deb) installs its own
# /usr/bin/apptainer: no conflict; dpkg keeps its file and capsa's removal
# leaves it alone.
F=$WORK/fake-apptainer
mkdir -p "$F/DEBIAN" "$F/usr/bin"
printf 'Package: capsa-test-fake-apptainer\nVersion: 1.0\nArchitecture: all\nMaintainer: capsa tests <t@example.org>\nDescription: stand-in for apptainer\n' > "$F/DEBIAN/control"
printf '#!/bin/sh\necho real-apptainer\n' > "$F/usr/bin/apptainer"
chmod 0755 "$F/usr/bin/apptainer"
dpkg-deb -b "$F" "$WORK/fake.deb" > /dev/null 2>&1
run dpkg -i "$WORK/fake.deb"
expect_eq "deb: a package with /usr/bin/apptainer installs beside capsa" "0 real-apptainer" "$RC $(/usr/bin/apptainer 2>&1)"

# capability add/drop leave a lock file beside capability.json.
/usr/bin/capsa capability add --user "$TUSER" CAP_NET_RAW > /dev/null 2>&1
/usr/bin/capsa capability drop --user "$TUSER" CAP_NET_RAW > /dev/null 2>&1
run "${APT[@]}" remove capsa
expect_eq "deb: apt-get remove" 0 "$RC"
expect_eq "deb: after remove the other package's apptainer stays, capsa's names are gone" "real-apptainer no no" \
    "$(/usr/bin/apptainer 2>&1) $([ -e /usr/bin/singularity ] && echo yes || echo no) $([ -e /etc/alternatives/apptainer ] && echo yes || echo no)"
dpkg -r capsa-test-fake-apptainer > /dev/null 2>&1
expect_eq "deb: after remove the package keeps only its configuration" "config-files" \
    "$(dpkg-query -W -f '${db:Status-Status}' capsa 2>&1)"
left=
while IFS= read -r f; do
    if [ -n "$f" ] && [ ! -d "$f" ] && { [ -e "$f" ] || [ -L "$f" ]; } &&
        ! printf '%s\n' "$CONFFILES" | grep -qxF -- "$f"; then
        left+=" $f"
    fi
done <<< "$FILES"
expect_eq "deb: after remove no file but conffiles remains" "" "$left"
expect_eq "deb: after remove every conffile remains" "" \
    "$(for f in $CONFFILES; do [ -f "$f" ] || echo "$f"; done)"
expect_eq "deb: after remove nothing else is in /etc/capsa" "" \
    "$(find /etc/capsa -type f | sort | grep -vxF "$CONFFILES")"
expect_eq "deb: after remove /usr/libexec/capsa and /usr/share/doc/capsa are gone" "" \
    "$(ls -d /usr/libexec/capsa /usr/share/doc/capsa /usr/bin/capsa 2> /dev/null)"

run "${APT[@]}" purge capsa
expect_eq "deb: apt-get purge leaves nothing" "0 not-installed no /etc/capsa" \
    "$RC $(dpkg-query -W -f '${db:Status-Status}' capsa 2> /dev/null || echo not-installed) $([ -e /etc/capsa ] && echo /etc/capsa is left || echo no /etc/capsa)"
trap - EXIT INT TERM
no_leftover_mounts "deb: no mounts left"
