# capsa build (issue 4): SIF images and sandboxes from directories, other
# images and definition files; atomic output; clear definition-file errors.
# Sourced by tests/run.sh after lib.sh; uses $CAPSA, $FIXTURES, $WORK,
# $IMG_DIR, $IMG_SQFS, $TUSER and the fixtures of tests/fixtures.sh.
#
# The debootstrap image (acceptance 1) takes minutes to build: it is the
# cached fixture_ping_sif, rebuilt only when its definition or capsa's
# build code version changes.

BB=$FIXTURES/sif/busybox_amd64.sif
B=$WORK/b
mkdir -p "$B" && chmod 0755 "$B"

# Files of the private build directory left beside OUT (none expected).
leftovers () { find "$1" -maxdepth 1 -name '.capsa-build-*' | head -3; }
no_build_mounts () {
    if grep -q "capsa-build" /proc/self/mountinfo; then
        fail "$1" "mounts left: $(grep capsa-build /proc/self/mountinfo | head -3)"
    else
        pass "$1"
    fi
}
# The offset of the primary partition of a SIF, from `capsa sif list`.
part_offset () { "$CAPSA" sif list "$1" | awk -F'|' '$5 ~ /^FS / {split($4, a, "-"); print a[1] + 0}'; }

# ---------------------------------------------------------------- 2. sandbox, then SIF from it

run "$CAPSA" build --sandbox "$B/dir/" "$BB"
expect_eq "build --sandbox from a SIF: exit 0" "0" "$RC"
check "sandbox holds the image's files" test -x "$B/dir/bin/busybox"
check "sandbox has /.singularity.d/{actions,env,libs}" test -d "$B/dir/.singularity.d/actions" -a -d "$B/dir/.singularity.d/env" -a -d "$B/dir/.singularity.d/libs"
check "sandbox has the action scripts" test -x "$B/dir/.singularity.d/actions/exec" -a -x "$B/dir/.singularity.d/actions/run"
expect_match "sandbox labels.json has the build labels" '"org.label-schema.usage.singularity.deffile.bootstrap": "localimage"' "$(cat "$B/dir/.singularity.d/labels.json")"
expect_eq "sandbox keeps the image's own definition in bootstrap_history" "BootStrap: docker
From: busybox:1.33.1" "$(cat "$B/dir/.singularity.d/bootstrap_history/Apptainer0")"

run "$CAPSA" build "$B/bb.sif" "$B/dir/"
expect_eq "build SIF from a directory: exit 0" "0" "$RC"
run "$CAPSA" sif list "$B/bb.sif"
expect_match "SIF from a directory: definition object" "\|Def\.FILE$" "$OUT"
expect_match "SIF from a directory: inspect metadata object" "\|JSON\.Generic$" "$OUT"
expect_match "SIF from a directory: primary squashfs partition" "\|FS \(Squashfs/\*System/amd64\)$" "$OUT"
run "$CAPSA" sif info 2 "$B/bb.sif"
expect_match "the JSON object is inspect-metadata.json" "Name: +inspect-metadata.json" "$OUT"
run "$CAPSA" sif dump 2 "$B/bb.sif"
expect_match "inspect-metadata.json has Apptainer's shape" '^\{"data":\{"attributes":\{.*"labels":\{.*\}\},"type":"container"\}$' "$OUT"
run "$CAPSA" sif header "$B/bb.sif"
expect_match "SIF header: architecture amd64" "^Primary Architecture: +amd64$" "$OUT"
expect_match "SIF header: launch script" "^Launch Script: +#!/usr/bin/env run-singularity$" "$OUT"
check "the SIF starts with the launch script" sh -c "head -c 31 '$B/bb.sif' | grep -q '^#!/usr/bin/env run-singularity'"
run "$CAPSA" inspect --deffile "$B/bb.sif"
expect_eq "SIF from a directory: its definition" "bootstrap: localimage
from: $B/dir/" "$OUT"

