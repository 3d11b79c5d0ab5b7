# --fakeroot (issue 15): a user namespace where the caller is root, with the
# caller's /etc/subuid and /etc/subgid ranges mapped by newuidmap/newgidmap;
# capsa config fakeroot; build --fakeroot; and the attacks that must fail.
#
# /etc/subuid and /etc/subgid are the machine's: they are backed up first,
# only the test users capsa-fk1 and capsa-fk2 are added or changed, and the
# files are checked (and restored if need be) at the end.
# capsa-u1 ($TUSER) has a range of its own (useradd gives every new user
# one); capsa-fk2 never has one.

SUBUID=/etc/subuid SUBGID=/etc/subgid
FK1=capsa-fk1 FK2=capsa-fk2
for u in $FK1 $FK2; do
    id "$u" > /dev/null 2>&1 || useradd -m -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$u"
done
# A run stopped half-way (killed, machine reset) may have left the test
# users' entries: they are the test's own, so they go before the backup,
# which is then what "the machine's entries" means.
for f in subuid subgid; do
    sed -i "/^!\?\($FK1\|$FK2\|$(id -u $FK1)\|$(id -u $FK2)\):/d" "/etc/$f"
done
cp -p "$SUBUID" "$WORK/subuid.orig" && cp -p "$SUBGID" "$WORK/subgid.orig" || { fail "fakeroot setup" "cannot back up $SUBUID"; return; }
# Nobody else's entries are touched: only these users' lines change.
restore_subids () {
    "$CAPSA" config fakeroot --remove $FK1 > /dev/null 2>&1
    "$CAPSA" config fakeroot --remove $FK2 > /dev/null 2>&1
    for f in subuid subgid; do
        if grep -q "^!\?\($FK1\|$FK2\|$(id -u $FK1)\|$(id -u $FK2)\):" "/etc/$f" \
            || [ -n "$(comm -23 <(sort "$WORK/$f.orig") <(sort "/etc/$f"))" ]; then
            cp -p "$WORK/$f.orig" "/etc/$f"
        fi
    done
}
trap restore_subids EXIT
restore_subids
UID1=$(id -u "$TUSER") GID1=$(id -g "$TUSER")
range_of () { awk -F: -v u="$1" -v n="$2" '$1 == u || $1 == n {print $2 ":" $3; exit}' "$3"; }
R1=$(range_of "$TUSER" "$UID1" "$SUBUID")
G1=$(range_of "$TUSER" "$UID1" "$SUBGID")
SQ=$IMG_SQFS
CAPLAST=$(cat /proc/sys/kernel/cap_last_cap)
ALLCAPS=$(printf '%016x' $(( (1 << (CAPLAST + 1)) - 1 )))

# ---------------------------------------------------------------- 1. a user with a range

expect_match "$TUSER has a range of 65536 in $SUBUID and $SUBGID (useradd's)" "^[0-9]+:65536 [0-9]+:65536$" "$R1 $G1"
for mode in setuid userns; do
    flag=""; [ $mode = userns ] && flag="--userns"
    run_user "$CAPSA exec $flag --fakeroot $SQ id -u"
    expect_eq "fakeroot ($mode): id -u is 0" "0:0" "$RC:$OUT"
    run_user "$CAPSA exec $flag --fakeroot $SQ sh -c 'cat /proc/self/uid_map /proc/self/gid_map' | tr -s ' ' | sed 's/^ //'"
    expect_eq "fakeroot ($mode): root is the caller, 1-65536 the subordinate ranges" \
        "0 $UID1 1
1 ${R1%:*} 65536
0 $GID1 1
1 ${G1%:*} 65536" "$OUT"
    run_user "$CAPSA exec $flag --fakeroot --writable-tmpfs $SQ sh -c 'touch /newfile && chown 1234:1234 /newfile && stat -c %u:%g /newfile'"
    expect_eq "fakeroot --writable-tmpfs ($mode): chown 1234:1234 of a new file" "0:1234:1234" "$RC:$OUT"
    run_user "$CAPSA exec $flag --fakeroot $SQ sh -c 'grep -E \"^(CapEff|CapBnd|CapAmb|NoNewPrivs)\" /proc/self/status' | tr -s '\t ' ' '"
    expect_eq "fakeroot ($mode): every capability (inside the namespace), no_new_privs" "CapEff: $ALLCAPS
