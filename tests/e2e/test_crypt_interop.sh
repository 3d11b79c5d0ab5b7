# Encrypted images between capsa and the tools Apptainer and SingularityCE
# use, judged by code that is not capsa's:
#  1. images capsa writes (passphrase, RSA 1024, 2048, 4096) are decrypted
#     by cryptsetup's own user-space LUKS2 code (offline decryption gives
#     dm-crypt's bytes) back to the original squashfs;
#  2. LUKS2 images made with cryptsetup (512- and 4096-byte sectors,
#     passphrase, RSA 2048 and a chunked RSA 1024 whose key message openssl
#     made) run as root, through the setuid starter and with --userns;
#  3. gocryptfs images made with Debian's gocryptfs as Apptainer's
#     unprivileged builds make them (fs type 6) run in the three modes;
#     wrong keys exit 255 with the same messages as for LUKS2;
#  4. --passphrase reads standard input when it is not a terminal;
#  5. a 1 GiB Argon2id keyslot: capsa -v reports the KDF's cost;
#  6. capsa 0.1.0's images (4096-byte sectors numbered in 4096-byte units)
#     still run, with a warning.
# The fixtures come from tests/fixtures.sh (fixture_luks_set,
# fixture_gocryptfs_set), cached under $CACHE.
unset CAPSA_ENCRYPTION_PASSPHRASE CAPSA_ENCRYPTION_PEM_PATH CAPSA_ENCRYPTION_PEM_DATA \
    APPTAINER_ENCRYPTION_PASSPHRASE APPTAINER_ENCRYPTION_PEM_PATH APPTAINER_ENCRYPTION_PEM_DATA \
    SINGULARITY_ENCRYPTION_PASSPHRASE SINGULARITY_ENCRYPTION_PEM_PATH SINGULARITY_ENCRYPTION_PEM_DATA

LUKS=$(fixture_luks_set)
expect_eq "fixture: LUKS2 images made with cryptsetup" 0 "$?"
GC=$(fixture_gocryptfs_set)
expect_eq "fixture: gocryptfs images made with gocryptfs" 0 "$?"
MARKER=$(fixture_crypt_marker)

# part_range SIF: "OFFSET SIZE" of the encrypted partition (capsa sif list).
part_range () {
    "$CAPSA" sif list "$1" | awk -F'|' '/Encrypted squashfs|Gocryptfs squashfs/ { split($4, a, "-"); print a[1] + 0, a[2] - a[1] }'
}
cut_part () {
    local r; r=($(part_range "$1"))
    dd if="$1" of="$2" iflag=skip_bytes,count_bytes skip="${r[0]}" count="${r[1]}" status=none
}
# in_mode MODE CMD...: run CMD (a capsa command line) as root, as $TUSER
# through the setuid starter, or as $TUSER with --userns after "exec".
in_mode () {
    local mode=$1; shift
    case $mode in
    root) run env "$@" ;;
    setuid) run_user "$(printf '%q ' "$@")" ;;
    userns) run_user "$(printf '%q ' "$@" | sed 's/ exec / exec --userns /')" ;;
    esac
}
# unwrap_message PRIVATE MESSAGE.pem OUT: the secret, as Apptainer reads
# it, with openssl: every k-byte chunk of the OCTET STRING decrypted.
unwrap_message () {
    local k n o
    k=$(( $(openssl rsa -in "$1" -noout -text 2>/dev/null | sed -n 's/.*Private-Key: (\([0-9]*\) bit.*/\1/p') / 8 ))
    sed '1d;$d' "$2" | base64 -d > "$WORK/msg.der"
    # The OCTET STRING's content: after its tag and (short or long form) length.
    openssl asn1parse -inform DER -in "$WORK/msg.der" | grep -q 'prim: OCTET STRING' || return 1
    n=$(od -An -tu1 -j1 -N1 "$WORK/msg.der" | tr -d ' ')
    [ "$n" -lt 128 ] && o=2 || o=$((2 + n - 128))
    tail -c +$((o + 1)) "$WORK/msg.der" > "$WORK/msg.ct"
    n=$(stat -c %s "$WORK/msg.ct"); : > "$3"
    for ((o = 0; o < n; o += k)); do
        tail -c +$((o + 1)) "$WORK/msg.ct" | head -c "$k" > "$WORK/chunk"
        openssl pkeyutl -decrypt -inkey "$1" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
            -pkeyopt rsa_mgf1_md:sha256 -in "$WORK/chunk" >> "$3" || return 1
    done
    rm -f "$WORK/msg.der" "$WORK/msg.ct" "$WORK/chunk"
}
chmod 0755 "$WORK"

