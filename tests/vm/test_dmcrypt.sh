# Encrypted images judged by the kernel's own dm-crypt, in a VM
# (tests/vm/vm.sh), both ways (issue 13, acceptance 1 and 2):
#
#   capsa -> kernel  images capsa builds or encrypts (passphrase; RSA 1024,
#                    2048, 4096) are cut out of their SIF, opened with
#                    `cryptsetup open` in the VM and mounted as squashfs;
#                    `cat /marker` must print the marker.  For RSA the VM
#                    gets the 64-byte keyslot secret as a key file, which
#                    the host unwraps from the SIF's message with openssl
#                    (tests/vm/apptainer_sif.py), not with capsa.
#   kernel -> capsa  LUKS2 containers formatted by cryptsetup in the VM as
#                    Apptainer formats them (512- and 4096-byte sectors),
#                    the squashfs written through /dev/mapper, put in a SIF
#                    laid out as Apptainer's assembler does (with the RSA
#                    message wrapped as Apptainer wraps it: 2048, and 1024
#                    in two chunks), then run by capsa as root, as $TUSER
#                    through the setuid starter and with --userns.
#   VM self-check    the same VM reads the dm-crypt-written images back, so
#                    that a failure above is capsa's, not the judge's.
#
# The dm-crypt-written images are cached in $CACHE (one boot to make them);
# each run boots once to read capsa's fresh images and the cached ones.
# Sourced by tests/vm/run.sh with tests/e2e/lib.sh.
VMDIR=$TOP/tests/vm
ASIF="python3 $VMDIR/apptainer_sif.py"
source "$TOP/tests/fixtures.sh"
source "$VMDIR/vm.sh"
unset CAPSA_ENCRYPTION_PASSPHRASE CAPSA_ENCRYPTION_PEM_PATH CAPSA_ENCRYPTION_PEM_DATA \
    APPTAINER_ENCRYPTION_PASSPHRASE APPTAINER_ENCRYPTION_PEM_PATH APPTAINER_ENCRYPTION_PEM_DATA \
    SINGULARITY_ENCRYPTION_PASSPHRASE SINGULARITY_ENCRYPTION_PEM_PATH SINGULARITY_ENCRYPTION_PEM_DATA

