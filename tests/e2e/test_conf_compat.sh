# Issue 14: capsa.conf accepts Apptainer's apptainer.conf.
#
#  1. every directive of the default apptainer.conf of Apptainer 1.3.6,
#     1.4.5 and 1.5.3 (tests/fixtures/apptainer-conf, rendered from
#     Apptainer's own confgen template) is accepted, one at a time;
#  2. each whole default file copied over capsa.conf runs containers for
#     root, for a user through the setuid starter and with --userns;
#  3. the directives capsa implements behave as Apptainer's code says:
#     bind path, mount dev (with the attacks on a host /dev given to users),
#     mount devpts, mount hostfs, mount slave, user bind control, memory fs
#     type.
#
# The directive list is read from the fixtures.  Four directives belong to
# issue 15 (fakeroot and overlays), which another branch adds to the same
# runtime: PENDING names them.  Until that branch is merged capsa reports
# them as unknown; this test then leaves their lines out of the whole-file
# runs and says so, and fails if any OTHER directive is unknown.  Once they
# are known nothing is left out, without a change here.
PENDING="enable overlay|sessiondir max size|allow setuid-mount extfs|allow container extfs"

U=$TUSER
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
FX=$TOP/tests/fixtures/apptainer-conf
VERSIONS="1.3.6 1.4.5 1.5.3"

# --- 1. every directive, one at a time ------------------------------------
# "key = value" lines, commented ("#key = value", "# key = value") or not;
# for each key the first uncommented value, else the first commented one.
directives () {
    local f line key val
    for f in "$@"; do
        grep -E '^[a-z][a-zA-Z _-]* =' "$f"
        grep -E '^# ?[a-z][a-zA-Z _-]* =' "$f" | sed -E 's/^# ?//'
    done | while IFS= read -r line; do
        key=$(printf '%s' "${line%%=*}" | sed 's/ *$//')
        val=$(printf '%s' "${line#*=}" | sed 's/^ *//')
        printf '%s\t%s\n' "$key" "$val"
    done | awk -F'\t' '!seen[$1]++'
}
for v in $VERSIONS; do chmod 0644 "$FX/apptainer-$v.conf" 2>/dev/null; done
directives $(for v in $VERSIONS; do echo "$FX/apptainer-$v.conf"; done) > "$WORK/directives"
ndir=$(wc -l < "$WORK/directives")
expect_match "the fixtures list Apptainer's directives (56 or more)" "^(5[6-9]|[6-9][0-9])$" "$ndir"
unknown=""
while IFS=$'\t' read -r key val; do
    cp "$WORK/conf.orig" "$CONF"
    printf '%s = %s\n' "$key" "$val" >> "$CONF"
    run "$CAPSA" exec "$IMG_DIR" echo ok
    if printf '%s\n' "$OUT" | grep -q "unknown directive '$key'"; then
        unknown="$unknown|$key"
        if printf '%s\n' "$key" | grep -qxE "$PENDING"; then
            echo "   note: '$key' is not known yet (issue 15, another branch)"
        else
            fail "directive '$key' is accepted" "unknown directive: $OUT"
        fi
        continue
    fi
    expect_eq "directive '$key = $val' accepted (root runs a container)" "0:ok" "$RC:$(printf '%s\n' "$OUT" | grep -v '^WARNING: ')"