# ---- 1. capsa's images, decrypted by cryptsetup ---------------------------------------------
tree=$WORK/tree
cp -a "$IMG_DIR" "$tree" && echo "$MARKER" > "$tree/marker"
mksquashfs "$tree" "$WORK/root.sqfs" -noappend -all-root -quiet -no-progress > /dev/null
rm -rf "$tree"
"$CAPSA" sif new "$WORK/plain.sif" && "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 \
    "$WORK/plain.sif" "$WORK/root.sqfs"
PASS="interop-$RANDOM$RANDOM"
printf '%s' "$PASS" > "$WORK/pass.txt"
for bits in 1024 2048 4096; do
    openssl genrsa -traditional -out "$WORK/k$bits.pem" "$bits" 2> /dev/null
    openssl rsa -in "$WORK/k$bits.pem" -RSAPublicKey_out -out "$WORK/k$bits.pub" 2> /dev/null
done
for kind in pass rsa1024 rsa2048 rsa4096; do
    if [ $kind = pass ]; then
        CAPSA_ENCRYPTION_PASSPHRASE=$PASS "$CAPSA" -q encrypt "$WORK/plain.sif" "$WORK/$kind.sif"
        cp "$WORK/pass.txt" "$WORK/secret"
    else
        "$CAPSA" -q encrypt --pem-path "$WORK/k${kind#rsa}.pub" "$WORK/plain.sif" "$WORK/$kind.sif"
        mid=$("$CAPSA" sif list "$WORK/$kind.sif" | awk -F'|' '/Cryptographic Message/ { print $1 + 0 }')
        "$CAPSA" sif dump "$mid" "$WORK/$kind.sif" > "$WORK/msg.pem"
        unwrap_message "$WORK/k${kind#rsa}.pem" "$WORK/msg.pem" "$WORK/secret"
        expect_eq "capsa $kind: openssl unwraps the key message chunk by chunk into 64 bytes" 64 \
            "$(stat -c %s "$WORK/secret")"
    fi
    cut_part "$WORK/$kind.sif" "$WORK/part"
    dump=$(cryptsetup luksDump "$WORK/part")
    off=$(printf '%s\n' "$dump" | sed -n 's/^[[:space:]]*offset: \([0-9]*\) \[bytes\]/\1/p' | head -n 1)
    sector=$(printf '%s\n' "$dump" | sed -n 's/^[[:space:]]*sector: \([0-9]*\) \[bytes\]/\1/p' | head -n 1)
    expect_eq "capsa $kind: default sector size 4096" 4096 "$sector"
    # cryptsetup decrypts the data segment in place: it takes the volume
    # key from capsa's keyslot, and decrypts with a detached header of the
    # same key and sector size whose data offset is 0 (what its offline
    # decryption wants).
    cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$WORK/vk" --key-file "$WORK/secret" \
        "$WORK/part" > /dev/null
    expect_eq "capsa $kind: cryptsetup opens the keyslot with the secret" 0 "$?"
    tail -c +$((off + 1)) "$WORK/part" > "$WORK/data"
    printf 'k' > "$WORK/hk"
    cryptsetup luksFormat --batch-mode --type luks2 --header "$WORK/hdr" --volume-key-file "$WORK/vk" --key-size 512 \
        --cipher aes-xts-plain64 --sector-size "$sector" --offset 0 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$WORK/hk" "$WORK/data" > /dev/null 2>&1 &&
        cryptsetup reencrypt --decrypt --header "$WORK/hdr" --force-offline-reencrypt --batch-mode --key-file "$WORK/hk" \
            "$WORK/data" > /dev/null 2>&1
    expect_eq "capsa $kind: cryptsetup reencrypt --decrypt of the data segment" 0 "$?"
    size=$(stat -c %s "$WORK/root.sqfs")
    cmp -s -n "$size" "$WORK/data" "$WORK/root.sqfs"
    expect_eq "capsa $kind: cryptsetup's plaintext = the original squashfs" 0 "$?"
    expect_eq "capsa $kind: then only zeros (the last sector's padding)" 0 \
        "$(tail -c +$((size + 1)) "$WORK/data" | tr -d '\0' | wc -c)"
    expect_match "capsa $kind: unsquashfs lists cryptsetup's plaintext" "squashfs-root/marker" \
        "$(unsquashfs -l "$WORK/data" 2>&1)"
    rm -f "$WORK/vk" "$WORK/data" "$WORK/hdr" "$WORK/part" "$WORK/secret" "$WORK/msg.pem"