CapBnd: $ALLCAPS
CapAmb: $ALLCAPS
NoNewPrivs: 1" "$OUT"
    run_user "$CAPSA exec $flag --fakeroot --no-privs $SQ grep CapEff /proc/self/status"
    expect_match "fakeroot --no-privs ($mode): no capability" "CapEff:[[:space:]]+0000000000000000" "$OUT"
    run_user "$CAPSA exec $flag --fakeroot --drop-caps CAP_CHOWN --writable-tmpfs $SQ sh -c 'touch /f; chown 1234 /f'"
    expect_match "fakeroot --drop-caps CAP_CHOWN ($mode): chown refused" "Operation not permitted" "$OUT"
    run_user "$CAPSA exec $flag --fakeroot $SQ sh -c 'echo \$HOME; ls -a /root | grep -c .profile'"
    expect_eq "fakeroot ($mode): HOME is /root, the caller's home bound there" "/root
1" "$OUT"
done
run_user "$CAPSA -v exec --fakeroot $SQ true"
expect_match "fakeroot: verbose says which ids are mapped" "VERBOSE: --fakeroot: root inside is uid $UID1; uids 1-65536 are ${R1%:*}-" "$OUT"
run_user "CAPSA_FAKEROOT=1 $CAPSA exec $SQ id -u"
expect_eq "CAPSA_FAKEROOT=1 works like --fakeroot" "0" "$OUT"
run "$CAPSA" exec --fakeroot "$SQ" sh -c 'id -u; cat /proc/self/uid_map' 
expect_match "root with --fakeroot: root, no namespace" "^0
 +0 +0 +4294967295$" "$OUT"
run_user "echo 'id -u' | $CAPSA shell --fakeroot $SQ"
expect_eq "shell --fakeroot" "0" "$OUT"
run_user "$CAPSA run --fakeroot $SQ x"
expect_eq "run --fakeroot: the runscript runs" "runscript args: x" "$OUT"

# The setuid starter gives root up at once: the monitor of a fakeroot
# container is the user in all ids, with no capability.
as_user "$TUSER" "$CAPSA exec --fakeroot $SQ sleep 37" > /dev/null 2>&1 &
bg=$!
mon=""
for _ in $(seq 100); do
    mon=$(pgrep -u "$UID1" -x starter | head -1)
    [ -n "$mon" ] && pgrep -f '^sleep 37' > /dev/null && break
    sleep 0.1
done
if [ -n "$mon" ]; then
    expect_eq "fakeroot: the starter (monitor) keeps no root id" "Uid: $UID1 $UID1 $UID1 $UID1" \
        "$(grep ^Uid: /proc/$mon/status | tr -s '\t ' ' ')"
    expect_eq "fakeroot: the starter (monitor) holds no capability" "CapPrm: 0000000000000000" \
        "$(grep ^CapPrm: /proc/$mon/status | tr -s '\t ' ' ')"
else
    fail "fakeroot: the starter gives root up" "no starter process of $TUSER seen"
fi
kill "$bg" 2>/dev/null; pkill -u "$UID1" -f '^sleep 37'; wait "$bg" 2>/dev/null

# ---------------------------------------------------------------- 2. without a range

run "as_user" "$FK2" "$CAPSA exec --fakeroot $SQ sh -c 'id -u; cat /proc/self/uid_map'"
expect_match "no range: a WARNING saying what will not work" \
    "^WARNING: --fakeroot: $FK2 has no subordinate ids in $SUBUID and $SUBGID \(no entry\): only your own uid and gid are mapped, to root\. Files cannot be given to other users or groups \(chown fails\)" "$OUT"
expect_match "no range: still root inside, the caller alone mapped" "^0
 +0 +$(id -u $FK2) +1$" "$(printf '%s\n' "$OUT" | grep -v '^WARNING')"
run "as_user" "$FK2" "$CAPSA -q exec --fakeroot --writable-tmpfs $SQ sh -c 'touch /f; chown 1234 /f'"
expect_match "no range: chown to another uid fails" "Invalid argument" "$OUT"
run "as_user" "$FK2" "$CAPSA -s exec --userns --fakeroot $SQ id -u"
expect_eq "no range, --userns: id -u is 0" "0:0" "$RC:$OUT"

# ---------------------------------------------------------------- 3. capsa config fakeroot

