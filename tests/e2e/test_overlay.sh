# Writable containers (issue 15): --writable-tmpfs, --overlay DIR[:ro] and
# ext3 images (capsa overlay create), a SIF's overlay partition with
# --writable, --writable on sandboxes; who may parse an ext3 image; and the
# attacks that must fail.  Root, setuid user and user namespaces.
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
set_conf () { cp "$WORK/conf.orig" "$CONF"; for l in "$@"; do echo "$l" >> "$CONF"; done; }
UID1=$(id -u "$TUSER")
uhome=$(getent passwd "$TUSER" | cut -d: -f6)
U=$uhome/capsa-ovl-test
rm -rf "$U"; as_user "$TUSER" "mkdir -p $U"

# The test image: busybox with a world-writable /scratch, root's /opt and
# /mine, the test user's (in a user namespace, where root's files belong to
# nobody, the kernel copies up only what the user owns).
IMG=$WORK/img
cp -a "$IMG_DIR" "$IMG" && mkdir -p "$IMG/scratch" "$IMG/opt" "$IMG/mine" "$IMG/proc" "$IMG/sys" "$IMG/dev" \
    && chmod 1777 "$IMG/scratch" && chmod 0755 "$IMG/opt" && chown "$TUSER:" "$IMG/mine"
echo image > "$IMG/opt/in-image"
chmod 0755 "$WORK"
mksquashfs "$IMG" "$WORK/img.sqfs" -noappend -quiet -no-progress > /dev/null
SQ=$WORK/img.sqfs
# (fuse2fs and fuse-overlayfs serve only these tests' containers; other
# workers' squashfuse_ll may run at the same time.)
fuse_procs () { pgrep -a -f '^(fuse2fs|fuse-overlayfs) ' | grep -v pgrep; }

# ---------------------------------------------------------------- 1. --writable-tmpfs

run "$CAPSA" exec --writable-tmpfs "$SQ" sh -c 'echo root-was-here > /opt/new && mkdir /newdir && rm /opt/in-image && cat /opt/new'
expect_eq "writable-tmpfs (root): write, mkdir, remove anywhere" "0:root-was-here" "$RC:$OUT"
run "$CAPSA" exec "$SQ" sh -c 'ls /opt/new /newdir 2>&1; cat /opt/in-image'
expect_match "writable-tmpfs (root): nothing kept after the run" "No such file.*
.*No such file.*
image$" "$OUT"
run "$CAPSA" exec "$SQ" sh -c 'touch /opt/x'
expect_match "without --writable-tmpfs the root stays read-only" "Read-only file system" "$OUT"
for mode in setuid userns fakeroot; do
    case $mode in setuid) flag=""; d=scratch ;; userns) flag="--userns"; d=mine ;; fakeroot) flag="--fakeroot"; d=scratch ;; esac
    run_user "$CAPSA exec $flag --writable-tmpfs $SQ sh -c 'echo mine > /$d/f && cat /$d/f'"
    expect_eq "writable-tmpfs ($mode): the user writes where the image lets them (/$d)" "0:mine" "$RC:$OUT"
    run_user "$CAPSA exec $flag $SQ ls /$d/f"
    expect_match "writable-tmpfs ($mode): gone after the run" "No such file" "$OUT"
