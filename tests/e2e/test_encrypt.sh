# capsa encrypt and the encrypted-image format (issue 7): the partition
# capsa writes is checked with tools that are not capsa (cryptsetup for the
# LUKS2 header and keyslots, openssl for the RSA-OAEP key message, Python's
# cryptography for AES-XTS with dm-crypt's plain64 numbering), and
# capsa-cryptfuse is run by hand, as root and as a user, to serve the
# decrypted squashfs of a LUKS2 image capsa wrote and of a gocryptfs image
# gocryptfs wrote.  test_crypt_interop.sh has cryptsetup decrypt whole
# images.
BB=$FIXTURES/sif/busybox_amd64.sif
CRYPTFUSE=$CAPSA_PREFIX/libexec/capsa/cryptfuse
PASS="e2e pass $RANDOM$RANDOM"
unset CAPSA_ENCRYPTION_PASSPHRASE CAPSA_ENCRYPTION_PEM_PATH CAPSA_ENCRYPTION_PEM_DATA \
    APPTAINER_ENCRYPTION_PASSPHRASE APPTAINER_ENCRYPTION_PEM_PATH APPTAINER_ENCRYPTION_PEM_DATA \
    SINGULARITY_ENCRYPTION_PASSPHRASE SINGULARITY_ENCRYPTION_PEM_PATH SINGULARITY_ENCRYPTION_PEM_DATA

# The original squashfs of the fixture (object 4), to compare with.
"$CAPSA" sif dump 4 "$BB" > "$WORK/plain.sqfs"

# part_range SIF: "OFFSET SIZE" of the encrypted partition, from `capsa sif list`.
part_range () {
    "$CAPSA" sif list "$1" | awk -F'|' '/Encrypted squashfs|Gocryptfs squashfs/ { split($4, a, "-"); print a[1] + 0, a[2] - a[1] }'
}
# cut_part SIF OUT: the partition bytes, cut out with dd.
cut_part () {
    local r; r=($(part_range "$1"))
    dd if="$1" of="$2" iflag=skip_bytes,count_bytes skip="${r[0]}" count="${r[1]}" status=none
}
no_temp_left () {
    local left; left=$(ls -A "$WORK" /tmp | grep capsa-encrypt)
    expect_eq "$1" "" "$left"
}

# ---- passphrase ------------------------------------------------------------------
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt "$BB" "$WORK/pw.sif" 2>&1); RC=$?
expect_eq "encrypt with CAPSA_ENCRYPTION_PASSPHRASE: exit 0" 0 "$RC"
expect_match "encrypt: says the signature is dropped" "^WARNING: .*signature.*not copied" "$OUT"
run "$CAPSA" sif list "$WORK/pw.sif"
expect_match "sif list: FS (Encrypted squashfs/*System/amd64)" '\|FS \(Encrypted squashfs/\*System/amd64\)$' "$OUT"
expect_nomatch "sif list: no signature left" "Signature" "$OUT"
expect_eq "sif list: definition file and both JSON objects kept" "3" \
    "$(printf '%s\n' "$OUT" | grep -cE '\|(Def.FILE|JSON.Generic)$')"
expect_eq "sif list: no key message for a passphrase image" "0" "$(printf '%s\n' "$OUT" | grep -c 'Cryptographic Message')"
run "$CAPSA" sif dump 1 "$WORK/pw.sif"
expect_eq "the definition file is kept, in clear" "BootStrap: docker
From: busybox:1.33.1" "$OUT"
OUT=$("$CAPSA" inspect --deffile "$WORK/pw.sif" 2>/dev/null)
expect_eq "inspect works without a key" "BootStrap: docker
From: busybox:1.33.1" "$OUT"

