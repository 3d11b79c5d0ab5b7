# --security (seccomp, uid, gid, selinux, apparmor), --allow-setuid and the
# administrator's limits on images.
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
GRANTS=$CAPSA_PREFIX/etc/capsa/capability.json
cp "$CONF" "$WORK/conf.orig"
U=$TUSER
T=${WORK##*.}

cat > "$WORK/nomkdir.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_KILL"}]}
EOF
cat > "$WORK/nosocket.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
EOF
printf '{"defaultAction": "SCMP_ACT_ALLOW",\n "syscalls": [ {"names": ["x"] "action": 1} ]}\n' > "$WORK/broken.json"
chmod 0644 "$WORK"/*.json

# 1. seccomp.
for who in root user userns; do
    case $who in
    root) r () { run "$CAPSA" exec "$@"; } ;;
    user) r () { run_user "$CAPSA exec $(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$CAPSA exec --userns $(printf '%q ' "$@")"; } ;;
    esac
    # /tmp is the host's: what mkdir makes there can be seen from here.
    r --security "seccomp:$WORK/nomkdir.json" "$IMG_DIR" mkdir "/tmp/capsa-seccomp-$T-$who"
    expect_eq "seccomp KILL of mkdir ($who): exit 159" "159" "$RC"
    expect_absent "the killed mkdir created nothing ($who)" "/tmp/capsa-seccomp-$T-$who"
    r "$IMG_DIR" mkdir "/tmp/capsa-seccomp-$T-$who-ok"
    check "without the profile the same mkdir creates it ($who)" test -d "/tmp/capsa-seccomp-$T-$who-ok"
    rm -rf "/tmp/capsa-seccomp-$T-$who" "/tmp/capsa-seccomp-$T-$who-ok"
    r --security "seccomp:$WORK/nomkdir.json" "$IMG_DIR" true
    expect_eq "seccomp profile, allowed command ($who): exit 0" "0" "$RC"
done
run "$CAPSA" -v exec --security "seccomp:$WORK/nomkdir.json" "$IMG_DIR" true
expect_match "unknown syscall names skipped with a verbose note" "unknown system call 'no_such_syscall' skipped" "$OUT"
printf '{"users":{"pinger":["CAP_NET_RAW"]},"groups":{}}\n' > "$GRANTS"
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW --security seccomp:$WORK/nosocket.json $IMG_PING ping -c 1 127.0.0.1" 2>&1)
expect_match "ERRNO(1) for socket: ping fails even with CAP_NET_RAW granted" "socket: Operation not permitted" "$OUT"
OUT=$(as_user pinger "CAPSA_SECURITY=seccomp:$WORK/nosocket.json $CAPSA exec --add-caps CAP_NET_RAW $IMG_PING ping -c 1 127.0.0.1" 2>&1)
expect_match "CAPSA_SECURITY works like --security" "socket: Operation not permitted" "$OUT"
printf '{"users":{},"groups":{}}\n' > "$GRANTS"
run_user "$CAPSA exec --security seccomp:$WORK/broken.json $IMG_DIR true"
expect_eq "malformed profile: 255" "255" "$RC"
expect_match "malformed profile: position named" "^FATAL: .*broken.json: invalid JSON at line 2, column [0-9]+" "$OUT"
run_user "$CAPSA exec --security seccomp:$WORK/missing.json $IMG_DIR true"
expect_eq "missing profile: 255" "255" "$RC"
run_user "$CAPSA_PREFIX/libexec/capsa/starter exec --security seccomp:$WORK/nomkdir.json $IMG_DIR true"
expect_eq "the starter itself never parses profiles: 255" "255" "$RC"
# The administrator's profile applies to everyone, root included.
sed -i "s|^#seccomp profile = .*|seccomp profile = $CAPSA_PREFIX/etc/capsa/seccomp-profiles/default.json|" "$CONF"
# A user's mount fails anyway (no capability): keyctl, which a user may
# call, shows that the profile reaches a user's container.
run_user "$CAPSA exec -B $HELPERS/sysprobe:/sysprobe $IMG_DIR /sysprobe keyctl"
expect_eq "admin default profile: keyctl denied (user)" "keyctl=EPERM" "$OUT"
run "$CAPSA" exec "$IMG_DIR" sh -c 'mount -t tmpfs none /tmp 2>&1 && echo mounted'
expect_match "admin default profile: mount denied (root)" "permission denied|Operation not permitted" "$OUT"
run "$CAPSA" exec "$IMG_DIR" true
expect_eq "admin default profile: ordinary commands run" "0" "$RC"
cp "$WORK/conf.orig" "$CONF"
run "$CAPSA" exec "$IMG_DIR" sh -c 'mount -t tmpfs none /tmp 2>&1 && echo mounted'
expect_eq "without the admin profile root can mount" "mounted" "$OUT"
run_user "$CAPSA exec -B $HELPERS/sysprobe:/sysprobe $IMG_DIR /sysprobe keyctl"
expect_eq "without the admin profile a user can call keyctl" "keyctl=OK" "$OUT"

# 2. Target uid/gid.
run_user "$CAPSA exec --security uid:99 $IMG_DIR id -u"
expect_eq "uid: as a user in setuid mode: 255" "255" "$RC"
expect_match "uid: as a user: message" "^FATAL: .*root only" "$OUT"
run_user "$CAPSA exec --security gid:99 $IMG_DIR id -g"
expect_eq "gid: as a user in setuid mode: 255" "255" "$RC"
run "$CAPSA" exec --security uid:99 "$IMG_DIR" id -u
expect_eq "root --security uid:99: id -u" "99" "$OUT"
run "$CAPSA" exec --security gid:99 "$IMG_DIR" id -g
expect_eq "root --security gid:99: id -g" "99" "$OUT"
run "$CAPSA" exec --security uid:99 "$IMG_DIR" grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status
expect_eq "root as uid 99: no capabilities, no_new_privs" "$(printf 'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1')" "$OUT"
run_user "$CAPSA exec --userns --security uid:99 $IMG_DIR id -u"
expect_eq "--userns --security uid:99 as a user: allowed" "99" "$OUT"
run_user "$CAPSA exec --userns --security gid:99 $IMG_DIR id -g"
expect_eq "--userns --security gid:99 as a user: allowed" "99" "$OUT"

# 3. LSMs that are not there, and bad values.
for lsm in selinux apparmor; do
    run "$CAPSA" exec --security "$lsm:x" "$IMG_DIR" true
    expect_eq "--security $lsm:x without $lsm: 255" "255" "$RC"
    expect_eq "--security $lsm:x: message" "FATAL:   $lsm requested, but is not enabled or supported on this system" "$OUT"
done
run "$CAPSA" exec --security selinux:user_u:role_r:type_t:s0:c1,c2 "$IMG_DIR" true
expect_match "an SELinux label with commas stays whole" "selinux requested" "$OUT"
for bad in foo seccomp "uid:abc" "bogus:1"; do
    run "$CAPSA" exec --security "$bad" "$IMG_DIR" true
    expect_eq "--security $bad: 255" "255" "$RC"
    expect_match "--security $bad: message names the value" "^FATAL: .*'$bad'" "$OUT"
done

# 4. Limits.
rm -rf /scratch-capsa /scratch-capsa2
mkdir -p /scratch-capsa /scratch-capsa2
cp "$FIXTURES/sif/busybox_amd64.sif" /scratch-capsa/a.sif
cp "$FIXTURES/sif/busybox_amd64.sif" /scratch-capsa2/a.sif
cp "$FIXTURES/sif/busybox_amd64.sif" /etc/capsa-test-x.sif
chmod 0644 /scratch-capsa/a.sif /scratch-capsa2/a.sif /etc/capsa-test-x.sif
printf 'limit container paths = /scratch-capsa\n' >> "$CONF"
run_user "$CAPSA exec /scratch-capsa/a.sif true"
expect_eq "limit paths admits /scratch-capsa/a.sif" "0" "$RC"
run_user "$CAPSA exec /scratch-capsa2/a.sif true"
expect_eq "limit paths refuses /scratch-capsa2/a.sif" "255" "$RC"
expect_match "limit paths: message" "^FATAL: .*not under 'limit container paths'" "$OUT"
run_user "$CAPSA exec /scratch-capsa/../etc/capsa-test-x.sif true"
expect_eq "limit paths refuses /scratch-capsa/../etc/x.sif" "255" "$RC"
ln -sf /etc/capsa-test-x.sif /scratch-capsa/link.sif
run_user "$CAPSA exec /scratch-capsa/link.sif true"
expect_eq "limit paths refuses a symlink leading out" "255" "$RC"
run "$CAPSA" exec /scratch-capsa2/a.sif true
expect_eq "limits never restrict root" "0" "$RC"
# Which way the image is mounted, seen from the host: a kernel mount sits
# on a loop device backed by the file, squashfuse_ll needs none.
loop_during_run () {
    local bg loop= _
    as_user "$U" "$CAPSA exec $1 sleep 1" > "$WORK/loop.out" 2>&1 &
    bg=$!
    for _ in $(seq 25); do
        loop=$(losetup -j "$1")
        [ -n "$loop" ] && break
        sleep 0.1
    done
    wait "$bg"; RC=$?
    OUT=$loop
}
loop_during_run /scratch-capsa/a.sif
expect_rc "with limits set, the run succeeds" 0
expect_match "with limits set, iflimited lets the kernel mount the image (loop device on it)" "\(/scratch-capsa/a.sif\)" "$OUT"
cp "$WORK/conf.orig" "$CONF"
loop_during_run /scratch-capsa/a.sif
expect_rc "without limits, the run succeeds" 0
expect_eq "without limits, iflimited leaves the image to squashfuse_ll (no loop device)" "" "$OUT"
chown "$U" /scratch-capsa/a.sif
printf 'limit container owners = root\n' >> "$CONF"
run_user "$CAPSA exec /scratch-capsa/a.sif true"
expect_eq "limit owners refuses an image owned by the user" "255" "$RC"
expect_match "limit owners: message" "'limit container owners'" "$OUT"
run_user "$CAPSA exec /scratch-capsa2/a.sif true"
expect_eq "limit owners admits a root-owned image" "0" "$RC"
cp "$WORK/conf.orig" "$CONF"
printf 'limit container groups = root\n' >> "$CONF"
chgrp "$U" /scratch-capsa/a.sif
run_user "$CAPSA exec /scratch-capsa/a.sif true"
expect_eq "limit groups refuses" "255" "$RC"
expect_match "limit groups: message" "'limit container groups'" "$OUT"
run "$CAPSA" exec /scratch-capsa/a.sif true
expect_eq "limit groups never restricts root" "0" "$RC"
cp "$WORK/conf.orig" "$CONF"
for kind in sif squashfs dir; do
    case $kind in sif) img=/scratch-capsa2/a.sif ;; squashfs) img=$IMG_SQFS ;; dir) img=$IMG_DIR ;; esac
    sed -i "s/^allow container $kind = yes/allow container $kind = no/" "$CONF"
    run_user "$CAPSA exec $img true"
    expect_eq "allow container $kind = no refuses a user" "255" "$RC"
    expect_match "allow container $kind = no: message" "allow container $kind = no" "$OUT"
    run "$CAPSA" exec "$img" true
    expect_eq "allow container $kind = no never restricts root" "0" "$RC"
    cp "$WORK/conf.orig" "$CONF"
done
rm -rf /scratch-capsa /scratch-capsa2 /etc/capsa-test-x.sif

# 5. --allow-setuid.
suid=$WORK/suid-image
cp -a "$IMG_DIR" "$suid"
cp "$HELPERS/showid" "$suid/bin/showid" && chown root:root "$suid/bin/showid" && chmod 4755 "$suid/bin/showid"
run_user "$CAPSA exec --allow-setuid $suid /bin/showid"
expect_eq "--allow-setuid as a user: 255" "255" "$RC"
run "$CAPSA" exec --security uid:99 --allow-setuid "$suid" /bin/showid
expect_eq "root --allow-setuid: the setuid-root helper runs with euid 0" "uid=99 euid=0" "$OUT"
run "$CAPSA" exec --security uid:99 "$suid" /bin/showid
expect_eq "root without --allow-setuid: it does not" "uid=99 euid=99" "$OUT"
no_leftover_mounts "no mount left after the security runs"