done < "$WORK/directives"
cp "$WORK/conf.orig" "$CONF"
unknown=${unknown#|}

# --- 2. each whole default file ---------------------------------------------
for v in $VERSIONS; do
    if [ -n "$unknown" ]; then
        grep -vE "^(${unknown}) =" "$FX/apptainer-$v.conf" > "$CONF"
        echo "   note: apptainer-$v.conf without the lines of: $unknown"
    else
        cp "$FX/apptainer-$v.conf" "$CONF"
    fi
    chmod 0644 "$CONF"
    for img in "$IMG_DIR" "$IMG_SQFS"; do
        kind=$([ -d "$img" ] && echo dir || echo sqfs)
        run "$CAPSA" exec "$img" sh -c 'echo ok; id -u'
        expect_eq "apptainer-$v.conf as capsa.conf: root runs a $kind container, silently" "0:ok
0" "$RC:$OUT"
        run_user "$CAPSA exec $img sh -c 'echo ok; id -u'"
        expect_eq "apptainer-$v.conf as capsa.conf: a user (setuid) runs a $kind container, silently" "0:ok
$(id -u "$U")" "$RC:$OUT"
        run_user "$CAPSA exec --userns $img sh -c 'echo ok; id -u'"
        expect_eq "apptainer-$v.conf as capsa.conf: a user (--userns) runs a $kind container, silently" "0:ok
$(id -u "$U")" "$RC:$OUT"
    done
    # Its 'mount dev = yes': the host's /dev, devices usable by a user.
    run_user "$CAPSA exec $IMG_DIR sh -c ': <> /dev/fuse && echo fuse-usable'"
    expect_eq "apptainer-$v.conf: mount dev = yes gives a user the host's /dev (/dev/fuse usable)" "fuse-usable" "$OUT"
done
cp "$WORK/conf.orig" "$CONF"
no_leftover_mounts "no capsa mount left after the apptainer.conf runs"

# --- 3. the directives capsa implements ---------------------------------------
conf () { cp "$WORK/conf.orig" "$CONF"; printf '%s\n' "$@" >> "$CONF"; }
modes () {
    case $1 in
    root) r () { run "$CAPSA" exec "$@"; } ;;
    setuid) r () { run_user "$CAPSA exec $(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$CAPSA exec --userns $(printf '%q ' "$@")"; } ;;
    esac
}

# bind path: read-write; a missing source is an error; with --contain only
# /etc/hosts and /etc/localtime (container_linux.go addBindsMount).
mkdir -p "$WORK/bp" && echo bound > "$WORK/bp/f" && chmod -R a+rwX "$WORK/bp"
for mode in root setuid userns; do
    modes $mode
    conf "bind path = $WORK/bp:/bp"
    r "$IMG_DIR" sh -c "cat /bp/f; echo $mode > /bp/w-$mode && echo wrote"
    expect_eq "$mode: bind path is read-write" "bound
wrote" "$OUT"
    expect_eq "$mode: ... the write reached the host" "$mode" "$(cat "$WORK/bp/w-$mode" 2>&1)"
    r --contain "$IMG_DIR" sh -c 'test -e /bp/f || echo not-bound; cat /etc/hosts'
    expect_eq "$mode: --contain: bind path entries left out, the host's /etc/hosts kept" "not-bound
$(cat /etc/hosts)" "$OUT"
    conf "bind path = $WORK/bp:/bp:ro"
    r "$IMG_DIR" sh -c "cat /bp/f; touch /bp/x 2>&1"
    expect_match "$mode: bind path SRC:DST:ro: bound at DST, read-only" "^bound
.*Read-only file system" "$OUT"
    conf "bind path = $WORK/no-such-dir:/bp"
    r "$IMG_DIR" true
    expect_eq "$mode: a missing bind path is an error" "255:FATAL:   bind path $WORK/no-such-dir: No such file or directory" "$RC:$OUT"
done

# mount dev = yes: the host's /dev for users too (nosuid), devices usable.
for mode in setuid userns; do
    modes $mode
    conf "mount dev = yes"
    r "$IMG_DIR" sh -c ': <> /dev/fuse && echo fuse-usable; test -c /dev/loop-control && echo host-dev'
    expect_eq "$mode: mount dev = yes: host devices there and usable" "fuse-usable
host-dev" "$OUT"
    r "$IMG_DIR" sh -c 'grep " /dev " /proc/self/mountinfo | grep -c nosuid'
    expect_eq "$mode: mount dev = yes: /dev is nosuid" "1" "$OUT"
    conf "mount dev = minimal"
    r "$IMG_DIR" sh -c 'test -e /dev/fuse && echo fuse-there || echo no-fuse'
    expect_eq "$mode: control: the minimal /dev has no /dev/fuse" "no-fuse" "$OUT"
    r -B /dev/fuse "$IMG_DIR" sh -c ': <> /dev/fuse && echo fuse-usable'
    expect_eq "$mode: minimal /dev, -B /dev/fuse: the device is usable (no nodev added)" "fuse-usable" "$OUT"
    r -B /dev/fuse:/dev/other "$IMG_DIR" sh -c 'test -e /dev/other || echo absent'
    expect_eq "$mode: -B /dev/X:/dev/Y refused with a warning (as Apptainer)" "WARNING: skipping the bind /dev/fuse:/dev/other: source and destination must be the same below /dev