cut_part "$WORK/pw.sif" "$WORK/pw.part"
run cryptsetup luksDump "$WORK/pw.part"
expect_eq "cryptsetup luksDump accepts the partition" 0 "$RC"
expect_match "luksDump: LUKS2" "^Version:[[:space:]]+2$" "$OUT"
expect_match "luksDump: aes-xts-plain64 data segment" "cipher: aes-xts-plain64" "$OUT"
expect_match "luksDump: 4096-byte sectors" "sector: 4096 \[bytes\]" "$OUT"
expect_match "luksDump: 512-bit key" "Key:[[:space:]]+512 bits" "$OUT"
expect_match "luksDump: argon2id keyslot" "PBKDF:[[:space:]]+argon2id" "$OUT"
expect_match "luksDump: 64 MiB argon2 memory" "Memory:[[:space:]]+65536" "$OUT"
printf '%s' "$PASS" | cryptsetup open --test-passphrase --key-file - "$WORK/pw.part"
expect_eq "cryptsetup open --test-passphrase accepts the passphrase" 0 "$?"
printf '%s' "$PASS-x" | cryptsetup open --test-passphrase --key-file - "$WORK/pw.part" 2>/dev/null
expect_eq "cryptsetup open --test-passphrase refuses another passphrase" 2 "$?"

# The data segment, decrypted with the volume key cryptsetup gives and plain
# AES-XTS (the tweak of 4096-byte sector i is 8i: dm-crypt counts 512-byte
# units for LUKS2, little endian), is the original squashfs followed by
# zeros: byte-compatible with dm-crypt.
printf '%s' "$PASS" | cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$WORK/vk.bin" \
    --key-file - "$WORK/pw.part" > /dev/null