run_user "$CAPSA config fakeroot --add $FK1"
expect_eq "config fakeroot as a user: exit 255" "255" "$RC"
expect_match "config fakeroot as a user: says only root" "^FATAL: +config fakeroot: only root can change /etc/subuid and /etc/subgid$" "$OUT"
cp -p "$SUBUID" "$WORK/subuid.before"
run "$CAPSA" config fakeroot --add $FK1
expect_eq "config fakeroot --add: exit 0" "0:" "$RC:$OUT"
line=$(grep "^$(id -u $FK1):" "$SUBUID")
expect_match "--add: UID:START:65536 in $SUBUID" "^$(id -u $FK1):[0-9]+:65536$" "$line"
expect_eq "--add: the same range in $SUBGID" "$line" "$(grep "^$(id -u $FK1):" "$SUBGID")"
expect_eq "--add: every other line kept, in order" "$(cat "$WORK/subuid.before")" "$(grep -v "^$(id -u $FK1):" "$SUBUID")"
expect_eq "--add: owner and mode kept" "$(stat -c '%u %g %a' "$WORK/subuid.before")" "$(stat -c '%u %g %a' "$SUBUID")"
expect_eq "--add: no lock or temporary file left in /etc" "" "$(ls -a /etc | grep -E '^(subuid|subgid)\.lock$|\.capsa' )"
fkstart=$(echo "$line" | cut -d: -f2)
run "as_user" "$FK1" "$CAPSA exec --fakeroot $SQ cat /proc/self/uid_map"
expect_match "--add: newuidmap grants the new range" " +1 +$fkstart +65536$" "$OUT"
expect_nomatch "--add: no WARNING any more" "WARNING" "$OUT"
run "$CAPSA" config fakeroot --add $FK1
expect_eq "--add again: nothing changes" "0:$line" "$RC:$(grep "^$(id -u $FK1):" "$SUBUID")"
run "$CAPSA" config fakeroot --disable $FK1
expect_eq "--disable: '!' before the entry" "!$line" "$(grep "$(id -u $FK1):" "$SUBUID")"
run "as_user" "$FK1" "$CAPSA exec --fakeroot $SQ cat /proc/self/uid_map"
expect_match "--disable: the user gets the single-id WARNING" "\(disabled by the administrator\)" "$OUT"
expect_nomatch "--disable: newuidmap no longer grants the range" " 1 +$fkstart " "$OUT"
run "$CAPSA" config fakeroot --enable $FK1
expect_eq "--enable: the entry is back" "$line" "$(grep "$(id -u $FK1):" "$SUBUID")"
run "$CAPSA" config fakeroot --remove $FK1
expect_eq "--remove: exit 0, the entry gone from both files" "0::" "$RC:$(grep "$(id -u $FK1):" "$SUBUID"):$(grep "$(id -u $FK1):" "$SUBGID")"
expect_eq "--remove: the file is as before --add" "$(cat "$WORK/subuid.before")" "$(cat "$SUBUID")"
run "$CAPSA" config fakeroot --remove $FK1
expect_eq "--remove without an entry: exit 255" "255" "$RC"
expect_match "--remove without an entry: says so" "^FATAL: +no mapping entry for $FK1 in /etc/subuid$" "$OUT"
run "$CAPSA" config fakeroot --add capsa-no-such-user
expect_match "an unknown user: FATAL" "^FATAL: +user 'capsa-no-such-user' does not exist$" "$OUT"
run "$CAPSA" config fakeroot --add --remove $FK1
expect_eq "two operations at once: exit 255" "255" "$RC"
# shadow's lock: held by a live process, refused; left by a dead one, taken.
sleep 37 & holder=$!
echo "$holder" > "$SUBUID.lock"
run "$CAPSA" config fakeroot --add $FK1
expect_eq "a lock held by a live process: exit 255" "255" "$RC"
expect_match "a lock held by a live process: names it" "/etc/subuid is locked by process $holder" "$OUT"
expect_eq "a lock held by a live process: nothing changed" "$(cat "$WORK/subuid.before")" "$(cat "$SUBUID")"
kill "$holder"; wait "$holder" 2>/dev/null
run "$CAPSA" config fakeroot --add $FK1
expect_eq "a stale lock (dead process): taken over, entry added" "0:1" "$RC:$(grep -c "^$(id -u $FK1):" "$SUBUID")"
expect_eq "a stale lock: removed afterwards" "" "$(ls /etc/subuid.lock 2>/dev/null)"

# ---------------------------------------------------------------- 4. attacks: nothing reaches the host