run "$CAPSA" exec "$B/bb.sif" echo hello
expect_eq "built image runs echo hello as root" "hello" "$OUT"
run_user "$CAPSA exec $B/bb.sif echo hello"
expect_eq "built image runs echo hello as a user (setuid)" "hello" "$OUT"
run_user "$CAPSA exec --userns $B/bb.sif echo hello"
expect_eq "built image runs echo hello as a user (--userns)" "hello" "$OUT"
expect_eq "no build directory left after success" "" "$(leftovers "$B")"

# The directory itself is not copied: its additions are pseudo files, and
# what it had is still there.
off=$(part_offset "$B/bb.sif")
run unsquashfs -lln -o "$off" "$B/bb.sif"
expect_match "squashfs of the directory: history kept" "squashfs-root/.singularity.d/bootstrap_history/Apptainer1$" "$OUT"
expect_match "squashfs of the directory: root's files owned by root" "^-rwxr-xr-x 0/0 .* squashfs-root/bin/busybox$" "$OUT"
run unsquashfs -cat -o "$off" "$B/bb.sif" .singularity.d/Singularity
expect_eq "squashfs holds the new definition" "bootstrap: localimage
from: $B/dir/" "$OUT"

# A bare squashfs source, and a SIF from a SIF.
run "$CAPSA" build "$B/sq.sif" "$IMG_SQFS"
expect_eq "build SIF from a bare squashfs: exit 0" "0" "$RC"
run "$CAPSA" exec "$B/sq.sif" /bin/echo from-sqfs
expect_eq "SIF from a squashfs runs" "from-sqfs" "$OUT"
run "$CAPSA" build "$B/re.sif" "$B/bb.sif"
expect_eq "build SIF from a SIF: exit 0" "0" "$RC"
run "$CAPSA" exec "$B/re.sif" echo again
expect_eq "SIF from a SIF runs" "again" "$OUT"

# A user builds from a directory without scripts: no root needed, files
# owned by root in the image.
uhome=$(getent passwd "$TUSER" | cut -d: -f6)
rm -rf "$uhome/u.sif" "$uhome/usb"
run_user "$CAPSA build \$HOME/u.sif $IMG_DIR && $CAPSA exec \$HOME/u.sif echo user-built"
expect_eq "a user builds a SIF from a directory" "user-built" "$(printf '%s\n' "$OUT" | tail -1)"
run unsquashfs -lln -o "$(part_offset "$uhome/u.sif")" "$uhome/u.sif"
expect_eq "a user's image: unsquashfs lists it" "0" "$RC"
expect_match "a user's image: files listed" "squashfs-root/bin/busybox" "$OUT"
expect_nomatch "a user's image: every file owned by root" "^[^ ]+ [1-9][0-9]*/" "$(printf '%s\n' "$OUT" | grep squashfs-root)"
run_user "$CAPSA build --sandbox \$HOME/usb $BB && test -x \$HOME/usb/bin/busybox && echo ok"
expect_eq "a user builds a sandbox from a SIF" "ok" "$(printf '%s\n' "$OUT" | tail -1)"
rm -rf "$uhome/u.sif" "$uhome/usb"

# ---------------------------------------------------------------- 3. localimage + %files + %post

echo "hello from the host" > "$B/hello.txt"
mkdir -p "$B/tree/sub" && echo nested > "$B/tree/sub/n.txt"
chmod -R a+rX "$B"
cat > "$B/local.def" <<EOF
Bootstrap: localimage
From: $BB

%setup
    echo "setup ran" > "\$APPTAINER_ROOTFS/setup.txt"

%files
    $B/hello.txt /opt/hello.txt
    $B/tree /opt/
    "$B/hello.txt"

%post
    echo built > /post.txt
    cat /opt/hello.txt > /opt/copy.txt
    echo 'export FROM_POST=yes' >> "\$APPTAINER_ENVIRONMENT"
    test "\$(id -u)" = 0

%environment
    export FOO=bar

%runscript
    echo "foo is \$FOO, from post \$FROM_POST, args \$*"

%test
    test -f /post.txt

%labels
    Maintainer capsa-tests
    org.capsa.case localimage

%help
    A test image.