OUT=$(python3 - "$WORK/vk.bin" "$WORK/pw.part" "$WORK/plain.sqfs" <<'EOF' 2>&1
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
vk = open(sys.argv[1], 'rb').read()
part = open(sys.argv[2], 'rb').read()
plain = open(sys.argv[3], 'rb').read()
data = part[1 << 20:]
out = bytearray()
for i in range(len(data) // 4096):
    d = Cipher(algorithms.AES(vk), modes.XTS((8 * i).to_bytes(16, 'little'))).decryptor()
    out += d.update(data[i * 4096:(i + 1) * 4096]) + d.finalize()
ok = len(data) % 4096 == 0 and out[:len(plain)] == plain and not any(out[len(plain):])
print("same" if ok else "different: %d vs %d bytes" % (len(out), len(plain)))
EOF
)
expect_eq "data segment = squashfs under plain AES-XTS with cryptsetup's volume key (plain64, 512-byte units)" "same" "$OUT"
rm -f "$WORK/vk.bin"

# No plaintext in the image: no squashfs magic where the data starts, no
# piece of the original squashfs anywhere, and not the passphrase.
r=($(part_range "$WORK/pw.sif"))
expect_eq "no squashfs magic at the start of the data segment" "no" \
    "$(dd if="$WORK/pw.sif" iflag=skip_bytes,count_bytes skip=$((r[0] + 1048576)) count=4 status=none | grep -q hsqs && echo yes || echo no)"
OUT=$(python3 - "$WORK/pw.sif" "$WORK/plain.sqfs" "$PASS" <<'EOF'
import sys
img = open(sys.argv[1], 'rb').read()
plain = open(sys.argv[2], 'rb').read()
pieces = [plain[:96]] + [plain[o:o + 64] for o in range(4096, len(plain) - 64, len(plain) // 7)]
found = [i for i, p in enumerate(pieces) if img.find(p) >= 0]
print("found pieces %s" % found if found else "clean", "passphrase!" if img.find(sys.argv[3].encode()) >= 0 else "")
EOF
)
expect_eq "no piece of the plaintext squashfs nor the passphrase in the encrypted SIF" "clean " "$OUT"

# --passphrase asks on the terminal (twice, without echo).
( sleep 0.5; printf '%s\n' "$PASS"; sleep 0.5; printf '%s\n' "$PASS" ) |
    script -qec "$CAPSA encrypt --passphrase $BB $WORK/tty.sif" /dev/null > "$WORK/tty.out" 2>&1
expect_eq "--passphrase on a terminal: exit 0" 0 "$?"
expect_match "--passphrase asks twice" "Retype passphrase:" "$(cat "$WORK/tty.out")"
expect_eq "--passphrase: not echoed" 0 "$(grep -cF "$PASS" "$WORK/tty.out")"
cut_part "$WORK/tty.sif" "$WORK/tty.part"
printf '%s' "$PASS" | cryptsetup open --test-passphrase --key-file - "$WORK/tty.part"
expect_eq "--passphrase: the typed passphrase opens the keyslot" 0 "$?"
( sleep 0.5; printf 'one\n'; sleep 0.5; printf 'two\n' ) |
    script -qec "$CAPSA encrypt --passphrase $BB $WORK/tty2.sif" /dev/null > "$WORK/tty.out" 2>&1
expect_match "--passphrase: different confirmation refused" "FATAL: +the passphrases do not match" "$(cat "$WORK/tty.out")"
run "$CAPSA" encrypt --passphrase "$BB" "$WORK/notty.sif" < /dev/null
expect_match "--passphrase, standard input empty and not a terminal: FATAL" "^FATAL: .*standard input" "$OUT"
expect_eq "--passphrase, standard input empty and not a terminal: exit 255" 255 "$RC"
expect_eq "--passphrase, standard input empty: no output" "" "$(ls "$WORK" | grep '^notty.sif')"
OUT=$(printf '%s\n' "$PASS" | setsid "$CAPSA" encrypt --passphrase "$BB" "$WORK/stdin.sif" 2>&1); RC=$?
expect_eq "--passphrase from a pipe, no terminal (one line, as Apptainer): exit 0" 0 "$RC"
cut_part "$WORK/stdin.sif" "$WORK/tty.part"
printf '%s' "$PASS" | cryptsetup open --test-passphrase --key-file - "$WORK/tty.part"
expect_eq "--passphrase from a pipe: the line (without its newline) opens the keyslot" 0 "$?"
rm -f "$WORK/tty.part" "$WORK/tty.out" "$WORK/stdin.sif"

# ---- RSA -------------------------------------------------------------------------------
openssl genrsa -out "$WORK/priv8.pem" 2048 2> /dev/null
openssl rsa -in "$WORK/priv8.pem" -traditional -out "$WORK/priv1.pem" 2> /dev/null
openssl rsa -in "$WORK/priv8.pem" -RSAPublicKey_out -out "$WORK/pub1.pem" 2> /dev/null
openssl rsa -in "$WORK/priv8.pem" -pubout -out "$WORK/spki.pem" 2> /dev/null
expect_match "test keys: PKCS#1 public key" "BEGIN RSA PUBLIC KEY" "$(head -1 "$WORK/pub1.pem")"

run "$CAPSA" encrypt --pem-path "$WORK/pub1.pem" "$BB" "$WORK/rsa.sif"
expect_eq "encrypt --pem-path (PKCS#1 public key): exit 0" 0 "$RC"
run "$CAPSA" sif list "$WORK/rsa.sif"
expect_match "sif list: RSA image partition" '\|FS \(Encrypted squashfs/\*System/amd64\)$' "$OUT"
expect_match "sif list: Cryptographic Message (PEM/RSA-OAEP) linked to the partition" \
    '^5 +\|1 +\|4 +\|[0-9-]+ +\|Cryptographic Message \(PEM/RSA-OAEP\)$' "$OUT"
"$CAPSA" sif dump 5 "$WORK/rsa.sif" > "$WORK/msg.pem"
expect_eq "key message: a PEM MESSAGE block" "-----BEGIN MESSAGE-----" "$(head -1 "$WORK/msg.pem")"
expect_match "key message: a DER OCTET STRING of 256 bytes" "prim: OCTET STRING" \
    "$(openssl asn1parse -in "$WORK/msg.pem" 2>&1 | head -1)"
sed '1d;$d' "$WORK/msg.pem" | base64 -d | tail -c 256 > "$WORK/msg.ct"
openssl pkeyutl -decrypt -inkey "$WORK/priv1.pem" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256 -in "$WORK/msg.ct" -out "$WORK/secret.bin"
expect_eq "openssl pkeyutl decrypts the message (OAEP, SHA-256, MGF1-SHA-256)" 0 "$?"
expect_eq "the wrapped secret has 64 bytes" 64 "$(stat -c %s "$WORK/secret.bin")"
cut_part "$WORK/rsa.sif" "$WORK/rsa.part"
cryptsetup open --test-passphrase --key-file "$WORK/secret.bin" "$WORK/rsa.part"
expect_eq "cryptsetup accepts the unwrapped secret" 0 "$?"
expect_match "RSA keyslot: cheap pbkdf2 for a random secret" "PBKDF:[[:space:]]+pbkdf2" "$(cryptsetup luksDump "$WORK/rsa.part")"

OUT=$(CAPSA_ENCRYPTION_PEM_PATH="$WORK/spki.pem" "$CAPSA" encrypt "$BB" "$WORK/rsa2.sif" 2>&1); RC=$?
expect_eq "CAPSA_ENCRYPTION_PEM_PATH with an SPKI public key: exit 0" 0 "$RC"
OUT=$(APPTAINER_ENCRYPTION_PEM_DATA="$(cat "$WORK/pub1.pem")" "$CAPSA" encrypt "$BB" "$WORK/rsa3.sif" 2>&1); RC=$?
expect_eq "APPTAINER_ENCRYPTION_PEM_DATA: exit 0" 0 "$RC"
expect_match "APPTAINER_ENCRYPTION_PEM_DATA: an RSA image" "Cryptographic Message \(PEM/RSA-OAEP\)" \
    "$("$CAPSA" sif list "$WORK/rsa3.sif")"
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt --pem-path "$WORK/spki.pem" "$BB" "$WORK/rsa4.sif" 2>&1)
expect_match "the --pem-path flag wins over CAPSA_ENCRYPTION_PASSPHRASE" "Cryptographic Message" \
    "$("$CAPSA" sif list "$WORK/rsa4.sif" 2>&1)"
rm -f "$WORK"/rsa[234].sif

# ---- errors: each says what is wrong, exits 255, leaves nothing behind --------------------------
openssl genrsa -aes256 -passout pass:x -out "$WORK/locked.pem" 2048 2> /dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ec.pem" 2> /dev/null
run "$CAPSA" encrypt "$BB" "$WORK/e.sif"
expect_match "no key: FATAL naming --passphrase and --pem-path" "^FATAL: .*--passphrase.*--pem-path" "$OUT"
expect_eq "no key: exit 255" 255 "$RC"
run "$CAPSA" encrypt --pem-path "$WORK/locked.pem" "$BB" "$WORK/e.sif"
expect_match "passphrase-protected PEM refused" "^FATAL: .*locked.pem is protected by a passphrase" "$OUT"
run "$CAPSA" encrypt --pem-path "$WORK/ec.pem" "$BB" "$WORK/e.sif"
expect_match "EC key refused" "^FATAL: .*ec.pem holds an EC key, not an RSA key" "$OUT"
run "$CAPSA" encrypt --pem-path "$WORK/missing.pem" "$BB" "$WORK/e.sif"
expect_match "missing PEM file" "^FATAL: .*missing.pem" "$OUT"
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE= "$CAPSA" encrypt "$BB" "$WORK/e.sif" 2>&1)
expect_match "empty passphrase refused" "^FATAL: .*empty" "$OUT"
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt "$WORK/pw.sif" "$WORK/e.sif" 2>&1); RC=$?
expect_match "an encrypted image is not encrypted again" "^FATAL: .*already encrypted" "$OUT"
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt "$BB" "$WORK/pw.sif" 2>&1); RC=$?
expect_match "an existing output needs --force" "^FATAL: .*already exists.*--force" "$OUT"
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt "$IMG_SQFS" "$WORK/e.sif" 2>&1); RC=$?
expect_match "a bare squashfs is not a SIF" "^FATAL: " "$OUT"
expect_eq "no output after the errors" "" "$(ls "$WORK" | grep '^e.sif')"
no_temp_left "no temporary file after the errors"