absent" "$OUT"
    conf "mount dev = no"
    r -B /dev/fuse "$IMG_DIR" sh -c 'test -e /dev/null || echo no-dev'
    expect_match "$mode: mount dev = no: no /dev, -B /dev/X skipped" "no-dev" "$OUT"
done
conf "mount dev = yes"
run "$CAPSA" exec "$IMG_DIR" sh -c 'test -b /dev/loop0 && head -c 1 /dev/loop0 > /dev/null && echo root-reads'
expect_eq "root: mount dev = yes: the host's devices" "root-reads" "$OUT"

# Attacks on a host /dev given to users (setuid mode is the boundary; the
# user namespace runs show the same).  Devices must work only where the host
# lets this user use them: nothing the user brings may become a device.
ls -l /dev/loop0 | grep -q '^brw-------' && ! id -nG "$U" | grep -qw disk \
    || fail "attack setup" "/dev/loop0 must be root's only and $U not in group disk"
head -c 1 /dev/loop0 > /dev/null; expect_eq "attack control: a process allowed to open /dev/loop0 (root, on the host) can" "0" "$?"
mkdir -p "$WORK/u1" && chown "$U" "$WORK/u1"
as_user "$U" "mksquashfs $IMG_DIR $WORK/u1/evil.sqfs -quiet -no-progress -noappend -all-root -p 'evilblk b 666 0 0 7 0' -p 'evilchr c 666 0 0 1 2'" > /dev/null 2>&1
expect_eq "attack setup: the user made a squashfs with device nodes (7,0 = loop0; 1,2 = kmem) mode 0666" "brw-rw-rw-" \
    "$(unsquashfs -lls "$WORK/u1/evil.sqfs" evilblk 2>/dev/null | grep evilblk | cut -c1-10)"
for setuid_mount in iflimited yes; do
    for mode in setuid userns; do
        modes $mode
        conf "mount dev = yes" "allow setuid-mount squashfs = $setuid_mount"
        r "$WORK/u1/evil.sqfs" sh -c 'head -c 1 /evilblk; head -c 1 /evilchr'
        expect_eq "attack ($mode, setuid-mount squashfs = $setuid_mount): device nodes of a user's image stay unusable (nodev)" \
            "head: /evilblk: Permission denied
head: /evilchr: Permission denied" "$OUT"
    done
done
conf "mount dev = yes"
run_user "$CAPSA exec $IMG_DIR sh -c 'head -c 1 /dev/loop0'"
expect_eq "attack (setuid): a root-only host device stays root-only" "head: /dev/loop0: Permission denied" "$OUT"
run_user "$CAPSA exec $IMG_DIR sh -c 'mknod /dev/capsa-evil c 1 2; touch /dev/capsa-evil2'"
expect_match "attack (setuid): no node can be made in the host's /dev" "Permission denied|Operation not permitted" "$OUT"
expect_eq "attack (setuid): nothing created in the host's /dev" "" "$(ls /dev/capsa-evil /dev/capsa-evil2 2>/dev/null)"
# A device node served by the user's own FUSE mount, in the host's /dev/shm:
# visible through the host's /dev, bound explicitly, or into the minimal /dev.
as_user "$U" "mkdir -p /dev/shm/capsa-u1-fuse && squashfuse_ll $WORK/u1/evil.sqfs /dev/shm/capsa-u1-fuse" > /dev/null 2>&1
expect_eq "attack setup: the user's FUSE mount serves the device node" "brw-rw-rw-" "$(as_user "$U" "ls -l /dev/shm/capsa-u1-fuse/evilblk" 2>/dev/null | cut -c1-10)"
run_user "$CAPSA exec $IMG_DIR sh -c 'head -c 1 /dev/shm/capsa-u1-fuse/evilblk'"
expect_eq "attack (setuid, mount dev = yes): a device node of the user's FUSE mount under /dev stays unusable" "head: /dev/shm/capsa-u1-fuse/evilblk: Permission denied" "$OUT"
run_user "$CAPSA exec -B /dev/shm/capsa-u1-fuse/evilblk $IMG_DIR sh -c 'head -c 1 /dev/shm/capsa-u1-fuse/evilblk'"
expect_match "attack (setuid, mount dev = yes): ... bound explicitly, still unusable" "Permission denied" "$OUT"
conf "mount dev = minimal"
run_user "$CAPSA exec -B /dev/shm/capsa-u1-fuse/evilblk $IMG_DIR sh -c 'head -c 1 /dev/shm/capsa-u1-fuse/evilblk'"
expect_match "attack (setuid, minimal /dev): -B of it into /dev/shm is refused" "^WARNING: skipping the bind /dev/shm/capsa-u1-fuse/evilblk: it cannot go into the container's /dev$" "$OUT"
expect_match "attack (setuid, minimal /dev): ... and the node, seen through the host's /dev/shm, is unusable" "^head: /dev/shm/capsa-u1-fuse/evilblk: Permission denied$" "$OUT"
as_user "$U" "fusermount3 -u /dev/shm/capsa-u1-fuse; rmdir /dev/shm/capsa-u1-fuse" > /dev/null 2>&1
cp "$WORK/conf.orig" "$CONF"