EOF
chmod 0644 "$B/local.def"
run "$CAPSA" build "$B/local.sif" "$B/local.def"
expect_eq "localimage build with %files and %post: exit 0" "0" "$RC"
expect_match "the build says what it does" "INFO: +Running %post" "$OUT"
run "$CAPSA" run "$B/local.sif" a b
expect_eq "%environment, %post's \$APPTAINER_ENVIRONMENT and %runscript" "foo is bar, from post yes, args a b" "$OUT"
run "$CAPSA" exec "$B/local.sif" cat /post.txt /opt/copy.txt /opt/hello.txt /setup.txt /opt/tree/sub/n.txt "$B/hello.txt"
expect_eq "%post, %files (file, directory, same path) and %setup results" "built
hello from the host
hello from the host
setup ran
nested
hello from the host" "$OUT"
run "$CAPSA" inspect --labels "$B/local.sif"
expect_match "inspect --labels: the recipe's labels" "^Maintainer: capsa-tests$" "$OUT"
expect_match "inspect --labels: Apptainer's build labels" "^org.label-schema.build-arch: amd64$" "$OUT"
run "$CAPSA" inspect --deffile "$B/local.sif"
expect_eq "inspect --deffile: the definition file" "$(cat "$B/local.def")" "$OUT"
run "$CAPSA" inspect --helpfile "$B/local.sif"
expect_match "inspect --helpfile" "A test image." "$OUT"
run "$CAPSA" inspect --test "$B/local.sif"
expect_match "inspect --test" "test -f /post.txt" "$OUT"
run "$CAPSA" inspect --environment "$B/local.sif"
expect_match "inspect --environment: %environment" "export FOO=bar" "$OUT"
run "$CAPSA" exec "$B/local.sif" cat /.singularity.d/Singularity
expect_eq "the definition inside the image" "$(cat "$B/local.def")" "$OUT"
run_user "$CAPSA run $B/local.sif"
expect_eq "the localimage build runs as a user" "foo is bar, from post yes, args " "$OUT"

# A failing %test fails the build; --notest skips it.
sed 's|test -f /post.txt|test -f /nonexistent|' "$B/local.def" > "$B/failtest.def"
run "$CAPSA" build "$B/failtest.sif" "$B/failtest.def"
expect_eq "failing %test: exit 255" "255" "$RC"
expect_match "failing %test: FATAL naming the section's line" "^FATAL: +$B/failtest.def:[0-9]+: %test failed \(exit status 1\)$" "$OUT"
check "failing %test: no image" test ! -e "$B/failtest.sif"
run "$CAPSA" build --notest "$B/failtest.sif" "$B/failtest.def"
expect_eq "--notest skips %test" "0" "$RC"

# The same as a user: refused without --fakeroot, built with it.
run_user "$CAPSA build \$HOME/nofk.sif $B/local.def"
expect_eq "%post as a user without --fakeroot: exit 255" "255" "$RC"
expect_match "%post as a user without --fakeroot: says why, at which line" "^FATAL: +$B/local.def:[0-9]+: %setup runs as root: build as root or with --fakeroot$" "$OUT"
rm -f "$uhome/fk.sif" "$uhome/nofk.sif"
run_user "cd $B && $CAPSA build --fakeroot \$HOME/fk.sif $B/local.def && $CAPSA run \$HOME/fk.sif x"
expect_eq "--fakeroot: a user builds with %setup, %files, %post, %test" "foo is bar, from post yes, args x" "$(printf '%s\n' "$OUT" | tail -1)"
run "$CAPSA" exec "$uhome/fk.sif" stat -c %u:%g /post.txt
expect_eq "--fakeroot: %post's files are root's in the image" "0:0" "$OUT"
rm -f "$uhome/fk.sif"

# ---------------------------------------------------------------- 4. atomicity, interruption

cat > "$B/slow.def" <<EOF
Bootstrap: localimage
From: $BB

%post
    echo capsa-slow-post-marker
    sleep 313
EOF
mkdir -p "$B/int" && chmod 0755 "$B/int"
# wait_for PATTERN: until a process whose command line matches appears.
wait_for () { for _ in $(seq 150); do pgrep -f "$1" > /dev/null && return 0; sleep 0.1; done; return 1; }