# SIGINT while encrypting (during the key derivation or the data): no
# output, no temporary file.
OUT=$(CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" encrypt --force "$BB" "$WORK/int.sif" 2>&1 &
      pid=$!
      for i in $(seq 200); do ls -A "$WORK" | grep -q capsa-encrypt && break; sleep 0.01; done
      kill -INT $pid; wait $pid; echo "rc=$?")
expect_match "SIGINT: the command dies of it" "rc=130" "$OUT"
expect_eq "SIGINT: no output" "" "$(ls "$WORK" | grep '^int.sif')"
no_temp_left "SIGINT: no temporary file"

# ---- capsa-cryptfuse, run by hand ------------------------------------------------------------------
# start_fuse WHO MNT SIF KEYFILE [--volume-key-fd]: starts the server in
# the background ($FPID), waits for its ready byte.
start_fuse () {
    local who=$1 mnt=$2 sif=$3 key=$4 kopt=${5:---key-fd} r
    r=($(part_range "$sif"))
    : > "$WORK/ready"; : > "$WORK/fuse.err"
    [ "$who" = root ] || chown "$TUSER" "$WORK/ready" "$WORK/fuse.err"
    if [ "$who" = root ]; then
        "$CRYPTFUSE" --image-fd 3 --offset "${r[0]}" --size "${r[1]}" "$kopt" 4 --ready-fd 5 "$mnt" \
            3< "$sif" 4< "$key" 5> "$WORK/ready" 2> "$WORK/fuse.err" &
        FPID=$!
    else
        # setpriv execs (runuser would stay as the parent): $FPID is the server.
        setpriv --reuid="$(id -u "$TUSER")" --regid="$(id -g "$TUSER")" --init-groups sh -c 'exec "$0" --image-fd 3 --offset "$1" --size "$2" "$3" 4 --ready-fd 5 "$4" \
            3< "$5" 4< "$6" 5> "$7" 2> "$8"' "$CRYPTFUSE" "${r[0]}" "${r[1]}" "$kopt" "$mnt" "$sif" "$key" \
            "$WORK/ready" "$WORK/fuse.err" &
        FPID=$!
    fi
    for i in $(seq 100); do
        [ -s "$WORK/ready" ] && return 0
        kill -0 $FPID 2> /dev/null || return 1
        sleep 0.05
    done
    return 1
}