done
run_user "$CAPSA exec --userns --writable-tmpfs $SQ sh -c 'echo x > /scratch/f'"
expect_match "writable-tmpfs (userns): root's directories (owner unmapped) cannot be copied up" "Permission denied|Value too large" "$OUT"
run_user "$CAPSA exec --writable-tmpfs $SQ sh -c 'touch /opt/x; touch /etc/x; mkdir /newdir; stat -c \"%U %a\" / /etc'"
expect_match "writable-tmpfs (setuid): root's directories stay root's: /opt" "touch: /opt/x: Permission denied" "$OUT"
expect_match "writable-tmpfs (setuid): /etc (a premade mount point's parent) stays root's" "touch: /etc/x: Permission denied" "$OUT"
expect_match "writable-tmpfs (setuid): / stays root's" "mkdir: can't create directory '/newdir': Permission denied" "$OUT"
expect_match "writable-tmpfs (setuid): / and /etc shown as root's 755" "^root 755
root 755$" "$OUT"
run_user "$CAPSA exec --fakeroot --writable-tmpfs $SQ sh -c 'echo fk > /opt/new && cat /opt/new'"
expect_eq "writable-tmpfs (fakeroot): root inside writes anywhere" "0:fk" "$RC:$OUT"
set_conf "sessiondir max size = 1"
run "$CAPSA" exec --writable-tmpfs "$SQ" sh -c 'dd if=/dev/zero of=/big bs=1024 count=2048 2>&1; echo rc=$?'
expect_match "sessiondir max size = 1: the layer holds 1 MiB" "No space left on device" "$OUT"
set_conf "enable overlay = no"
run_user "$CAPSA exec --writable-tmpfs $SQ true"
expect_eq "enable overlay = no: --writable-tmpfs refused (255)" "255" "$RC"
expect_match "enable overlay = no: names the directive" "^FATAL: +--writable-tmpfs: writable and added overlay layers are disabled by the administrator \('enable overlay = no'\)$" "$OUT"
run "$CAPSA" exec "$SQ" true
expect_eq "enable overlay = no: ordinary runs still work" "0" "$RC"
set_conf "enable overlay = driver"
run_user "$CAPSA exec --userns --writable-tmpfs $SQ sh -c 'echo drv > /scratch/d && cat /scratch/d; mount | grep \" on / \"'"
expect_match "enable overlay = driver: fuse-overlayfs serves a user namespace's root" "^drv
fuse.fuse-overlayfs on / " "$OUT"
run "$CAPSA" exec --writable-tmpfs "$SQ" sh -c 'mount | grep " on / "'
expect_match "enable overlay = driver: root keeps the kernel's overlay" "^overlay on / type overlay" "$OUT"
set_conf

# ---------------------------------------------------------------- 2. --overlay DIR

mkdir -p "$WORK/od" && chmod 0755 "$WORK/od"
run "$CAPSA" exec --overlay "$WORK/od" "$SQ" sh -c 'echo persist > /opt/p && rm /opt/in-image'
expect_eq "overlay DIR (root): exit 0" "0" "$RC"
expect_eq "overlay DIR (root): Apptainer's layout, upper/ and work/" "upper work" "$(ls "$WORK/od" | tr '\n' ' ' | sed 's/ $//')"
run "$CAPSA" exec --overlay "$WORK/od" "$SQ" sh -c 'cat /opt/p; ls /opt/in-image 2>&1'
expect_match "overlay DIR (root): kept between runs, the removal too" "^persist
.*No such file" "$OUT"
run "$CAPSA" exec --overlay "$WORK/od:ro" "$SQ" sh -c 'cat /opt/p; touch /opt/q'
expect_match "overlay DIR:ro (root): read, not written" "^persist
.*Read-only file system" "$OUT"
for mode in userns fakeroot; do
    flag="--$mode"
    as_user "$TUSER" "mkdir -p $U/d-$mode"
    run_user "$CAPSA exec $flag --overlay $U/d-$mode $SQ sh -c 'echo $mode > /mine/kept'"
    run_user "$CAPSA exec $flag --overlay $U/d-$mode $SQ cat /mine/kept"
    expect_eq "overlay DIR ($mode): the user's directory keeps a file between runs" "0:$mode" "$RC:$OUT"
    run_user "$CAPSA exec $flag --overlay $U/d-$mode:ro $SQ sh -c 'touch /mine/x'"
    expect_match "overlay DIR:ro ($mode): refuses writes" "Read-only file system" "$OUT"
done
expect_eq "overlay DIR (userns): files on the host are the user's" "$UID1" "$(stat -c %u "$U/d-userns/upper/mine/kept")"
run_user "$CAPSA exec --fakeroot --overlay $U/d-fakeroot $SQ sh -c 'echo r > /opt/rootfile; chown 1234 /opt/rootfile'"
expect_eq "overlay DIR (fakeroot): root's new file is the user's on the host, 1234 a subordinate id" \
    "$UID1 $(( $(awk -F: -v u="$TUSER" '$1 == u {print $2}' /etc/subuid) + 1233 ))" \
    "$(stat -c %u "$U/d-fakeroot/upper/opt" 2>/dev/null) $(stat -c %u "$U/d-fakeroot/upper/opt/rootfile" 2>/dev/null)"