done

# ---- 2. LUKS2 images made with cryptsetup, run by capsa ---------------------------------------
if [ -d "$LUKS" ]; then
    LPASS=$(cat "$LUKS/passphrase")
    run "$CAPSA" sif list "$LUKS/rsa1024-512.sif"
    expect_match "cryptsetup fixture: capsa reads the SIF (fs type 5)" '\|FS \(Encrypted squashfs/\*System/amd64\)$' "$OUT"
    expect_match "cryptsetup fixture: its key message is linked to the partition" \
        '^4 +\|1 +\|3 +\|.*Cryptographic Message \(PEM/RSA-OAEP\)$' "$OUT"
    for ss in 512 4096; do
        cut_part "$LUKS/pass-$ss.sif" "$WORK/part"
        expect_match "cryptsetup fixture $ss: luksDump says $ss-byte sectors" "sector: $ss \[bytes\]" \
            "$(cryptsetup luksDump "$WORK/part")"
        rm -f "$WORK/part"
        for mode in root setuid userns; do
            in_mode $mode CAPSA_ENCRYPTION_PASSPHRASE="$LPASS" "$CAPSA" exec "$LUKS/pass-$ss.sif" cat /marker
            expect_eq "cryptsetup LUKS2, $ss-byte sectors, passphrase ($mode)" "$MARKER" "$OUT"
            in_mode $mode "$CAPSA" exec --pem-path "$LUKS/rsa2048.pem" "$LUKS/rsa2048-$ss.sif" cat /marker
            expect_eq "cryptsetup LUKS2, $ss-byte sectors, RSA 2048 ($mode)" "$MARKER" "$OUT"
            in_mode $mode "$CAPSA" exec --pem-path "$LUKS/rsa1024.pem" "$LUKS/rsa1024-$ss.sif" cat /marker
            expect_eq "cryptsetup LUKS2, $ss-byte sectors, RSA 1024, chunked key message ($mode)" "$MARKER" "$OUT"
        done
    done
    in_mode setuid "$CAPSA" exec --pem-path "$LUKS/rsa1024.pem" "$LUKS/rsa2048-512.sif" true
    expect_eq "cryptsetup LUKS2: another RSA key: 255" 255 "$RC"
    expect_match "cryptsetup LUKS2: another RSA key: says so" "^FATAL: .*rsa1024.pem does not open the image" "$OUT"
fi