printf '%s' "$PASS" > "$WORK/pass.txt"
mkdir "$WORK/mnt"
start_fuse root "$WORK/mnt" "$WORK/pw.sif" "$WORK/pass.txt"
expect_eq "cryptfuse as root: ready" 0 "$?"
run ls -l "$WORK/mnt"
expect_match "cryptfuse: one read-only file, image" '^-r--r--r-- .* image$' "$OUT"
run unsquashfs -l "$WORK/mnt/image"
expect_match "cryptfuse as root: unsquashfs -l lists busybox's files" "squashfs-root/bin/busybox" "$OUT"
cmp -s -n "$(stat -c %s "$WORK/plain.sqfs")" "$WORK/mnt/image" "$WORK/plain.sqfs"
expect_eq "cryptfuse: image = the original squashfs" 0 "$?"
expect_match "cryptfuse: a read-only FUSE mount" "fuse.capsa-cryptfuse capsa-cryptfuse ro" "$(grep " $WORK/mnt " /proc/self/mountinfo)"
expect_eq "cryptfuse: no passphrase in its command line or environment" 0 \
    "$(cat /proc/$FPID/cmdline /proc/$FPID/environ | tr '\0' '\n' | grep -cF "$PASS")"
# AddressSanitizer turns mlock/mlockall into no-ops: not checked (nor
# counted) in the sanitizer run.
if [ "${CAPSA_SAN:-}" != 1 ]; then
    expect_match "cryptfuse: memory locked" "VmLck:[[:space:]]+[1-9]" "$(grep VmLck /proc/$FPID/status)"
fi
expect_eq "cryptfuse: not writable" "no" "$(sh -c ": > '$WORK/mnt/image'" 2> /dev/null && echo yes || echo no)"
fusermount3 -u "$WORK/mnt"
wait $FPID
expect_eq "cryptfuse: exits 0 when unmounted" 0 "$?"
expect_eq "cryptfuse: nothing mounted afterwards" "" "$(grep " $WORK/mnt " /proc/self/mountinfo)"