as_user "$TUSER" "mkdir -p $U/d-setuid"
run_user "$CAPSA exec --overlay $U/d-setuid $SQ true"
expect_eq "overlay DIR (setuid): refused (255)" "255" "$RC"
expect_match "overlay DIR (setuid): says why and what to use" "a directory overlay needs --fakeroot or --userns in a setuid installation \(overlayfs would copy files into your directory with root's rights\)" "$OUT"
expect_eq "overlay DIR (setuid): nothing made in the directory" "" "$(ls -A "$U/d-setuid")"
run_user "$CAPSA exec --userns --overlay $U/missing $SQ true"
expect_match "overlay of a missing path: FATAL naming it" "^FATAL: +--overlay $U/missing: No such file or directory$" "$OUT"

# Stacking: read-only layers in order (the last given on top), one writable.
mkdir -p "$WORK/l1/upper/opt" "$WORK/l2/opt" "$WORK/rw"
echo l1 > "$WORK/l1/upper/opt/which"; echo l1 > "$WORK/l1/upper/opt/only1"
echo l2 > "$WORK/l2/opt/which"
run "$CAPSA" exec --overlay "$WORK/l1:ro" --overlay "$WORK/l2:ro" --overlay "$WORK/rw" "$SQ" sh -c 'cat /opt/which /opt/only1 /opt/in-image; echo w > /opt/w'
expect_eq "stacked overlays: the last :ro on top, the one below seen, the image below" "l2
l1
image" "$OUT"
expect_eq "stacked overlays: writes go to the writable one" "w" "$(cat "$WORK/rw/upper/opt/w")"
run "$CAPSA" exec --overlay "$WORK/rw" --overlay "$WORK/od" "$SQ" true
expect_match "two writable overlays: refused" "only one writable layer \($WORK/rw is one already\); add :ro to the others" "$OUT"
run "$CAPSA" exec --writable-tmpfs --overlay "$WORK/rw" "$SQ" true
expect_match "--writable-tmpfs and a writable overlay: refused" "only one writable layer \(--writable-tmpfs is one already\)" "$OUT"

# ---------------------------------------------------------------- 3. overlay create, ext3 images

run_user "cd $U && $CAPSA overlay create u.img"
expect_eq "overlay create (user): exit 0" "0:" "$RC:$OUT"
expect_eq "overlay create: 64 MiB, the caller's, mode 0600" "67108864 $UID1 600" "$(stat -c '%s %u %a' "$U/u.img")"
expect_match "overlay create: ext3 with a journal (dumpe2fs)" "has_journal" "$(dumpe2fs -h "$U/u.img" 2>/dev/null | grep features)"
expect_eq "overlay create: a clean file system (e2fsck -fn)" "0" "$(e2fsck -fn "$U/u.img" > /dev/null 2>&1; echo $?)"
expect_match "overlay create: upper/ and work/ owned by the caller (debugfs)" "^ *[0-9]+ +40755 \(2\) +$UID1 +$(id -g "$TUSER") .* upper$" "$(debugfs -R 'ls -l /' "$U/u.img" 2>/dev/null)"
expect_eq "overlay create: no temporary file left" "u.img" "$(ls -A "$U" | grep -v '^d-' | tr '\n' ' ' | sed 's/ $//')"
run_user "cd $U && $CAPSA overlay create --sparse --size 128 --create-dir /usr/local/share --create-dir opt s.img"
expect_eq "overlay create --sparse --size 128: 128 MiB apparent, few blocks used" "134217728 yes" \
    "$(stat -c %s "$U/s.img") $([ "$(du -k "$U/s.img" | cut -f1)" -lt 16384 ] && echo yes || echo no)"