echo "root's file" > "$WORK/victim" && chmod 0644 "$WORK/victim"
mkdir -p "$WORK/victimdir" && chmod 0755 "$WORK/victimdir"
u2home=$(getent passwd "$TUSER2" | cut -d: -f6)
as_user "$TUSER2" "echo u2-secret > \$HOME/u2file && chmod 0644 \$HOME/u2file && chmod 0755 \$HOME"
for mode in setuid userns; do
    flag=""; [ $mode = userns ] && flag="--userns"
    run_user "$CAPSA exec $flag --fakeroot -B $WORK/victim:/victim -B $WORK/victimdir:/vd $SQ sh -c '
        echo evil >> /victim && echo appended; chmod 0666 /victim && echo chmodded; chown 1001 /victim && echo chowned;
        touch /vd/new && echo created; mv /victim /victim2 && echo moved; true'"
    expect_nomatch "fakeroot ($mode): a root-owned host file bound in cannot be changed" "appended|chmodded|chowned|created|moved" "$OUT"
    expect_eq "fakeroot ($mode): the file on the host is unchanged" "root's file 644 0" "$(cat "$WORK/victim") $(stat -c '%a %u' "$WORK/victim")"
    expect_eq "fakeroot ($mode): nothing created in the root-owned directory" "" "$(ls -A "$WORK/victimdir")"
    run_user "$CAPSA exec $flag --fakeroot -B $u2home:/u2 $SQ sh -c 'echo x >> /u2/u2file && echo written; touch /u2/mine && echo created; true'"
    expect_nomatch "fakeroot ($mode): capsa-u2's files stay capsa-u2's" "written|created" "$OUT"
    expect_eq "fakeroot ($mode): capsa-u2's file unchanged" "u2-secret" "$(cat "$u2home/u2file")"
    run_user "$CAPSA exec $flag --fakeroot -B /etc/shadow:/shadow $SQ sh -c 'cat /shadow > /dev/null && echo read; true'"
    expect_nomatch "fakeroot ($mode): the host's /etc/shadow stays unreadable" "^read$" "$OUT"
    run_user "$CAPSA exec $flag --fakeroot $SQ sh -c 'echo 1 > /proc/sys/vm/drop_caches && echo wrote; true'"
    expect_nomatch "fakeroot ($mode): /proc/sys is not writable" "wrote" "$OUT"
done
rm -f "$u2home/u2file"
no_leftover_mounts "fakeroot: no mount left on the host"

# ---------------------------------------------------------------- 5. build --fakeroot

B=$WORK/fkb
mkdir -p "$B/pkg/DEBIAN" "$B/pkg/opt/capsa-pkg"
printf 'Package: capsa-test-pkg\nVersion: 1.0\nArchitecture: all\nMaintainer: capsa tests <t@example.org>\nDescription: a test package\n' > "$B/pkg/DEBIAN/control"
echo owned > "$B/pkg/opt/capsa-pkg/owned"
chown -R 0:0 "$B/pkg" && chown 1234:1234 "$B/pkg/opt/capsa-pkg/owned"
dpkg-deb -b "$B/pkg" "$B/capsa-test.deb" > /dev/null
expect_match "the test package has a file of uid 1234 (dpkg-deb -c)" "1234/1234 .*opt/capsa-pkg/owned" "$(dpkg-deb -c "$B/capsa-test.deb")"
part_offset () { "$CAPSA" sif list "$1" | awk -F'|' '$5 ~ /^FS / {split($4, a, "-"); print a[1] + 0; exit}'; }
if MINSQ=$(fixture_minbase_sqfs); then
    cat > "$B/dpkg.def" <<EOF
Bootstrap: localimage
From: $MINSQ

%files
    $B/capsa-test.deb /tmp/capsa-test.deb

%post
    dpkg -i /tmp/capsa-test.deb
    rm /tmp/capsa-test.deb
    useradd -u 1500 builder
    mkdir -p /home/builder && chown builder:builder /home/builder
EOF
    chmod -R a+rX "$B"
    uhome=$(getent passwd "$TUSER" | cut -d: -f6)
    rm -f "$uhome/fk-dpkg.sif"
    run_user "$CAPSA build --fakeroot \$HOME/fk-dpkg.sif $B/dpkg.def"
    expect_eq "build --fakeroot with dpkg and useradd in %post, as $TUSER: exit 0" "0" "$RC"
    listing=$(unsquashfs -lln -o "$(part_offset "$uhome/fk-dpkg.sif")" "$uhome/fk-dpkg.sif" 2>/dev/null)
    expect_match "build --fakeroot: dpkg's file keeps uid 1234 in the image" "^-rw-r--r-- 1234/1234 .* squashfs-root/opt/capsa-pkg/owned$" "$listing"
    expect_match "build --fakeroot: useradd's home belongs to 1500 in the image" "^d[rwx-]+ 1500/1500 .* squashfs-root/home/builder$" "$listing"
    expect_match "build --fakeroot: root's files are root's" "^-rwxr-xr-x 0/0 .* squashfs-root/usr/bin/dpkg$" "$listing"
    run_user "$CAPSA exec \$HOME/fk-dpkg.sif dpkg -s capsa-test-pkg"
    expect_match "build --fakeroot: the package is installed in the image" "Status: install ok installed" "$OUT"
    expect_eq "build --fakeroot: no build directory left" "" "$(ls -a "$uhome" | grep capsa-build)"
    rm -f "$uhome/fk-dpkg.sif"
    rm -f "$(getent passwd $FK2 | cut -d: -f6)/nr.sif"
    run as_user "$FK2" "$CAPSA build --fakeroot \$HOME/nr.sif $B/dpkg.def"
    expect_eq "build --fakeroot without a range: dpkg's chown fails the build (255)" "255" "$RC"
    expect_match "build --fakeroot without a range: the WARNING, then %post failed" "WARNING: --fakeroot: $FK2 has no subordinate ids.*FATAL: .*dpkg.def:[0-9]+: %post failed" "$(printf '%s' "$OUT" | tr '\n' ' ')"