"$CAPSA" build "$B/int/int.sif" "$B/slow.def" > "$WORK/int.log" 2>&1 &
pid=$!
if wait_for "^sleep 313"; then
    kill -INT "$pid"
    wait "$pid"; rc=$?
    expect_eq "SIGINT during %post: exit 255" "255" "$rc"
    expect_match "SIGINT during %post: says so" "^FATAL: +build interrupted by SIGINT$" "$(cat "$WORK/int.log")"
    expect_eq "SIGINT during %post: nothing left beside OUT" "" "$(ls -A "$B/int")"
    sleep 0.2
    expect_eq "SIGINT during %post: no process left" "" "$(pgrep -f '^sleep 313')"
    no_build_mounts "SIGINT during %post: no mount left"
else
    kill -KILL "$pid"; wait "$pid"
    fail "SIGINT during %post" "%post never started: $(head -c 400 "$WORK/int.log")"
fi

"$CAPSA" build "$B/int/kill.sif" "$B/slow.def" > "$WORK/kill.log" 2>&1 &
pid=$!
if wait_for "^/bin/sh -e -c .*capsa-slow-post-marker"; then
    kill -KILL "$(pgrep -f '^/bin/sh -e -c .*capsa-slow-post-marker')"
    wait "$pid"; rc=$?
    expect_eq "SIGKILL of the %post process: build fails with 255" "255" "$rc"
    expect_match "SIGKILL of the %post process: FATAL naming it" "^FATAL: +$B/slow.def:4: %post failed \(killed by signal 9" "$(cat "$WORK/kill.log")"
    expect_eq "SIGKILL of the %post process: nothing left beside OUT" "" "$(ls -A "$B/int")"
    no_build_mounts "SIGKILL of the %post process: no mount left"
else
    kill -KILL "$pid"; wait "$pid"
    fail "SIGKILL of the %post process" "%post never started: $(head -c 400 "$WORK/kill.log")"
fi

# SIGTERM while mksquashfs runs (a bigger tree, so that it takes a while).
if MINBASE=$(fixture_minbase); then
    "$CAPSA" build "$B/int/term.sif" "$MINBASE" > "$WORK/term.log" 2>&1 &
    pid=$!
    if wait_for "^mksquashfs $MINBASE"; then
        kill -TERM "$pid"
        wait "$pid"; rc=$?
        expect_eq "SIGTERM during mksquashfs: exit 255" "255" "$rc"
        expect_eq "SIGTERM during mksquashfs: nothing left beside OUT" "" "$(ls -A "$B/int")"
        sleep 0.2
        expect_eq "SIGTERM during mksquashfs: mksquashfs stopped" "" "$(pgrep -f "^mksquashfs $MINBASE")"
    else
        wait "$pid"
        fail "SIGTERM during mksquashfs" "mksquashfs never seen: $(head -c 400 "$WORK/term.log")"
    fi
else
    fail "SIGTERM during mksquashfs" "fixture_minbase failed"
fi

echo "precious" > "$B/exists.sif"
run "$CAPSA" build "$B/exists.sif" "$B/dir"
expect_eq "existing OUT without --force: exit 255" "255" "$RC"
expect_eq "existing OUT without --force: message" "FATAL:   $B/exists.sif already exists (use --force to replace it)" "$OUT"
expect_eq "existing OUT without --force: untouched" "precious" "$(cat "$B/exists.sif")"
run "$CAPSA" build --force "$B/exists.sif" "$B/dir"
expect_eq "existing OUT with --force: replaced" "0:hello" "$RC:$("$CAPSA" exec "$B/exists.sif" echo hello 2>&1)"
mkdir -p "$B/oldbox" && echo old > "$B/oldbox/marker"
run "$CAPSA" build --sandbox "$B/oldbox" "$BB"
expect_eq "existing sandbox without --force: exit 255" "255" "$RC"
check "existing sandbox without --force: untouched" test -f "$B/oldbox/marker"
run "$CAPSA" build --force --sandbox "$B/oldbox" "$BB"
check "existing sandbox with --force: replaced" test -x "$B/oldbox/bin/busybox" -a ! -e "$B/oldbox/marker"
expect_eq "no build directory left beside OUT" "" "$(leftovers "$B")"