expect_match "overlay create --create-dir: the directories in upper/ (debugfs)" "^ *[0-9]+ +40755 \(2\) .* share$" "$(debugfs -R 'ls -l /upper/usr/local' "$U/s.img" 2>/dev/null)"
run_user "cd $U && $CAPSA overlay create --fakeroot f.img"
expect_match "overlay create --fakeroot: upper/ owned by root, as --fakeroot makes it (debugfs)" "^ *[0-9]+ +40755 \(2\) +0 +0 .* upper$" "$(debugfs -R 'ls -l /' "$U/f.img" 2>/dev/null)"
expect_eq "overlay create --fakeroot: the file itself is the caller's" "$UID1" "$(stat -c %u "$U/f.img")"
run_user "$CAPSA exec --fakeroot --overlay $U/f.img $SQ sh -c 'echo f > /opt/f && cat /opt/f'"
expect_eq "an overlay made with --fakeroot works with --fakeroot" "0:f" "$RC:$OUT"
run_user "cd $U && $CAPSA overlay create u.img"
expect_eq "overlay create on an existing ext3 image: 255" "255" "$RC"
expect_match "overlay create on an existing ext3 image: says so" "^FATAL: +the ext3 overlay image u.img already exists$" "$OUT"
run_user "cd $U && $CAPSA overlay create --size 32 t.img"
expect_match "overlay create --size 32: refused, 64 MiB at least" "^FATAL: +overlay create: the size must be at least 64 MiB, not 32$" "$OUT"
expect_eq "overlay create --size 32: no file" "" "$(ls "$U/t.img" 2>/dev/null)"
echo text > "$U/plain" && chown "$TUSER" "$U/plain"
run_user "cd $U && $CAPSA overlay create plain"
expect_match "overlay create on a file that is not a SIF: refused" "plain exists and is not a SIF image" "$OUT"

# Root: the kernel's ext3.
"$CAPSA" overlay create "$WORK/r.img"
run "$CAPSA" exec --overlay "$WORK/r.img" "$SQ" sh -c 'echo ext3 > /opt/e && rm /opt/in-image; mount | grep " on / "'
expect_match "overlay IMG (root): the kernel's overlay on the kernel's ext3" "^overlay on / type overlay" "$OUT"
run "$CAPSA" exec --overlay "$WORK/r.img" "$SQ" sh -c 'cat /opt/e; ls /opt/in-image 2>&1'
expect_match "overlay IMG (root): kept between runs" "^ext3
.*No such file" "$OUT"
run "$CAPSA" exec --overlay "$WORK/r.img:ro" "$SQ" sh -c 'cat /opt/e; touch /opt/f'
expect_match "overlay IMG:ro (root): read, not written" "^ext3
.*Read-only file system" "$OUT"
expect_eq "overlay IMG (root): the image checks clean afterwards" "0" "$(e2fsck -fn "$WORK/r.img" > /dev/null 2>&1; echo $?)"
# Users: fuse2fs and fuse-overlayfs in a user namespace.
for mode in userns fakeroot; do
    d=scratch; [ $mode = userns ] && d=mine
    run_user "cd $U && $CAPSA overlay create $mode.img"
    run_user "$CAPSA exec --$mode --overlay $U/$mode.img $SQ sh -c 'echo $mode > /$d/e; mount | grep \" on / \"'"
    expect_match "overlay IMG ($mode): served by fuse2fs, root by fuse-overlayfs" "^fuse.fuse-overlayfs on / " "$OUT"
    run_user "$CAPSA exec --$mode --overlay $U/$mode.img $SQ cat /$d/e"
    expect_eq "overlay IMG ($mode): kept between runs" "0:$mode" "$RC:$OUT"
    run_user "$CAPSA exec --$mode --overlay $U/$mode.img:ro $SQ sh -c 'cat /$d/e; touch /$d/g'"
    expect_match "overlay IMG:ro ($mode): read, not written" "^$mode
.*Read-only file system" "$OUT"
    expect_eq "overlay IMG ($mode): a clean file system afterwards (e2fsck -fn)" "0" "$(e2fsck -fn "$U/$mode.img" > /dev/null 2>&1; echo $?)"
    expect_match "overlay IMG ($mode): the file is in the image (debugfs)" "^$mode$" "$(debugfs -R "cat /upper/$d/e" "$U/$mode.img" 2>/dev/null)"
done
# fuse2fs writes its cache back once its connection ends: every run's last
# writes are kept.  (Stopped with SIGTERM right away, it lost them in about
# one run in fifteen: 15 runs catch that more often than not.)
run_user "cd $U && $CAPSA overlay create --fakeroot keep.img"
for n in $(seq 15); do
    run_user "$CAPSA exec --fakeroot --overlay $U/keep.img $SQ sh -c 'cat /opt/n > /dev/null 2>&1; echo $n >> /opt/n'"