# mount devpts.
for mode in root setuid userns; do
    modes $mode
    conf "mount devpts = no"
    r "$IMG_DIR" sh -c 'ls -A /dev/pts | wc -l; test -e /dev/ptmx || echo no-ptmx'
    expect_eq "$mode: mount devpts = no: empty /dev/pts, no /dev/ptmx" "0
no-ptmx" "$OUT"
    conf "mount devpts = yes"
    r "$IMG_DIR" sh -c 'test -c /dev/pts/ptmx && test -L /dev/ptmx && echo devpts'
    expect_eq "$mode: mount devpts = yes: a devpts instance" "devpts" "$OUT"
done

# mount hostfs: every mount point right below the host's / (except /proc,
# /sys, /dev, /run, /boot, /var).  Tried in a mount namespace of its own
# where tmpfs on /mnt and /srv stand in for the host's file systems.
conf "mount hostfs = yes"
hostfs_run () {
    unshare -m sh -c "mount -t tmpfs none /mnt && mount -t tmpfs -o mode=0755 none /srv && echo on-srv > /srv/marker \
        && chmod 0644 /srv/marker && $1" 2>&1
}
OUT=$(hostfs_run "$CAPSA exec $IMG_DIR cat /srv/marker")
expect_eq "root: mount hostfs = yes binds the host's file systems" "on-srv" "$OUT"
OUT=$(hostfs_run "runuser -u $U -- $CAPSA exec $IMG_DIR cat /srv/marker")
expect_eq "setuid: mount hostfs = yes" "on-srv" "$OUT"
OUT=$(hostfs_run "runuser -u $U -- $CAPSA exec --userns $IMG_DIR cat /srv/marker")
expect_eq "userns: mount hostfs = yes" "on-srv" "$OUT"
# A FUSE mount there that the user may not use (root's or another user's,
# without allow_other: open works, stat is refused) is left out, as
# Apptainer skips what it cannot stat; it stopped everyone's containers.
mkdir -p "$WORK/hfs" && echo x > "$WORK/hfs/f" && mksquashfs "$WORK/hfs" "$WORK/hfs.sqfs" -quiet -noappend > /dev/null
hostfs_fuse () {
    unshare -m sh -c "mount -t tmpfs -o mode=0755 none /srv && echo on-srv > /srv/marker && chmod 0644 /srv/marker \
        && { squashfuse_ll -f $WORK/hfs.sqfs /mnt & p=\$!; for i in \$(seq 50); do mountpoint -q /mnt && break; sleep 0.1; done; \
        $1; kill \$p; wait \$p; }" 2>&1
}
OUT=$(hostfs_fuse "runuser -u $U -- $CAPSA exec $IMG_DIR cat /srv/marker")
expect_eq "setuid: mount hostfs = yes: a FUSE mount of root's without allow_other is left out" "on-srv" "$OUT"
OUT=$(hostfs_fuse "runuser -u $U -- $CAPSA exec --userns $IMG_DIR cat /srv/marker")
expect_eq "userns: mount hostfs = yes: the same" "on-srv" "$OUT"
OUT=$(hostfs_fuse "$CAPSA exec $IMG_DIR cat /mnt/f")
expect_eq "root: mount hostfs = yes: root's own FUSE mount is bound" "x" "$OUT"
expect_eq "no squashfuse_ll left" "" "$(pgrep -f "squashfuse_ll -f $WORK/hfs.sqfs")"
OUT=$(hostfs_run "runuser -u $U -- $CAPSA exec --no-mount hostfs $IMG_DIR cat /srv/marker")
expect_match "setuid: --no-mount hostfs" "can't open '/srv/marker'" "$OUT"
conf "mount hostfs = no"
OUT=$(hostfs_run "runuser -u $U -- $CAPSA exec $IMG_DIR cat /srv/marker")
expect_match "setuid: mount hostfs = no (the default)" "can't open '/srv/marker'" "$OUT"