# ---------------------------------------------------------------- 5. definition-file errors

mkdir -p "$B/err" && cd "$B/err" || exit 1
printf 'Bootstrap: localimage\nFrom: %s\n\n%%post\n    true\n\n%%foo\n    bar\n' "$BB" > bad-section.def
run "$CAPSA" build bad.sif bad-section.def
expect_eq "unknown section: exit 255" "255" "$RC"
expect_match "unknown section: FATAL naming the line" "^FATAL: +bad-section.def:7: unknown section '%foo'$" "$OUT"
printf 'Bootstrap: localimage\n\n%%post\n    true\n' > no-from.def
run "$CAPSA" build bad.sif no-from.def
expect_eq "missing From: exit 255" "255" "$RC"
expect_match "missing From: FATAL naming the line" "^FATAL: +no-from.def:1: 'Bootstrap: localimage' needs a 'From:' header naming the image$" "$OUT"
printf 'Bootstrap: localimage\nFrom: %s\n\n%%files\n    /etc/hostname /x\n    /nonexistent/capsa-src /y\n' "$BB" > no-src.def
run "$CAPSA" build bad.sif no-src.def
expect_eq "missing %files source: exit 255" "255" "$RC"
expect_match "missing %files source: FATAL naming the line" "^FATAL: +no-src.def:6: %files source '/nonexistent/capsa-src' does not exist$" "$OUT"
printf 'Bootstrap: localimage\nFrom: /nonexistent/base.sif\n' > bad-from.def
run "$CAPSA" build bad.sif bad-from.def
expect_match "From: a missing image: FATAL naming the line" "^FATAL: +bad-from.def:2: From: /nonexistent/base.sif: No such file or directory$" "$OUT"
expect_eq "definition-file errors leave nothing" "bad-from.def bad-section.def no-from.def no-src.def" "$(ls -A | tr '\n' ' ' | sed 's/ $//')"
cd "$WORK" || exit 1

# ---------------------------------------------------------------- encryption (docs/encryption.md)

run env CAPSA_ENCRYPTION_PASSPHRASE=capsa-build-secret "$CAPSA" build --encrypt "$B/enc.sif" "$BB"
expect_eq "build --encrypt with a passphrase: exit 0" "0" "$RC"
run "$CAPSA" sif list "$B/enc.sif"
expect_match "encrypted build: encrypted primary partition" "\|FS \(Encrypted squashfs/\*System/amd64\)$" "$OUT"
expect_match "encrypted build: metadata in clear" "\|JSON\.Generic$" "$OUT"
expect_eq "encrypted build: the partition is a LUKS container" "LUKS" "$(dd if="$B/enc.sif" bs=1 skip="$(part_offset "$B/enc.sif")" count=4 status=none)"
run "$CAPSA" inspect --deffile "$B/enc.sif"
expect_match "encrypted build: inspect works without a key" "^bootstrap: localimage$" "$OUT"
if command -v openssl > /dev/null; then
    openssl genrsa -out "$B/k.pem" 2048 2> /dev/null && openssl rsa -in "$B/k.pem" -pubout -out "$B/pub.pem" 2> /dev/null
    run "$CAPSA" build --pem-path "$B/pub.pem" "$B/enc-rsa.sif" "$IMG_DIR"
    expect_eq "build --pem-path: exit 0" "0" "$RC"
    run "$CAPSA" sif list "$B/enc-rsa.sif"
    expect_match "build --pem-path: the wrapped key's message" "\|Cryptographic Message \(PEM/RSA-OAEP\)$" "$OUT"
fi
run env -u CAPSA_ENCRYPTION_PASSPHRASE "$CAPSA" build --encrypt "$B/enc-nokey.sif" "$BB"
expect_eq "build --encrypt without a key: exit 255" "255" "$RC"
expect_match "build --encrypt without a key: says so" "^FATAL: +no encryption key given" "$OUT"
run env CAPSA_ENCRYPTION_PASSPHRASE=x "$CAPSA" build --encrypt --sandbox "$B/enc-box" "$BB"
expect_eq "an encrypted sandbox is refused" "255" "$RC"
# A key in the environment of an unencrypted build never reaches %setup.
cat > "$B/envleak.def" <<EOF
Bootstrap: localimage
From: $BB