done
expect_eq "15 runs of --fakeroot --overlay IMG, each appending a line: all 15 in the image (debugfs)" \
    "$(seq 15 | paste -sd' ')" "$(debugfs -R 'cat /upper/opt/n' "$U/keep.img" 2>/dev/null | paste -sd' ')"
rm -f "$U/keep.img"
# An overlay made by root (upper/ and work/ root's) given to a user: not
# writable without --fakeroot, said before fuse-overlayfs starts.
cp "$WORK/r.img" "$U/root-made.img" && chown "$TUSER" "$U/root-made.img"
run_user "$CAPSA exec --userns --overlay $U/root-made.img $SQ true"
expect_match "overlay IMG made by root, --userns: refused with the reason" \
    "^255:FATAL: +overlay $U/root-made.img: its upper and work directories are not writable by this user \(owner uid 65534 in the user namespace\): use an overlay made by this user, or --fakeroot$" \
    "$RC:$OUT"
run_user "$CAPSA exec --fakeroot --overlay $U/root-made.img $SQ cat /opt/e"
expect_eq "overlay IMG made by root, --fakeroot: works (root of the namespace)" "0:ext3" "$RC:$OUT"
rm -f "$U/root-made.img"
expect_eq "no FUSE server left after the runs" "" "$(fuse_procs)"
# Setuid users: only where the administrator lets the kernel parse ext3.
run_user "$CAPSA exec --overlay $U/u.img $SQ true"
expect_eq "overlay IMG (setuid, default conf): refused (255)" "255" "$RC"
expect_match "overlay IMG (setuid, default conf): names the directive and the alternatives" "'allow setuid-mount extfs = no'\); use --fakeroot or --userns, where fuse2fs serves it as you$" "$OUT"
set_conf "allow setuid-mount extfs = yes"
run_user "$CAPSA exec --overlay $U/u.img $SQ sh -c 'echo suid > /scratch/s; mount | grep \" on / \"'"
expect_match "overlay IMG (setuid, allow setuid-mount extfs = yes): kernel overlay" "^overlay on / type overlay" "$OUT"
run_user "$CAPSA exec --overlay $U/u.img $SQ cat /scratch/s"
expect_eq "overlay IMG (setuid, extfs = yes): kept between runs" "0:suid" "$RC:$OUT"
set_conf "allow setuid-mount extfs = yes" "allow container extfs = no"
run_user "$CAPSA exec --overlay $U/u.img $SQ true"
expect_match "allow container extfs = no: refused" "ext3 overlay images are not allowed by the administrator \('allow container extfs = no'\)" "$OUT"
set_conf
echo "not an image" > "$WORK/junk.img"
run "$CAPSA" exec --overlay "$WORK/junk.img" "$SQ" true
expect_match "overlay of a file that is no ext3: FATAL says what it is and what is accepted" "^FATAL: +--overlay $WORK/junk.img \(an ext3 image from 'capsa overlay create', a SIF with an overlay partition, or a directory\): (too short for an ext3 file system|not an ext3 file system)$" "$OUT"
mkfs.ext4 -q -F "$WORK/e4.img" 64M > /dev/null 2>&1
run "$CAPSA" exec --overlay "$WORK/e4.img" "$SQ" true
expect_match "an ext4 image refused as an overlay" "an ext4 file system .*not ext3" "$OUT"
# One writer at a time (the lock shows in /proc/locks once mounted).
"$CAPSA" exec --overlay "$WORK/r.img" "$SQ" sleep 5 > /dev/null 2>&1 &
bg=$!
ino=$(stat -c %i "$WORK/r.img")
for _ in $(seq 100); do grep -q "FLOCK .* WRITE .*:$ino " /proc/locks && break; sleep 0.1; done
run "$CAPSA" exec --overlay "$WORK/r.img" "$SQ" true
expect_match "an image written by a running container cannot be written by another" "r.img is in use by another container \(add :ro to share it read-only\)" "$OUT"
run "$CAPSA" exec --overlay "$WORK/r.img:ro" "$SQ" true
expect_match "nor read by another while it is written" "is in use by another container that writes to it" "$OUT"
kill "$bg" 2>/dev/null; wait "$bg" 2>/dev/null

# ---------------------------------------------------------------- 4. SIF overlay partitions, --writable