# RSA: the secret that openssl unwrapped opens it; SIGTERM stops it.
start_fuse root "$WORK/mnt" "$WORK/rsa.sif" "$WORK/secret.bin"
expect_eq "cryptfuse: the unwrapped RSA secret opens the RSA image" 0 "$?"
expect_match "cryptfuse (RSA): unsquashfs -l" "squashfs-root/bin/busybox" "$(unsquashfs -l "$WORK/mnt/image" 2>&1)"
kill -TERM $FPID
wait $FPID
expect_eq "cryptfuse: SIGTERM: exits 0" 0 "$?"
expect_eq "cryptfuse: SIGTERM: unmounted" "" "$(grep " $WORK/mnt " /proc/self/mountinfo)"

# The volume key itself (no KDF), as capsa's runtime may hand it over.
printf '%s' "$PASS" | cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$WORK/vk.bin" \
    --key-file - "$WORK/pw.part" > /dev/null
start_fuse root "$WORK/mnt" "$WORK/pw.sif" "$WORK/vk.bin" --volume-key-fd
expect_eq "cryptfuse --volume-key-fd: ready" 0 "$?"
expect_match "cryptfuse --volume-key-fd: unsquashfs -l" "squashfs-root/bin/busybox" "$(unsquashfs -l "$WORK/mnt/image" 2>&1)"
fusermount3 -u "$WORK/mnt"; wait $FPID
rm -f "$WORK/vk.bin"

# Wrong key: FATAL, exit 255, nothing mounted, no ready byte.
printf 'not it' > "$WORK/wrong.txt"
start_fuse root "$WORK/mnt" "$WORK/pw.sif" "$WORK/wrong.txt"
wait $FPID; RC=$?
expect_eq "cryptfuse, wrong passphrase: exit 255" 255 "$RC"
expect_match "cryptfuse, wrong passphrase: says the key does not open the image" "^FATAL: .*does not open" \
    "$(cat "$WORK/fuse.err")"
expect_eq "cryptfuse, wrong passphrase: not ready, not mounted" ":" \
    "$(cat "$WORK/ready"):$(grep " $WORK/mnt " /proc/self/mountinfo)"
# A corrupted header (both copies).
cp "$WORK/pw.sif" "$WORK/bad.sif"
r=($(part_range "$WORK/bad.sif"))
printf 'XXXXXXXX' | dd of="$WORK/bad.sif" bs=1 seek=$((r[0] + 4200)) conv=notrunc status=none
printf 'XXXXXXXX' | dd of="$WORK/bad.sif" bs=1 seek=$((r[0] + 16384 + 4200)) conv=notrunc status=none
start_fuse root "$WORK/mnt" "$WORK/bad.sif" "$WORK/pass.txt"
wait $FPID; RC=$?
expect_eq "cryptfuse, corrupted header: exit 255" 255 "$RC"
expect_match "cryptfuse, corrupted header: says so" "^FATAL: .*LUKS2 header .*corrupted" "$(cat "$WORK/fuse.err")"

# As an unprivileged user, on a directory of theirs (fusermount3).
mkdir "$WORK/umnt" && chown "$TUSER" "$WORK/umnt"
cp "$WORK/pass.txt" "$WORK/upass.txt" && chown "$TUSER" "$WORK/upass.txt" && chmod 0600 "$WORK/upass.txt"
chmod 0644 "$WORK/pw.sif"
start_fuse user "$WORK/umnt" "$WORK/pw.sif" "$WORK/upass.txt"
expect_eq "cryptfuse as $TUSER: ready" 0 "$?"
run_user "unsquashfs -l $WORK/umnt/image"
expect_match "cryptfuse as $TUSER: unsquashfs -l lists busybox's files" "squashfs-root/bin/busybox" "$OUT"
expect_eq "cryptfuse as $TUSER: runs as the user" "$(id -u "$TUSER")" "$(awk '/^Uid:/ {print $3}' /proc/$FPID/status)"
if [ "${CAPSA_SAN:-}" != 1 ]; then
    expect_match "cryptfuse as $TUSER: the key's memory is locked" "VmLck:[[:space:]]+[1-9]" "$(grep VmLck /proc/$FPID/status)"