# ---- 3. gocryptfs images, as Apptainer's unprivileged builds make them ------------------------------
if [ -d "$GC" ]; then
    GPASS=$(cat "$GC/passphrase")
    run "$CAPSA" sif list "$GC/rsa2048.sif"
    expect_match "gocryptfs fixture: fs type 6 shown as Gocryptfs squashfs" '\|FS \(Gocryptfs squashfs/\*System/amd64\)$' "$OUT"
    cut_part "$GC/pass.sif" "$WORK/outer"
    run unsquashfs -l "$WORK/outer"
    expect_match "gocryptfs fixture: the partition is a squashfs holding gocryptfs.conf" "squashfs-root/gocryptfs.conf" "$OUT"
    expect_match "gocryptfs fixture: ... and the ciphertext file squashfs-NNN" "squashfs-root/squashfs-[0-9]+" "$OUT"
    rm -f "$WORK/outer"
    for mode in root setuid userns; do
        in_mode $mode CAPSA_ENCRYPTION_PASSPHRASE="$GPASS" "$CAPSA" exec "$GC/pass.sif" cat /marker
        expect_eq "gocryptfs, passphrase ($mode)" "$MARKER" "$OUT"
        in_mode $mode "$CAPSA" exec --pem-path "$GC/rsa2048.pem" "$GC/rsa2048.sif" cat /marker
        expect_eq "gocryptfs, RSA 2048 ($mode)" "$MARKER" "$OUT"
        in_mode $mode "$CAPSA" exec --pem-path "$GC/rsa1024.pem" "$GC/rsa1024.sif" cat /marker
        expect_eq "gocryptfs, RSA 1024 ($mode)" "$MARKER" "$OUT"
        in_mode $mode CAPSA_ENCRYPTION_PASSPHRASE="wrong-$GPASS" "$CAPSA" exec "$GC/pass.sif" true
        expect_eq "gocryptfs, wrong passphrase ($mode): 255" 255 "$RC"
        expect_match "gocryptfs, wrong passphrase ($mode): the LUKS2 message" \
            "^FATAL: +the passphrase does not open the image$" "$OUT"
        in_mode $mode "$CAPSA" exec --pem-path "$GC/rsa2048.pem" "$GC/rsa1024.sif" true
        expect_eq "gocryptfs, wrong private key ($mode): 255" 255 "$RC"
        expect_match "gocryptfs, wrong private key ($mode): says so" "^FATAL: .*rsa2048.pem does not open the image" "$OUT"
    done
    in_mode setuid CAPSA_ENCRYPTION_PASSPHRASE="$GPASS" "$CAPSA" exec "$GC/pass-packed.sif" cat /marker
    expect_eq "gocryptfs, outer squashfs compressed with fragments (setuid)" "$MARKER" "$OUT"
    in_mode setuid "$CAPSA" exec "$GC/pass.sif" true
    expect_match "gocryptfs, no key: names --passphrase, 255" "^FATAL: .*--passphrase" "$OUT"
    in_mode setuid CAPSA_ENCRYPTION_PASSPHRASE="$GPASS" "$CAPSA" exec "$GC/rsa2048.sif" true
    expect_match "gocryptfs, a passphrase for an RSA image: says to use --pem-path" "^FATAL: .*--pem-path" "$OUT"
    run "$CAPSA" inspect --deffile "$GC/pass.sif"
    expect_match "gocryptfs: inspect works without a key" "Bootstrap: localimage" "$OUT"
fi

# ---- 4. --passphrase from standard input (batch jobs) ----------------------------------------------
if [ -d "$LUKS" ] && [ -d "$GC" ]; then
    OUT=$(printf '%s\n' "$LPASS" | setsid "$CAPSA" exec --passphrase "$LUKS/pass-4096.sif" cat /marker 2>&1)
    expect_eq "printf PASS | setsid capsa exec --passphrase (LUKS2, root)" "$MARKER" "$OUT"
    printf '%s\n' "$GPASS" > "$WORK/gpass" && chmod 0644 "$WORK/gpass"
    run_user "setsid $CAPSA exec --passphrase $GC/pass.sif cat /marker < $WORK/gpass"
    expect_eq "setsid capsa exec --passphrase < file (gocryptfs, setuid)" "$MARKER" "$OUT"
    run_user "printf '%s\nto the container\n' '$GPASS' | setsid $CAPSA exec --userns --passphrase $GC/pass.sif cat"
    expect_eq "--passphrase takes one line; the rest of standard input reaches the container (userns)" \
        "to the container" "$OUT"
    run_user "setsid $CAPSA exec --passphrase $GC/pass.sif true < /dev/null"
    expect_eq "--passphrase with an empty standard input: 255" 255 "$RC"
    expect_match "--passphrase with an empty standard input: says so" "^FATAL: .*standard input" "$OUT"
    rm -f "$WORK/gpass"
fi