"$CAPSA" -q build "$WORK/w.sif" "$IMG" && cp "$WORK/w.sif" "$WORK/plain.sif"
run "$CAPSA" exec --writable "$WORK/plain.sif" true
expect_eq "--writable on a SIF without an overlay partition: 255" "255" "$RC"
expect_eq "--writable on a SIF without an overlay partition: the message" "FATAL:   --writable: $WORK/plain.sif has no overlay partition (add one with 'capsa overlay create $WORK/plain.sif', or use --writable-tmpfs)" "$OUT"
run "$CAPSA" exec --writable "$SQ" true
expect_match "--writable on a squashfs image: 255 and says so" "^FATAL: +--writable: $SQ cannot be written \(a squashfs image\)" "$OUT"
run "$CAPSA" overlay create --size 64 "$WORK/w.sif"
expect_eq "overlay create into a SIF: exit 0" "0" "$RC"
expect_match "overlay create into a SIF: an ext3 overlay partition" "\|FS \(Ext3/Overlay/amd64\)$" "$("$CAPSA" sif list "$WORK/w.sif")"
run "$CAPSA" overlay create "$WORK/w.sif"
expect_match "overlay create into a SIF twice: refused with the object's number" "already has a writable overlay partition \(object [0-9]+\); delete it first with 'capsa sif del [0-9]+ " "$OUT"
run "$CAPSA" overlay create "$FIXTURES/sif/busybox_amd64.sif"
expect_match "overlay create into a signed SIF: refused" "is signed: adding an overlay partition would break its signature" "$OUT"
run "$CAPSA" exec --writable "$WORK/w.sif" sh -c 'echo in-sif > /opt/s && cat /opt/s'
expect_eq "--writable SIF (root): written into the partition" "0:in-sif" "$RC:$OUT"
run "$CAPSA" exec "$WORK/w.sif" sh -c 'cat /opt/s; touch /opt/t'
expect_match "without --writable the partition is used read-only (as Apptainer)" "^in-sif
.*Read-only file system" "$OUT"
chown "$TUSER" "$WORK/w.sif"
run_user "$CAPSA exec --fakeroot --writable $WORK/w.sif sh -c 'cat /opt/s; echo fk >> /opt/s'"
expect_eq "--writable SIF (fakeroot, fuse2fs): read and written" "0:in-sif" "$RC:$OUT"
run_user "$CAPSA exec --userns $WORK/w.sif cat /opt/s"
expect_eq "the SIF's partition read-only in a user namespace" "in-sif
fk" "$OUT"
run_user "$CAPSA -v exec $WORK/w.sif sh -c 'ls /opt/s 2>&1'"
expect_match "setuid user, default conf: the partition is left out, the image runs" "VERBOSE: the overlay partition of $WORK/w.sif is not used \('allow setuid-mount extfs = no'" "$OUT"
run_user "$CAPSA exec --writable $WORK/w.sif true"
expect_eq "--writable SIF (setuid, default conf): 255" "255" "$RC"
set_conf "allow setuid-mount extfs = yes"
run_user "$CAPSA exec --writable $WORK/w.sif sh -c 'echo suid > /scratch/w; mount | grep \" on / \"'"
expect_match "--writable SIF (setuid, allow setuid-mount extfs = yes): the kernel's ext3" "^overlay on / type overlay" "$OUT"
run_user "$CAPSA exec $WORK/w.sif cat /scratch/w"
expect_eq "--writable SIF (setuid, extfs = yes): kept, and read-only use sees it" "0:suid" "$RC:$OUT"
set_conf
expect_eq "--writable SIF: the SIF still lists its objects (sif list)" "0" "$("$CAPSA" sif list "$WORK/w.sif" > /dev/null 2>&1; echo $?)"

# ---------------------------------------------------------------- 5. --writable sandboxes

