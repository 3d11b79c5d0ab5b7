# Running encrypted images (LUKS2 in SIF) in the three modes, with a
# passphrase and with RSA keys; no plaintext or key anywhere it should not
# be; precise errors.  Images are made here with capsa sif + capsa encrypt.
U=$TUSER
UHOME=$(getent passwd "$U" | cut -d: -f6)
MARKER="capsa-marker-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PASS="pass-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# A plain SIF whose root file system holds /marker.
tree=$WORK/tree
cp -a "$IMG_DIR" "$tree" && echo "$MARKER" > "$tree/marker"
mksquashfs "$tree" "$WORK/root.sqfs" -noappend -all-root -quiet >/dev/null
"$CAPSA" sif new "$WORK/plain.sif" && "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$WORK/plain.sif" "$WORK/root.sqfs"
rm -f "$WORK/root.sqfs"

openssl genrsa -traditional -out "$WORK/pkcs1.pem" 2048 2>/dev/null
openssl rsa -in "$WORK/pkcs1.pem" -RSAPublicKey_out -out "$WORK/pkcs1.pub" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/pkcs8.pem" 2>/dev/null
openssl pkey -in "$WORK/pkcs8.pem" -pubout -out "$WORK/spki.pub" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other.pem" 2>/dev/null
chmod 0644 "$WORK"/*.pem "$WORK"/*.pub

CAPSA_ENCRYPTION_PASSPHRASE=$PASS "$CAPSA" -q encrypt "$WORK/plain.sif" "$WORK/pass.sif"
"$CAPSA" -q encrypt --pem-path "$WORK/pkcs1.pub" "$WORK/plain.sif" "$WORK/rsa1.sif"
"$CAPSA" -q encrypt --pem-path "$WORK/spki.pub" "$WORK/plain.sif" "$WORK/rsa8.sif"
chmod 0644 "$WORK"/*.sif

# Also built directly by capsa build (the plaintext squashfs never on disk).
CAPSA_ENCRYPTION_PASSPHRASE=$PASS "$CAPSA" -q build --encrypt "$WORK/built-pass.sif" "$tree"
"$CAPSA" -q build --pem-path "$WORK/spki.pub" "$WORK/built-rsa.sif" "$tree"
chmod 0644 "$WORK"/built-*.sif

# 1. Round trips.
for mode in root setuid userns; do
    case $mode in
    root) r () { run env "$@"; } ;;
    setuid) r () { run_user "$(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$(printf '%q ' "$@" | sed 's/ exec / exec --userns /')"; } ;;
    esac
    r CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/pass.sif" cat /marker
    expect_eq "passphrase image ($mode): cat /marker" "$MARKER" "$OUT"
    r "$CAPSA" exec --pem-path "$WORK/pkcs1.pem" "$WORK/rsa1.sif" cat /marker
    expect_eq "RSA PKCS#1 image ($mode): cat /marker" "$MARKER" "$OUT"
    r "$CAPSA" exec --pem-path "$WORK/pkcs8.pem" "$WORK/rsa8.sif" cat /marker
    expect_eq "RSA PKCS#8/SPKI image ($mode): cat /marker" "$MARKER" "$OUT"
    r CAPSA_ENCRYPTION_PEM_PATH="$WORK/pkcs1.pem" "$CAPSA" exec "$WORK/rsa1.sif" cat /marker
    expect_eq "CAPSA_ENCRYPTION_PEM_PATH ($mode)" "$MARKER" "$OUT"
    r CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/built-pass.sif" cat /marker
    expect_eq "capsa build --encrypt (passphrase) round trip ($mode)" "$MARKER" "$OUT"
    r "$CAPSA" exec --pem-path "$WORK/pkcs8.pem" "$WORK/built-rsa.sif" cat /marker
    expect_eq "capsa build --pem-path round trip ($mode)" "$MARKER" "$OUT"
done
run env APPTAINER_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/pass.sif" cat /marker
expect_eq "APPTAINER_ENCRYPTION_PASSPHRASE is honoured" "$MARKER" "$OUT"
run env CAPSA_ENCRYPTION_PEM_DATA="$(cat "$WORK/pkcs1.pem")" "$CAPSA" exec "$WORK/rsa1.sif" cat /marker
expect_eq "CAPSA_ENCRYPTION_PEM_DATA" "$MARKER" "$OUT"
CAPSA_ENCRYPTION_PASSPHRASE=$PASS "$CAPSA" -q encrypt "$FIXTURES/sif/busybox_amd64.sif" "$WORK/bb-enc.sif"
chmod 0644 "$WORK/bb-enc.sif"
run_user "CAPSA_ENCRYPTION_PASSPHRASE=$PASS $CAPSA exec $WORK/bb-enc.sif /bin/echo hello"
expect_eq "capsa encrypt of busybox_amd64.sif runs" "hello" "$OUT"
run "$CAPSA" inspect --labels "$WORK/bb-enc.sif"
expect_match "inspect works without a key" "org.label-schema.build-arch: amd64" "$OUT"
expect_match "inspect says the root file system is encrypted" "encrypted" "$OUT"
run "$CAPSA" exec --pem-path "$WORK/pkcs1.pem" "$FIXTURES/sif/busybox_amd64.sif" /bin/echo plain
expect_match "a key for an unencrypted image: warning" "^WARNING: .*not encrypted" "$OUT"
expect_match "a key for an unencrypted image: the run continues" "plain" "$OUT"

# 3. No plaintext and no key where it should not be, during a run.
expect_eq "marker not in the encrypted SIFs" "0" "$(cat "$WORK/pass.sif" "$WORK/rsa1.sif" "$WORK/rsa8.sif" "$WORK"/built-*.sif | grep -c -a "$MARKER")"
expect_eq "passphrase not in the SIF" "0" "$(grep -c -a "$PASS" "$WORK/pass.sif")"
# The key reaches capsa through the environment of a shell that read it
# from a file, so that no command line of the test itself holds it.
printf 'export CAPSA_ENCRYPTION_PASSPHRASE=%s\n' "$PASS" > "$WORK/passenv" && chmod 0644 "$WORK/passenv"
as_user "$U" ". $WORK/passenv; exec $CAPSA exec $WORK/pass.sif sh -c 'cat /marker > /dev/null; sleep 4'" > /dev/null 2>&1 &
bg=$!
sleep 2
leaks=$(grep -rlsa -e "$MARKER" -e "$PASS" /tmp /var/tmp /dev/shm "$UHOME" 2>/dev/null | grep -v -e "^$WORK/tree/" -e "^$WORK/passenv$" -e "^$WORK/plain.sif$" -e "^$RESULTS$" | head -3)
expect_eq "during a run: marker and passphrase in no file under /tmp, /var/tmp, /dev/shm, \$HOME" "" "$leaks"
procleak=""
for p in $(pgrep -u "$U"; pgrep -f 'libexec/capsa|bin/capsa|squashfuse'); do
    if cat "/proc/$p/environ" "/proc/$p/cmdline" 2>/dev/null | grep -qa -e "$PASS" -e "$MARKER"; then
        procleak="$procleak $p:$(tr '\0' ' ' < "/proc/$p/cmdline" | head -c 80)"
    fi
done
expect_eq "during a run: no capsa process has the passphrase or marker in environ or cmdline" "" "$procleak"
wait "$bg"
expect_eq "the background encrypted run ended well" "0" "$?"

# The administrator may refuse encrypted images to users (never to root).
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
sed -i 's/^allow container encrypted = yes/allow container encrypted = no/' "$CONF"
run_user "CAPSA_ENCRYPTION_PASSPHRASE=$PASS $CAPSA exec $WORK/pass.sif true"
expect_eq "allow container encrypted = no refuses a user: 255" "255" "$RC"
expect_match "allow container encrypted = no: message" "^FATAL: .*allow container encrypted = no" "$OUT"
run env CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/pass.sif" cat /marker
expect_eq "allow container encrypted = no never restricts root" "$MARKER" "$OUT"
cp "$WORK/conf.orig" "$CONF"

# 4. Errors: message, exit 255, nothing left.
run_user "$CAPSA exec $WORK/pass.sif true"
expect_eq "missing key: 255" "255" "$RC"
expect_match "missing key: names --passphrase" "^FATAL: .*--passphrase" "$OUT"
run_user "$CAPSA exec $WORK/rsa1.sif true"
expect_match "missing key for an RSA image: names --pem-path" "^FATAL: .*--pem-path" "$OUT"
run_user "CAPSA_ENCRYPTION_PASSPHRASE=wrong-$PASS $CAPSA exec $WORK/pass.sif true"
expect_eq "wrong passphrase: 255" "255" "$RC"
expect_match "wrong passphrase: says the key does not open the image" "^FATAL: .*does not open the image" "$OUT"
run_user "$CAPSA exec --pem-path $WORK/other.pem $WORK/rsa1.sif true"
expect_eq "wrong private key: 255" "255" "$RC"
expect_match "wrong private key: says so" "^FATAL: .*does not open the image" "$OUT"
run_user "$CAPSA exec --pem-path $WORK/pkcs1.pub $WORK/rsa1.sif true"
expect_eq "public key where a private one is needed: 255" "255" "$RC"
expect_match "public key where a private one is needed: says so" "^FATAL: .*(public|private)" "$OUT"
cp "$WORK/pass.sif" "$WORK/corrupt.sif"
off=$("$CAPSA" sif list "$WORK/corrupt.sif" | awk -F'|' '/Encrypted/ {split($4, a, "-"); print a[1] + 0}')
dd if=/dev/urandom of="$WORK/corrupt.sif" bs=1 seek=$off count=4096 conv=notrunc status=none
dd if=/dev/urandom of="$WORK/corrupt.sif" bs=1 seek=$((off + 16384)) count=4096 conv=notrunc status=none
run_user "CAPSA_ENCRYPTION_PASSPHRASE=$PASS $CAPSA exec $WORK/corrupt.sif true"
expect_eq "corrupted LUKS header: 255" "255" "$RC"
expect_match "corrupted LUKS header: one FATAL line" "^FATAL: " "$OUT"
sleep 0.3
no_leftover_mounts "after the error cases: nothing mounted"
# (Servers of other runs by the same user may exist: only those holding
# this test's images count.  capsa's image server stays 'image server
# linger' seconds, 10 by default, after its last container.)
servers_left () {
    local p left="" i
    for i in $(seq 130); do
        left=""
        for p in $(pgrep -u "$U" -f 'cryptfuse|squashfuse_ll'; pgrep -u "$U" -x imagefuse); do
            [ "$(cat "/proc/$p/comm" 2>/dev/null)" = imagefuse ] \
                && [ "$(readlink "/proc/$p/exe")" != "$CAPSA_PREFIX/libexec/capsa/imagefuse" ] && continue
            ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$WORK" && left="$left $p"
        done
        [ -z "$left" ] && break
        sleep 0.1
    done
    echo "$left"
}
expect_eq "after the error cases: no FUSE or helper process left" "" "$(servers_left)"

# 5. The formats of others: a gocryptfs image (fs type 6) made with
# gocryptfs and a LUKS2 image (512-byte sectors) made with cryptsetup,
# both with a marker of this run: during a run as the user (setuid and
# --userns), no file under /tmp, /var/tmp, /dev/shm or $HOME and no
# environment or command line of the user's processes holds the marker or
# the passphrase.
MARKER2="capsa-marker2-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PASS2="pass2-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir "$WORK/tree2" && cp -a "$IMG_DIR/." "$WORK/tree2/" && echo "$MARKER2" > "$WORK/tree2/marker"
_fx_gocryptfs_image "$WORK/tree2" "$WORK/gc.part" "$PASS2" && _fx_sif_apptainer "$WORK/gc.sif" "$WORK/gc.part" 6
expect_eq "a gocryptfs image of this run (gocryptfs, mksquashfs -noD -noF)" 0 "$?"
mksquashfs "$WORK/tree2" "$WORK/tree2.sqfs" -noappend -all-root -quiet -no-progress > /dev/null &&
    printf '%s' "$PASS2" > "$WORK/pass2.txt" &&
    _fx_luks_container "$WORK/tree2.sqfs" "$WORK/luks.part" 512 "$WORK/pass2.txt" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 &&
    _fx_sif_apptainer "$WORK/luks.sif" "$WORK/luks.part" 5
expect_eq "a LUKS2 image of this run (cryptsetup, 512-byte sectors)" 0 "$?"
rm -rf "$WORK/tree2" "$WORK/tree2.sqfs" "$WORK/gc.part" "$WORK/gc.part.inner" "$WORK/luks.part" "$WORK/pass2.txt"
chmod 0644 "$WORK/gc.sif" "$WORK/luks.sif"
expect_eq "marker2 not in the encrypted SIFs" "0" "$(cat "$WORK/gc.sif" "$WORK/luks.sif" | grep -c -a "$MARKER2")"
printf 'export CAPSA_ENCRYPTION_PASSPHRASE=%s\n' "$PASS2" > "$WORK/passenv2" && chmod 0644 "$WORK/passenv2"
for img in gc luks; do
    for how in "" "--userns"; do
        what="$img ${how:-setuid}"
        as_user "$U" ". $WORK/passenv2; exec $CAPSA exec $how $WORK/$img.sif sh -c 'cat /marker > /dev/null; sleep 4'" \
            > "$WORK/bg.out" 2>&1 &
        bg=$!
        sleep 2.5
        leaks=$(grep -rlsa -e "$MARKER2" -e "$PASS2" /tmp /var/tmp /dev/shm "$UHOME" 2>/dev/null |
            grep -v -e "^$WORK/passenv2$" -e "^$RESULTS$" | head -3)
        expect_eq "during a run ($what): marker and passphrase in no file under /tmp, /var/tmp, /dev/shm, \$HOME" "" "$leaks"
        procleak=""
        for p in $(pgrep -u "$U"; pgrep -f 'libexec/capsa|bin/capsa|squashfuse'); do
            if cat "/proc/$p/environ" "/proc/$p/cmdline" 2>/dev/null | grep -qa -e "$PASS2" -e "$MARKER2"; then
                procleak="$procleak $p:$(tr '\0' ' ' < "/proc/$p/cmdline" | head -c 80)"
            fi
        done
        expect_eq "during a run ($what): no process has the passphrase or marker in environ or cmdline" "" "$procleak"
        wait "$bg"
        expect_eq "the background run ($what) ended well" "0:" "$?:$(cat "$WORK/bg.out")"
    done
done
run_user "CAPSA_ENCRYPTION_PASSPHRASE=$PASS2 $CAPSA exec $WORK/gc.sif cat /marker"
expect_eq "the gocryptfs image of this run runs" "$MARKER2" "$OUT"
rm -f "$WORK/passenv2" "$WORK/bg.out"
sleep 0.3
no_leftover_mounts "after the runs of other formats: nothing mounted"
expect_eq "after the runs of other formats: no FUSE server left" "" "$(servers_left)"