# Virtio disks: /dev/vda is the VM's input disk, then vdb, vdc, ...
_VMT_LETTERS=abcdefghijklmnopqrstuvwxyz
hex () { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# ---------------------------------------------------------------- the VM's scripts

# Read: each line of /in/read.list is "NAME DEVICE KEYFILE"; prints
# "RESULT NAME ok MARKER" or "RESULT NAME <step>-failed <why>".
_vmt_read_script () {
    cat <<'EOF'
mkdir -p /mnt
while read -r name dev key; do
    dmesg -c > /dev/null
    if ! cryptsetup open --batch-mode --type luks2 --key-file "/in/$key" "$dev" "c-$name" > /tmp/err 2>&1; then
        echo "RESULT $name open-failed $(tr '\n' ' ' < /tmp/err | head -c 300)"
        continue
    fi
    mkdir -p "/mnt/$name"
    if mount -t squashfs -o ro "/dev/mapper/c-$name" "/mnt/$name" > /tmp/err 2>&1; then
        if m=$(cat "/mnt/$name/marker" 2>&1); then
            echo "RESULT $name ok $m"
        else
            echo "RESULT $name cat-failed $m $(dmesg | tail -2 | tr '\n' ' ')"
        fi
        umount "/mnt/$name"
    else
        echo "RESULT $name mount-failed $(tr '\n' ' ' < /tmp/err) kernel: $(dmesg | tail -3 | tr '\n' ' ' | head -c 400)"
    fi
    cryptsetup close "c-$name" || echo "RESULT $name close-failed"
done < /in/read.list
echo "READ-DONE"
EOF
}

# Write, as Apptainer does (internal/pkg/util/crypt/crypt_dev.go:
# `cryptsetup luksFormat --batch-mode --type luks2 --key-file -` on a
# device of the squashfs' size + 16 MiB, cryptsetup's defaults otherwise:
# aes-xts-plain64, 512-bit key, 16 MiB header; then `cryptsetup open` and
# the squashfs copied onto /dev/mapper/NAME).  Here the sector size is
# given, and the Argon2id cost is fixed and small: under emulation the
# benchmarked default would take long, and the KDF is not what is tested.
# Each line of /in/write.list is "NAME DEVICE SECTOR KEYFILE".
_vmt_write_script () {
    cat <<'EOF'
set -e
while read -r name dev sector key; do
    cryptsetup luksFormat --batch-mode --type luks2 --sector-size "$sector" \
        --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-parallel 1 --pbkdf-force-iterations 4 \
        --key-file "/in/$key" "$dev"
    cryptsetup open --batch-mode --type luks2 --key-file "/in/$key" "$dev" "w-$name"
    dd if=/in/plain.sqfs of="/dev/mapper/w-$name" bs=65536 conv=fsync 2> /dev/null
    cryptsetup close "w-$name"
    echo "WROTE $name"
done < /in/write.list
sync
EOF
}

# ---------------------------------------------------------------- dm-crypt-written images (cached)

_VMT_IMAGES_RECIPE=vm-dmcrypt-images-v1
# NAME SECTOR KEY: KEY is "pass" or the RSA key size (1024 is chunked).
_VMT_CASES="dm-pass-512 512 pass
dm-pass-4096 4096 pass
dm-rsa2048-512 512 2048
dm-rsa2048-4096 4096 2048
dm-rsa1024-512 512 1024
dm-rsa1024-4096 4096 1024"

# Builder (_fx_build): OUT/NAME.sif for each case, OUT/marker,
# OUT/passphrase, OUT/rsaN.pem (PKCS#1 private) and .pub, OUT/cases.
# Every step is checked: errexit does not work in a builder.
_vmt_make_images () {
    local out=$1 bbdir=$2 tmp rc
    [ -n "$out" ] && [ -d "$out" ] && [ -d "$bbdir" ] || { echo "bad arguments [$out] [$bbdir]"; return 1; }
    tmp=$(mktemp -d /tmp/capsa-vmimg.XXXXXX) || return 1
    _vmt_make_images_in "$out" "$bbdir" "$tmp"; rc=$?
    rm -rf "$tmp"
    return $rc
}

_vmt_make_images_in () {
    local out=$1 bbdir=$2 tmp=$3 name sector key size bits i=0 dev disks=()
    mkdir "$tmp/in" "$tmp/tree" || return 1
    echo "capsa-vm-marker-$(hex 12)" > "$out/marker" || return 1
    printf 'vm pass %s' "$(hex 9)" > "$out/passphrase" && cp "$out/passphrase" "$tmp/in/pass.key" || return 1
    for bits in 2048 1024; do
        openssl genrsa -traditional -out "$out/rsa$bits.pem" "$bits" 2> /dev/null &&
            openssl rsa -in "$out/rsa$bits.pem" -RSAPublicKey_out -out "$out/rsa$bits.pub" 2> /dev/null || return 1
    done
    cp -a "$bbdir/." "$tmp/tree/" && cp "$out/marker" "$tmp/tree/marker" || return 1
    # As Apptainer's assembler: gzip.
    mksquashfs "$tmp/tree" "$tmp/in/plain.sqfs" -noappend -quiet -no-progress -all-root -comp gzip || return 1
    size=$(( $(stat -c %s "$tmp/in/plain.sqfs") + 16 * 1024 * 1024 ))
    printf '%s\n' "$_VMT_CASES" > "$out/cases" && : > "$tmp/in/write.list" || return 1
    while read -r name sector key; do
        truncate -s "$size" "$tmp/$name.img" || return 1
        disks+=("$tmp/$name.img")
        i=$((i + 1))
        dev=/dev/vd${_VMT_LETTERS:i:1}
        if [ "$key" = pass ]; then
            echo "$name $dev $sector pass.key" >> "$tmp/in/write.list" || return 1
        else
            # Apptainer's secret for an RSA key: 64 random bytes.
            head -c 64 /dev/urandom > "$tmp/in/$name.key" &&
                echo "$name $dev $sector $name.key" >> "$tmp/in/write.list" || return 1
        fi
    done <<< "$_VMT_CASES"
    _vmt_write_script > "$tmp/write.sh" || return 1
    echo "booting the VM to write ${#disks[@]} LUKS2 images through dm-crypt"
    if ! vm_run -t 600 -i "$tmp/in" "$tmp/write.sh" "${disks[@]}" > "$tmp/vm.out"; then
        echo "the VM failed: $(tail -5 "$tmp/vm.out")"
        return 1
    fi
    while read -r name sector key; do
        grep -qx "WROTE $name" "$tmp/vm.out" || { echo "$name not written: $(tail -5 "$tmp/vm.out")"; return 1; }
        if [ "$key" = pass ]; then
            $ASIF create "$out/$name.sif" "$tmp/$name.img" || return 1
        else
            $ASIF wrap "$out/rsa$key.pub" "$tmp/in/$name.key" "$tmp/$name.msg" &&
                $ASIF create "$out/$name.sif" "$tmp/$name.img" "$tmp/$name.msg" || return 1
        fi
        rm -f "$tmp/$name.img"
    done <<< "$_VMT_CASES"
    # The unprivileged test user opens them with these keys.
    chmod 0644 "$out"/*
}

# vmt_images: the cached directory of dm-crypt-written images.
vmt_images () {
    local fx bb key
    fx=${_VM_FX:-$(vm_fixture)} || return 1
    bb=$(fixture_busybox_dir) || return 1
    key=$( { echo "${fx##*/} ${bb##*/} $_VMT_IMAGES_RECIPE $_VMT_CASES"; _vmt_write_script;
             sha256sum < "$VMDIR/apptainer_sif.py"; } | _fx_sha)
    _fx_build "vm-dmcrypt-$key" dir _vmt_make_images "$bb"
}