cp -a "$IMG" "$WORK/sb"
run "$CAPSA" exec --writable "$WORK/sb" sh -c 'echo root > /opt/sbfile && id -u'
expect_eq "--writable sandbox (root): written in place" "0:0:root" "$RC:$OUT:$(cat "$WORK/sb/opt/sbfile" 2>/dev/null)"
rmdir "$WORK/sb/proc"
run "$CAPSA" exec --writable "$WORK/sb" true
expect_match "--writable sandbox without /proc: a WARNING, /proc not mounted" "^WARNING: --writable: /proc does not exist in $WORK/sb and capsa cannot create it there: not mounted$" "$OUT"
mkdir "$WORK/sb/proc"
run "$CAPSA" exec --writable "$WORK/sb" sh -c 'mount | grep " on / "'
expect_nomatch "--writable sandbox: no overlay" "overlay" "$OUT"
as_user "$TUSER" "cp -r $IMG $U/sb"
run_user "$CAPSA exec --writable $U/sb sh -c 'echo user > /opt/u && id -u'"
expect_match "--writable sandbox (setuid): the owner writes in place, as themselves" "^$UID1$" "$OUT"
expect_eq "--writable sandbox (setuid): the file on the host is the user's" "user $UID1" "$(cat "$U/sb/opt/u") $(stat -c %u "$U/sb/opt/u")"
expect_match "--writable sandbox: a mount point it lacks is left out with a WARNING" "WARNING: --writable: home directory $uhome not mounted: mount point $uhome does not exist in the container" "$OUT"
run_user "$CAPSA exec --fakeroot --writable $U/sb sh -c 'echo fk > /opt/f; chown 1234 /opt/f; id -u'"
expect_eq "--writable sandbox (fakeroot): root inside" "0" "$(printf '%s\n' "$OUT" | tail -1)"
expect_eq "--writable sandbox (fakeroot): root's file is the user's, 1234 a subordinate id" \
    "$(( $(awk -F: -v u="$TUSER" '$1 == u {print $2}' /etc/subuid) + 1233 ))" "$(stat -c %u "$U/sb/opt/f")"
run_user "$CAPSA exec --writable --overlay $U/d-userns $U/sb true"
expect_match "--writable directory and --overlay: refused" "it is the root itself, --overlay cannot be added" "$OUT"
# Acceptance 5: dpkg -i into the user's own Debian sandbox.
B=$WORK/deb
mkdir -p "$B/pkg/DEBIAN" "$B/pkg/opt/capsa-pkg"
printf 'Package: capsa-test-pkg\nVersion: 1.0\nArchitecture: all\nMaintainer: capsa tests <t@example.org>\nDescription: a test package\n' > "$B/pkg/DEBIAN/control"
echo owned > "$B/pkg/opt/capsa-pkg/owned"
chown -R 0:0 "$B/pkg" && chown 1234:1234 "$B/pkg/opt/capsa-pkg/owned"
dpkg-deb -b "$B/pkg" "$B/capsa-test.deb" > /dev/null && chmod -R a+rX "$B"
if MINSQ=$(fixture_minbase_sqfs); then
    run_user "$CAPSA -q build --sandbox $U/debsb $MINSQ"
    expect_eq "a user's Debian sandbox (build --sandbox from minbase)" "0" "$RC"
    run_user "$CAPSA exec --userns --fakeroot --writable $U/debsb dpkg -i $B/capsa-test.deb"
    expect_eq "exec --userns --fakeroot --writable SANDBOX dpkg -i pkg.deb: exit 0" "0" "$RC"
    run_user "$CAPSA exec --fakeroot $U/debsb dpkg -s capsa-test-pkg"
    expect_match "dpkg -i: the package is installed in the sandbox" "Status: install ok installed" "$OUT"
    expect_eq "dpkg -i: its file of uid 1234 is a subordinate id of the user on the host" \
        "$(( $(awk -F: -v u="$TUSER" '$1 == u {print $2}' /etc/subuid) + 1233 )) owned" \
        "$(stat -c %u "$U/debsb/opt/capsa-pkg/owned") $(cat "$U/debsb/opt/capsa-pkg/owned")"
else
    fail "dpkg -i in a user's sandbox" "fixture_minbase_sqfs failed"
fi

# ---------------------------------------------------------------- 6. attacks