# ---- 5. a 1 GiB Argon2id keyslot: its cost is reported apart ---------------------------------------
if [ -d "$LUKS" ]; then
    t0=$(date +%s.%N)
    OUT=$(CAPSA_ENCRYPTION_PASSPHRASE=$LPASS "$CAPSA" -v exec "$LUKS/pass-1g.sif" cat /marker 2>&1); RC=$?
    t1=$(date +%s.%N)
    expect_match "1 GiB Argon2id keyslot: runs" "^$MARKER$" "$OUT"
    kdf=$(printf '%s\n' "$OUT" | grep 'key derivation')
    expect_match "1 GiB Argon2id keyslot: capsa -v reports the KDF (type, memory, time)" \
        "^VERBOSE: +LUKS2 image unlocked: key derivation argon2id, 1024 MiB, 4 iterations, [0-9]+ lanes, took [0-9.]+ s$" "$kdf"
    echo "# $kdf; whole run $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
fi

# ---- 6. capsa 0.1.0's images -------------------------------------------------------------------------
# 0.1.0 numbered the 4096-byte sectors of its data segments in 4096-byte
# units.  Such an image is made here from a new one: cryptsetup gives the
# volume key, Python's cryptography re-encrypts every sector with tweak n
# instead of 8n.
cp "$WORK/pass.sif" "$WORK/old.sif"
cut_part "$WORK/old.sif" "$WORK/part"
cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$WORK/vk" --key-file "$WORK/pass.txt" \
    "$WORK/part" > /dev/null
r=($(part_range "$WORK/old.sif"))
OUT=$(python3 - "$WORK/vk" "$WORK/old.sif" "${r[0]}" "${r[1]}" <<'EOF' 2>&1
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
vk = open(sys.argv[1], 'rb').read()
off, size = int(sys.argv[3]), int(sys.argv[4])
with open(sys.argv[2], 'r+b') as f:
    f.seek(off + (1 << 20))
    data = f.read(size - (1 << 20))
    out = bytearray()
    for i in range(len(data) // 4096):
        s = data[i * 4096:(i + 1) * 4096]
        d = Cipher(algorithms.AES(vk), modes.XTS((8 * i).to_bytes(16, 'little'))).decryptor()
        p = d.update(s) + d.finalize()
        e = Cipher(algorithms.AES(vk), modes.XTS(i.to_bytes(16, 'little'))).encryptor()
        out += e.update(p) + e.finalize()
    f.seek(off + (1 << 20))
    f.write(out)
print("rewritten")
EOF
)
expect_eq "a capsa 0.1.0 image made (sectors re-encrypted with tweak n)" "rewritten" "$OUT"
rm -f "$WORK/vk" "$WORK/part"
chmod 0644 "$WORK/old.sif" "$WORK/pass.sif"
for mode in root setuid userns; do
    in_mode $mode CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/old.sif" cat /marker
    expect_match "capsa 0.1.0 image runs ($mode)" "^$MARKER$" "$OUT"
    expect_match "capsa 0.1.0 image: a warning says to encrypt again ($mode)" \
        "^WARNING: .*capsa 0.1.0.*dm-crypt.*capsa encrypt" "$OUT"
done
in_mode setuid CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" exec "$WORK/pass.sif" cat /marker
expect_eq "an image capsa writes now: no such warning" "$MARKER" "$OUT"

rm -f "$WORK"/*.sif "$WORK/root.sqfs" "$WORK/pass.txt"
sleep 0.3
no_leftover_mounts "interop: nothing left mounted"
# FUSE servers of the user that still hold one of this test's images
# (other test runs of the same user may have servers of their own).
# (capsa's image server stays 'image server linger' seconds, 10 by
# default, after its last container.)
for _ in $(seq 130); do
    left=""
    for p in $(pgrep -u "$TUSER" -f 'cryptfuse|squashfuse_ll'; pgrep -u "$TUSER" -x imagefuse); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = imagefuse ] \
            && [ "$(readlink "/proc/$p/exe")" != "$CAPSA_PREFIX/libexec/capsa/imagefuse" ] && continue
        ls -l "/proc/$p/fd" 2>/dev/null | grep -q -e "$WORK" -e "$LUKS" -e "$GC" && left="$left $p"
    done
    [ -z "$left" ] && break
    sleep 0.1
done
expect_eq "interop: no FUSE server left" "" "$left"