# mount slave: a mount the host makes after the start shows up inside with
# 'yes', not with 'no'.  The bound directory is a shared mount of the test's.
mkdir -p "$WORK/shared" && mount -t tmpfs -o mode=0755 none "$WORK/shared" && mount --make-shared "$WORK/shared"
mkdir -p "$WORK/shared/sub"
for mode in root setuid userns; do
    modes $mode
    for v in yes no; do
        conf "mount slave = $v"
        flag=""; [ $mode = userns ] && flag=--userns
        cmd="$CAPSA exec $flag -B $WORK/shared:/sh $IMG_DIR sh -c 'sleep 1.5; ls /sh/sub'"
        if [ $mode = root ]; then sh -c "$cmd" > "$WORK/slave.out" 2>&1 & else as_user "$U" "$cmd" > "$WORK/slave.out" 2>&1 & fi
        bg=$!
        sleep 0.8
        mount -t tmpfs none "$WORK/shared/sub" && touch "$WORK/shared/sub/marker"
        wait $bg
        umount "$WORK/shared/sub"
        want=$([ $v = yes ] && echo marker || true)
        expect_eq "$mode: mount slave = $v: a later host mount is $([ $v = yes ] || echo not) seen" "$want" "$(cat "$WORK/slave.out")"
    done
done
umount "$WORK/shared"

# user bind control = no: user binds ignored with a warning, a custom home
# refused, the current directory not bound (container_linux.go).
conf "user bind control = no"
for mode in setuid userns; do
    modes $mode
    r -B "$WORK/bp:/ub" "$IMG_DIR" sh -c 'test -e /ub/f || echo not-bound'
    expect_match "$mode: user bind control = no: -B ignored with a warning" "^WARNING: ignoring the bind $WORK/bp: user bind control is disabled by the administrator$" "$OUT"
    expect_match "$mode: ... not bound" "^not-bound$" "$OUT"
    r --mount "src=$WORK/bp,dst=/ub" "$IMG_DIR" sh -c 'test -e /ub/f || echo not-bound'
    expect_match "$mode: user bind control = no: --mount ignored too" "not-bound$" "$OUT"
    r --home "$WORK/bp:/h" "$IMG_DIR" true
    expect_eq "$mode: user bind control = no: a custom --home refused" "255:FATAL:   not mounting the requested home $WORK/bp: user bind control is disabled by the administrator ('user bind control = no')" "$RC:$OUT"
    OUT=$(as_user "$U" "cd $WORK/bp && $CAPSA exec $([ $mode = userns ] && echo --userns) --no-mount tmp $IMG_DIR pwd" 2>&1)
    expect_match "$mode: user bind control = no: the current directory is not bound" "WARNING: not mounting the current directory" "$OUT"
done
run "$CAPSA" exec -B "$WORK/bp:/ub" "$IMG_DIR" cat /ub/f
expect_eq "root: user bind control does not limit root" "bound" "$OUT"

# memory fs type = ramfs: capsa's in-memory file systems are ramfs, and a
# contained home is still the user's.
conf "memory fs type = ramfs"
for mode in root setuid userns; do
    modes $mode
    r --contain "$IMG_DIR" sh -c 'stat -f -c %T /tmp /dev $HOME; touch $HOME/x /tmp/y && echo writable'
    expect_eq "$mode: memory fs type = ramfs: /tmp, /dev, the contained home" "ramfs
ramfs
ramfs
writable" "$OUT"
done
conf "memory fs type = tmpfs"
run_user "$CAPSA exec --contain $IMG_DIR stat -f -c %T /tmp"
expect_eq "control: memory fs type = tmpfs" "tmpfs" "$OUT"
cp "$WORK/conf.orig" "$CONF"
no_leftover_mounts "no capsa mount left after the capsa.conf runs"