# An ext3 image whose upper/ is a symbolic link to the host's /etc: the
# kernel gets directories opened as the user without following links.
mkdir -p "$WORK/evil/work" && ln -s /etc "$WORK/evil/upper"
truncate -s 64M "$WORK/evil.img" && mkfs.ext3 -q -F -d "$WORK/evil" "$WORK/evil.img" > /dev/null 2>&1
chown "$TUSER" "$WORK/evil.img"
set_conf "allow setuid-mount extfs = yes"
sum_etc=$(ls -la /etc | md5sum)
run_user "$CAPSA exec --overlay $WORK/evil.img $SQ sh -c 'echo pwned > /capsa-pwned'"
expect_eq "ext3 image with upper -> /etc (setuid): refused" "255" "$RC"
expect_match "ext3 image with upper -> /etc: the link is named" "cannot open its upper directory \(a symbolic link or a mount point\)" "$OUT"
expect_eq "ext3 image with upper -> /etc: nothing written to the host's /etc" "$sum_etc" "$(ls -la /etc | md5sum)"
run "$CAPSA" exec --overlay "$WORK/evil.img" "$SQ" true
expect_eq "ext3 image with upper -> /etc (root): refused too" "255" "$RC"
# A setuid-root shell inside a user's ext3 image: mounted nosuid.
mkdir -p "$WORK/suid/upper/suid" "$WORK/suid/work"
cp /bin/busybox "$WORK/suid/upper/suid/busybox" && chown 0:0 "$WORK/suid/upper/suid/busybox" && chmod 4755 "$WORK/suid/upper/suid/busybox"
truncate -s 64M "$WORK/suid.img" && mkfs.ext3 -q -F -d "$WORK/suid" "$WORK/suid.img" > /dev/null 2>&1
chown "$TUSER" "$WORK/suid.img"
run_user "$CAPSA exec --overlay $WORK/suid.img $SQ sh -c 'ls -l /suid/busybox; /suid/busybox id -u'"
expect_match "setuid-root file in a user's image: present" "^-rwsr-xr-x .* root .*/suid/busybox" "$OUT"
expect_match "setuid-root file in a user's image: runs as the user (nosuid)" "^$UID1$" "$(printf '%s\n' "$OUT" | tail -1)"
set_conf
# A directory overlay whose upper/ is a link to a directory the user
# cannot write: refused, not followed.
as_user "$TUSER" "mkdir -p $U/lnk/work && ln -s /var/lib $U/lnk/upper"
run_user "$CAPSA exec --userns --overlay $U/lnk $SQ true"
expect_match "directory overlay with upper -> /var/lib: refused" "cannot open its upper directory \(a symbolic link or a mount point\)" "$OUT"
# Another user's image.
as_user "$TUSER2" "cd \$HOME && rm -f v.img && $CAPSA overlay create v.img"
u2home=$(getent passwd "$TUSER2" | cut -d: -f6)
chmod 0755 "$u2home"
run_user "$CAPSA exec --fakeroot --overlay $u2home/v.img $SQ true"
expect_match "capsa-u2's overlay image (0600) cannot be used by capsa-u1" "^FATAL: +--overlay $u2home/v.img: Permission denied" "$OUT"
as_user "$TUSER2" "chmod 0644 \$HOME/v.img"
run_user "$CAPSA exec --fakeroot --overlay $u2home/v.img $SQ true"
expect_match "capsa-u2's readable image cannot be written by capsa-u1" "\(readable, not writable by you: add :ro\?\): Permission denied" "$OUT"
rm -f "$u2home/v.img"
# --writable on someone else's sandbox: writes are the user's own.
run_user "$CAPSA exec --writable $WORK/sb sh -c 'touch /opt/intruder; echo x >> /opt/sbfile'"
expect_match "--writable on root's sandbox (setuid): refused by the file system" "Permission denied" "$OUT"
expect_eq "--writable on root's sandbox: nothing changed" "root " "$(cat "$WORK/sb/opt/sbfile") $(ls "$WORK/sb/opt/intruder" 2>/dev/null)"
run_user "$CAPSA exec --fakeroot --writable $WORK/sb sh -c 'touch /opt/intruder; echo x >> /opt/sbfile'"
expect_eq "--writable on root's sandbox (fakeroot): nothing changed" "root " "$(cat "$WORK/sb/opt/sbfile") $(ls "$WORK/sb/opt/intruder" 2>/dev/null)"

no_leftover_mounts "overlays: no mount left on the host"
expect_eq "overlays: no loop device left on the test images" "" "$(losetup -a | grep -F "$WORK" | head -2)"
expect_eq "overlays: no FUSE server left" "" "$(fuse_procs)"
set_conf
cp "$WORK/conf.orig" "$CONF"
rm -rf "$U"