fi
run_user "fusermount3 -u $WORK/umnt"
wait $FPID
expect_eq "cryptfuse as $TUSER: exits 0 when unmounted" 0 "$?"
expect_eq "cryptfuse as $TUSER: nothing left mounted" "" "$(grep " $WORK/umnt " /proc/self/mountinfo)"

# A gocryptfs image (fs type 6) that gocryptfs made: --key-fd with the
# passphrase (scrypt runs in the server), --volume-key-fd with a key record
# holding the master key gocryptfs-xray dumps.
GC=$(fixture_gocryptfs_set)
expect_eq "fixture: gocryptfs images" 0 "$?"
if [ -d "$GC" ]; then
    printf '%s' "$(cat "$GC/passphrase")" > "$WORK/gpass.txt"
    start_fuse root "$WORK/mnt" "$GC/pass.sif" "$WORK/gpass.txt"
    expect_eq "cryptfuse, gocryptfs image: ready" 0 "$?"
    cmp -s "$WORK/mnt/image" "$GC/pass.inner.sqfs"
    expect_eq "cryptfuse, gocryptfs image: image = the squashfs gocryptfs encrypted" 0 "$?"
    expect_match "cryptfuse, gocryptfs image: unsquashfs -l" "squashfs-root/marker" "$(unsquashfs -l "$WORK/mnt/image" 2>&1)"
    fusermount3 -u "$WORK/mnt"; wait $FPID
    cut_part "$GC/pass.sif" "$WORK/outer"
    unsquashfs -q -d "$WORK/outer.d" "$WORK/outer" gocryptfs.conf > /dev/null 2>&1
    mk=$(gocryptfs-xray -dumpmasterkey "$WORK/outer.d/gocryptfs.conf" < "$WORK/gpass.txt" 2> /dev/null | tr -d ' \n-')
    expect_match "gocryptfs-xray dumps the master key" "^[0-9a-f]{64}$" "$mk"
    { printf 'CAPSAKEY\002\040'; printf '%s' "$mk" | xxd -r -p; } > "$WORK/record"
    start_fuse root "$WORK/mnt" "$GC/pass.sif" "$WORK/record" --volume-key-fd
    expect_eq "cryptfuse --volume-key-fd, a key record with gocryptfs's master key: ready" 0 "$?"
    cmp -s "$WORK/mnt/image" "$GC/pass.inner.sqfs"
    expect_eq "cryptfuse --volume-key-fd (gocryptfs): image = the inner squashfs" 0 "$?"
    fusermount3 -u "$WORK/mnt"; wait $FPID
    printf 'wrong' > "$WORK/wrong.txt"
    start_fuse root "$WORK/mnt" "$GC/pass.sif" "$WORK/wrong.txt"
    wait $FPID; RC=$?
    expect_eq "cryptfuse, gocryptfs, wrong passphrase: exit 255" 255 "$RC"
    expect_match "cryptfuse, gocryptfs, wrong passphrase: the key does not open the image" \
        "^FATAL: .*key does not open the encrypted image" "$(cat "$WORK/fuse.err")"
    cp "$WORK/gpass.txt" "$WORK/ugpass.txt" && chown "$TUSER" "$WORK/ugpass.txt" && chmod 0600 "$WORK/ugpass.txt"
    start_fuse user "$WORK/umnt" "$GC/pass.sif" "$WORK/ugpass.txt"
    expect_eq "cryptfuse as $TUSER, gocryptfs image: ready" 0 "$?"
    run_user "cmp $WORK/umnt/image $GC/pass.inner.sqfs && echo same"
    expect_eq "cryptfuse as $TUSER, gocryptfs image: image = the inner squashfs" "same" "$OUT"
    run_user "fusermount3 -u $WORK/umnt"
    wait $FPID
    rm -rf "$WORK/outer" "$WORK/outer.d" "$WORK/record" "$WORK"/*gpass.txt
fi

rm -f "$WORK"/*.part "$WORK"/secret.bin "$WORK"/*pass.txt
no_leftover_mounts "no capsa mount left"