%setup
    env > "\$APPTAINER_ROOTFS/setup-env"
EOF
run env CAPSA_ENCRYPTION_PASSPHRASE=do-not-leak APPTAINER_ENCRYPTION_PASSPHRASE=do-not-leak "$CAPSA" build "$B/envleak.sif" "$B/envleak.def"
run "$CAPSA" exec "$B/envleak.sif" cat /setup-env
expect_eq "the %setup environment was recorded" "0" "$RC"
expect_nomatch "encryption variables are not passed to %setup" "do-not-leak" "$OUT"
expect_match "(and %setup did see its environment)" "^APPTAINER_ROOTFS=" "$OUT"

# ---------------------------------------------------------------- progress

run "$CAPSA" build "$B/p1.sif" "$IMG_DIR"
expect_eq "not a terminal: the build succeeds" "0" "$RC"
expect_nomatch "not a terminal: no progress drawing" $'\r' "$OUT"
run "$CAPSA" -q build "$B/p2.sif" "$IMG_DIR"
expect_eq "-q: silent" "0:" "$RC:$OUT"
if command -v python3 > /dev/null; then
    # A pseudo-terminal with a size, as a user's terminal: mksquashfs
    # draws its progress bar.
    run python3 -c '
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace").replace("\r", "<CR>"))
' "$CAPSA" build "$B/p3.sif" "$IMG_DIR"
    expect_match "on a terminal: mksquashfs's progress bar" "\] [0-9]+/[0-9]+ +100%" "$OUT"
fi

# ---------------------------------------------------------------- 1. debootstrap (cached)

if DEB=$(fixture_ping_sif); then
    run "$CAPSA" run "$DEB"
    expect_eq "debootstrap image: run prints the %environment variable" "greeting: hello from deb.sif" "$OUT"
    run "$CAPSA" inspect --labels "$DEB"
    expect_match "debootstrap image: inspect --labels, the recipe's" "^org.capsa.fixture: ping$" "$OUT"
    expect_match "debootstrap image: inspect --labels, the header's" "^org.label-schema.usage.singularity.deffile.include: iputils-ping libcap2-bin$" "$OUT"
    run "$CAPSA" sif list "$DEB"
    expect_match "debootstrap image: definition object" "\|Def\.FILE$" "$OUT"
    expect_match "debootstrap image: JSON.Generic object" "\|JSON\.Generic$" "$OUT"
    expect_match "debootstrap image: FS (Squashfs/*System/amd64)" "\|FS \(Squashfs/\*System/amd64\)$" "$OUT"
    run "$CAPSA" sif info 2 "$DEB"
    expect_match "debootstrap image: inspect-metadata.json" "Name: +inspect-metadata.json" "$OUT"
    run unsquashfs -l -o "$(part_offset "$DEB")" "$DEB"
    expect_eq "debootstrap image: the partition passes unsquashfs -l" "0" "$RC"
    run "$CAPSA" inspect --deffile "$DEB"
    expect_eq "debootstrap image: its definition" "$(fixture_ping_def)" "$OUT"
    run "$CAPSA" exec "$DEB" cat /etc/capsa-post.txt
    expect_eq "debootstrap image: %post ran" "made by %post" "$OUT"
    run "$CAPSA" exec "$DEB" getcap /usr/bin/ping
    expect_eq "debootstrap image: Include'd ping keeps its file capability" "/usr/bin/ping cap_net_raw=ep" "$OUT"
    run_user "$CAPSA run $DEB"
    expect_eq "debootstrap image: runs as a user" "greeting: hello from deb.sif" "$OUT"
else
    fail "debootstrap image" "fixture_ping_sif failed (see the log above)"
fi

no_build_mounts "no build mount left at the end"
expect_eq "no build directory left at the end" "" "$(leftovers "$B")"