# ---------------------------------------------------------------- preparation

start=$(date +%s)
VMFX=$(vm_fixture)
expect_match "VM fixture: kernel and initramfs cached" "^$CACHE/vm-" "$VMFX"
_VM_FX=$VMFX
DM=$(vmt_images)
expect_match "dm-crypt-written images: made in the VM (or cached)" "^$CACHE/vm-dmcrypt-" "$DM"
[ -d "$DM" ] || DM=/nonexistent
echo "   (fixtures: $(( $(date +%s) - start ))s)"

IN=$WORK/in
mkdir -p "$IN"
: > "$IN/read.list"
DISKS=()
# attach NAME PARTITION KEYFILE: adds a disk the VM reads.
attach () {
    DISKS+=("ro:$2")
    local dev=/dev/vd${_VMT_LETTERS:${#DISKS[@]}:1}
    cp "$3" "$IN/$1.key"
    echo "$1 $dev $1.key" >> "$IN/read.list"
}
# prepare NAME SIF KEYTYPE KEY: cut out the partition (and for RSA unwrap
# the secret with the private key KEY) and attach it; records a FAIL and
# returns 1 when the image cannot be prepared.
prepare () {
    local name=$1 sif=$2 type=$3 key=$4 out
    if ! out=$($ASIF extract "$sif" "$WORK/$name.part" $([ "$type" = rsa ] && echo "$WORK/$name.msg") 2>&1); then
        fail "$name: SIF laid out as Apptainer reads it" "$out"
        return 1
    fi
    if [ "$type" = rsa ]; then
        if ! out=$($ASIF unwrap "$key" "$WORK/$name.msg" "$WORK/$name.secret" 2>&1); then
            fail "$name: openssl unwraps the RSA-OAEP message" "$out"
            return 1
        fi
        attach "$name" "$WORK/$name.part" "$WORK/$name.secret"
    else
        attach "$name" "$WORK/$name.part" "$key"
    fi
}

# capsa's images: one tree with /marker, built and encrypted in every way.
MARKER="capsa-marker-$(hex 12)"
PASS="capsa pass $(hex 9)"
printf '%s' "$PASS" > "$WORK/pass.key"
cp -a "$IMG_DIR" "$WORK/tree" && echo "$MARKER" > "$WORK/tree/marker"
mksquashfs "$WORK/tree" "$WORK/root.sqfs" -noappend -all-root -quiet -no-progress > /dev/null
"$CAPSA" sif new "$WORK/plain.sif" &&
    "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$WORK/plain.sif" "$WORK/root.sqfs"
for bits in 1024 2048 4096; do
    openssl genrsa -traditional -out "$WORK/rsa$bits.pem" "$bits" 2> /dev/null
    openssl rsa -in "$WORK/rsa$bits.pem" -RSAPublicKey_out -out "$WORK/rsa$bits.pub" 2> /dev/null
done

CAPSA_IMAGES=()
# made NAME KEYTYPE KEY COMMAND...: runs capsa, prepares its image.
made () {
    local name=$1 type=$2 key=$3; shift 3
    if OUT=$("$@" 2>&1) && [ -f "$WORK/$name.sif" ]; then
        prepare "$name" "$WORK/$name.sif" "$type" "$key" && CAPSA_IMAGES+=("$name")
    else
        fail "capsa -> kernel: $name: dm-crypt opens it and /marker is the marker" "capsa failed: $(printf '%s' "$OUT" | head -c 300)"
    fi
}
made capsa-build-passphrase pass "$WORK/pass.key" env CAPSA_ENCRYPTION_PASSPHRASE="$PASS" \
    "$CAPSA" -q build --encrypt "$WORK/capsa-build-passphrase.sif" "$WORK/tree"
made capsa-encrypt-passphrase pass "$WORK/pass.key" \
    env CAPSA_ENCRYPTION_PASSPHRASE="$PASS" "$CAPSA" -q encrypt "$WORK/plain.sif" "$WORK/capsa-encrypt-passphrase.sif"
for bits in 1024 2048 4096; do
    made "capsa-build-rsa$bits" rsa "$WORK/rsa$bits.pem" \
        "$CAPSA" -q build --pem-path "$WORK/rsa$bits.pub" "$WORK/capsa-build-rsa$bits.sif" "$WORK/tree"
done
made capsa-encrypt-rsa2048 rsa "$WORK/rsa2048.pem" \
    "$CAPSA" -q encrypt --pem-path "$WORK/rsa2048.pub" "$WORK/plain.sif" "$WORK/capsa-encrypt-rsa2048.sif"

# Control: capsa's own LUKS2 header and keyslot (capsa-encrypt-passphrase)
# with the data segment re-encrypted here, from the squashfs capsa
# encrypted, as dm-crypt numbers sectors (AES-XTS, tweak = the sector's
# offset in 512-byte units + iv_tweak, whatever the sector size; Python's
# cryptography with the volume key cryptsetup gives).  dm-crypt must read
# it: so a failure of capsa's image itself is in its data segment.
reencrypt_as_dmcrypt () {   # PART SQUASHFS VOLUME-KEY OUT
    python3 - "$@" <<'PYEOF'
import json, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
part, sqfs, vk, out = sys.argv[1:]
img = bytearray(open(part, 'rb').read())
if img[:6] != b'LUKS\xba\xbe':
    sys.exit('not LUKS')
hdr_size = struct.unpack_from('>Q', img, 8)[0]
meta = json.loads(bytes(img[4096:hdr_size]).split(b'\0')[0])
seg = meta['segments']['0']
off, ss, tweak0 = int(seg['offset']), int(seg['sector_size']), int(seg.get('iv_tweak', '0'))
key = open(vk, 'rb').read()
plain = open(sqfs, 'rb').read()
n = (len(img) - off) // ss
plain = plain.ljust(n * ss, b'\0')
for i in range(n):
    tw = (tweak0 + i * ss // 512).to_bytes(16, 'little')
    e = Cipher(algorithms.AES(key), modes.XTS(tw)).encryptor()
    img[off + i * ss:off + (i + 1) * ss] = e.update(plain[i * ss:(i + 1) * ss]) + e.finalize()
open(out, 'wb').write(img)
print('sector %d, data offset %d, %d sectors' % (ss, off, n))
PYEOF
}
if [[ " ${CAPSA_IMAGES[*]} " == *" capsa-encrypt-passphrase "* ]]; then
    "$CAPSA" sif dump 1 "$WORK/plain.sif" > "$WORK/plain.sqfs"
    if printf '%s' "$PASS" | cryptsetup luksDump --batch-mode --dump-volume-key --volume-key-file "$WORK/vk.bin" \
            --key-file - "$WORK/capsa-encrypt-passphrase.part" > /dev/null &&
        OUT=$(reencrypt_as_dmcrypt "$WORK/capsa-encrypt-passphrase.part" "$WORK/plain.sqfs" "$WORK/vk.bin" \
            "$WORK/control.part" 2>&1); then
        echo "   control: $OUT"
        attach control-capsa-header "$WORK/control.part" "$WORK/pass.key"
    else
        fail "control: capsa's header, data re-encrypted as dm-crypt numbers it: dm-crypt reads it" "cannot make it: $OUT"
    fi
    rm -f "$WORK/vk.bin" "$WORK/plain.sqfs"
fi

# The dm-crypt-written images, read back by the VM (self-check).
DM_MARKER=$(cat "$DM/marker" 2> /dev/null)
DM_IMAGES=()
while read -r name sector key; do
    if [ "$key" = pass ]; then
        prepare "$name" "$DM/$name.sif" pass "$DM/passphrase" && DM_IMAGES+=("$name")
    else
        prepare "$name" "$DM/$name.sif" rsa "$DM/rsa$key.pem" && DM_IMAGES+=("$name")
    fi
done <<< "$_VMT_CASES"

# ---------------------------------------------------------------- one boot reads them all

_vmt_read_script > "$WORK/read.sh"
start=$(date +%s)
VMOUT=$(vm_run -t 600 -i "$IN" "$WORK/read.sh" "${DISKS[@]}"); RC=$?
echo "   (VM boot reading ${#DISKS[@]} images: $(( $(date +%s) - start ))s, exit $RC)"
expect_eq "VM: the read script ran to its end (exit 0)" "0:READ-DONE" "$RC:$(printf '%s\n' "$VMOUT" | grep -x READ-DONE)"
[ $RC -eq 0 ] || printf '%s\n' "$VMOUT" | tail -20 | sed 's/^/   vm: /'
result () { printf '%s\n' "$VMOUT" | sed -n "s/^RESULT $1 //p" | head -1; }

for name in "${CAPSA_IMAGES[@]}"; do
    r=$(result "$name")
    if [ "$r" = "ok $MARKER" ]; then
        pass "capsa -> kernel: $name: dm-crypt opens it and /marker is the marker"
    else
        fail "capsa -> kernel: $name: dm-crypt opens it and /marker is the marker" \
            "${r:-no result} ($(cryptsetup luksDump "$WORK/$name.part" 2> /dev/null | grep -m1 -o 'sector: [0-9]* \[bytes\]'))"
    fi
done
if grep -q '^control-capsa-header ' "$IN/read.list"; then
    expect_eq "control: capsa's header, data re-encrypted as dm-crypt numbers it: dm-crypt reads it" \
        "ok $MARKER" "$(result control-capsa-header)"
fi
for name in "${DM_IMAGES[@]}"; do
    expect_eq "VM self-check: $name: written by dm-crypt, read back by dm-crypt" "ok $DM_MARKER" "$(result "$name")"
done

# ---------------------------------------------------------------- kernel -> capsa

while read -r name sector key; do
    dump=$(cryptsetup luksDump "$WORK/$name.part" 2>&1)
    expect_match "$name: cryptsetup luksDump: LUKS2, aes-xts-plain64, $sector-byte sectors" \
        "Version:[[:space:]]+2.*cipher: aes-xts-plain64.*sector: $sector \[bytes\]" "$(printf '%s' "$dump" | tr '\n' ' ')"
    expect_eq "$name: the marker is not in the SIF in clear" 0 "$(grep -c -a -F "$DM_MARKER" "$DM/$name.sif")"
done <<< "$_VMT_CASES"
rm -f "$WORK"/*.part "$WORK"/*.secret

for mode in root setuid userns; do
    case $mode in
    root) r () { run env "$@"; } ;;
    setuid) r () { run_user "$(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$(printf '%q ' "$@" | sed 's/ exec / exec --userns /')"; } ;;
    esac
    while read -r name sector key; do
        if [ "$key" = pass ]; then
            r CAPSA_ENCRYPTION_PASSPHRASE="$(cat "$DM/passphrase")" "$CAPSA" exec "$DM/$name.sif" cat /marker
        else
            r "$CAPSA" exec --pem-path "$DM/rsa$key.pem" "$DM/$name.sif" cat /marker
        fi
        expect_eq "kernel -> capsa: $name ($mode): cat /marker" "$DM_MARKER" "$OUT"
    done <<< "$_VMT_CASES"
done
no_leftover_mounts "no capsa mount left"