else
    fail "build --fakeroot with dpkg" "fixture_minbase_sqfs failed"
fi
printf 'Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: %s\n' "$(_fx_mirror)" > "$B/deb.def"
chmod 0644 "$B/deb.def"
run as_user "$FK2" "$CAPSA build --fakeroot \$HOME/d.sif $B/deb.def"
expect_eq "debootstrap with --fakeroot and no range: exit 255" "255" "$RC"
expect_match "debootstrap with --fakeroot and no range: says what is needed" "debootstrap' needs root, or --fakeroot with subordinate ids in /etc/subuid and /etc/subgid .*you have none" "$OUT"

# A real debootstrap build as $TUSER (cached: rebuilt only when the
# definition or capsa's build code changes; about 2 minutes with the .debs
# of $CACHE/debs).
_fk_deb_def () {
    printf '%s\n' 'Bootstrap: debootstrap' 'OSVersion: bookworm' "MirrorURL: $(_fx_mirror)" '' '%post' \
        '    echo made-by-fakeroot > /etc/capsa-fk.txt' '    chown _apt:nogroup /etc/capsa-fk.txt'
}
_fk_make_deb_sif () {   # TMPFILE
    local out=$1 dir rc
    dir=$(mktemp -d /tmp/capsa-fkdeb.XXXXXX) && chown "$TUSER" "$dir" || return 1
    _fk_deb_def > "$dir/deb.def"
    mkdir -p "$CACHE/debs" && cp -r "$CACHE/debs" "$dir/debs" && chown -R "$TUSER" "$dir" && chmod -R a+rX "$dir"
    as_user "$TUSER" "CAPSA_DEBOOTSTRAP_CACHE=$dir/debs $CAPSA -q build --fakeroot $dir/out.sif $dir/deb.def"
    rc=$?
    [ $rc -eq 0 ] && cat "$dir/out.sif" > "$out"
    rm -rf "$dir"
    return $rc
}
ver=$("$CAPSA" build --code-version)
key=$( (_fk_deb_def; echo "capsa-build-$ver fakeroot-deb-v1") | sha256sum | cut -c1-16)
if DEBSIF=$(_fx_build "fakeroot-deb-$key.sif" file _fk_make_deb_sif); then
    run_user "$CAPSA exec $DEBSIF cat /etc/capsa-fk.txt /etc/debian_version"
    expect_match "debootstrap built with --fakeroot by $TUSER runs" "^made-by-fakeroot
12\." "$OUT"
    listing=$(unsquashfs -lln -o "$(part_offset "$DEBSIF")" "$DEBSIF" 2>/dev/null)
    expect_match "debootstrap --fakeroot: %post's chown to _apt (uid 42) kept" "^-rw-r--r-- 42/65534 .* squashfs-root/etc/capsa-fk.txt$" "$listing"
    expect_match "debootstrap --fakeroot: system files are root's" "^-rwxr-xr-x 0/0 .* squashfs-root/usr/bin/apt$" "$listing"
else
    fail "debootstrap build with --fakeroot" "the build as $TUSER failed (see the log above)"
fi

restore_subids
# (Other users' lines may have been added meanwhile by useradd: only the
# entries that were there, and the test users', are compared.)
for f in subuid subgid; do
    expect_eq "/etc/$f: every entry that was there is still there, unchanged" "" \
        "$(comm -23 <(sort "$WORK/$f.orig") <(sort "/etc/$f"))"
    expect_eq "/etc/$f: no entry of the test users is left" "" \
        "$(grep "^!\?\($FK1\|$FK2\|$(id -u $FK1)\|$(id -u $FK2)\):" "/etc/$f")"
done
trap - EXIT
