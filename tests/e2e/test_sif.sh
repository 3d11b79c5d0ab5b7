# capsa sif: output identical to sylabs' siftool on the reference images,
# clean FATAL errors on malformed images, and images built with
# `capsa sif new` + `capsa sif add` that other tools can read back.
# Sourced by tests/run.sh after lib.sh; uses $CAPSA, $FIXTURES, $WORK.

SIFDIR=$FIXTURES/sif/sylabs
GOLDEN=$FIXTURES/sif/golden

# TwoGroupsSignedPGP -> two-groups-signed-pgp (the fixtures' naming rule).
sif_kebab () {
    printf '%s\n' "$1" | sed -E 's/([a-z0-9])([A-Z])/\1-\2/g; s/([A-Z])([A-Z][a-z])/\1-\2/g' | tr 'A-Z' 'a-z'
}

# golden_cmp NAME GOLDEN_FILE CAPSA_ARGS...: stdout must equal the golden file byte for byte.
golden_cmp () {
    local name=$1 golden=$2; shift 2
    if "$CAPSA" sif "$@" > "$WORK/golden.out" 2> "$WORK/golden.err"; then
        if cmp -s "$WORK/golden.out" "$golden"; then
            pass "$name"
        else
            fail "$name" "output differs: $(diff "$WORK/golden.out" "$golden" 2>/dev/null | head -c 400)"
        fi
    else
        fail "$name" "exit $?: $(head -c 400 "$WORK/golden.err")"
    fi
}

# ---- golden comparisons: one check per golden file ----

for g in "$GOLDEN"/TestApp_Header/*.golden; do
    n=$(basename "$g" .golden)
    golden_cmp "sif header $n" "$g" header "$SIFDIR/$(sif_kebab "$n").sif"
done
for g in "$GOLDEN"/TestApp_List/*.golden; do
    n=$(basename "$g" .golden)
    golden_cmp "sif list $n" "$g" list "$SIFDIR/$(sif_kebab "$n").sif"
done

# info/dump golden name -> "ID image"
sif_info_target () {
    case $1 in
        Time) echo "1 one-object-time" ;;
        GenericJSON) echo "1 one-object-generic-json" ;;
        CryptMessage) echo "1 one-object-crypt-message" ;;
        SBOM) echo "1 one-object-sbom" ;;
        OCIRootIndex) echo "1 one-object-oci-root-index" ;;
        OCIBlob) echo "1 one-object-oci-blob" ;;
        DataPartitionRaw) echo "1 two-groups-signed-pgp" ;;
        DataPartitionSquashFS) echo "2 two-groups-signed-pgp" ;;
        DataPartitionEXT3) echo "3 two-groups-signed-pgp" ;;
        DataSignature) echo "4 two-groups-signed-pgp" ;;
        One) echo "1 one-group" ;;
        Two) echo "2 one-group" ;;
    esac
}
for g in "$GOLDEN"/TestApp_Info/*.golden "$GOLDEN"/TestApp_Dump/*.golden; do
    n=$(basename "$g" .golden)
    cmd=info; [[ $g == */TestApp_Dump/* ]] && cmd=dump
    t=$(sif_info_target "$n")
    if [ -z "$t" ]; then fail "sif $cmd $n" "no image known for this golden file"; continue; fi
    golden_cmp "sif $cmd $n" "$g" "$cmd" "${t%% *}" "$SIFDIR/${t#* }.sif"
done

# ---- malformed images: "FATAL:" and exit 255, never a crash ----

# le64 N: 8 little-endian bytes as a printf format
le64 () {
    local v=$1 i s=""
    for i in 0 1 2 3 4 5 6 7; do
        s+=$(printf '\\x%02x' $(( (v >> (8 * i)) & 255 )))
    done
    printf '%s' "$s"
}
# patch FILE OFFSET PRINTF-BYTES
patch_bytes () {
    # shellcheck disable=SC2059
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
bad_image () { cp "$SIFDIR/one-group.sif" "$WORK/$1.sif"; chmod u+w "$WORK/$1.sif"; }

SLOT0=4096; SLOT1=$((4096 + 585))
bad_image desc-past-end;  patch_bytes "$WORK/desc-past-end.sif" $((SLOT1 + 25)) "$(le64 $((1 << 40)))"
bad_image overlap;        patch_bytes "$WORK/overlap.sif" $((SLOT1 + 17)) "$(le64 32768)"
bad_image many-descr;     patch_bytes "$WORK/many-descr.sif" 88 "$(le64 1000000000)"
                          patch_bytes "$WORK/many-descr.sif" 104 "$(le64 585000000000)"
bad_image unterminated;   patch_bytes "$WORK/unterminated.sif" $((SLOT0 + 73)) "$(printf 'A%.0s' $(seq 128))"
bad_image bad-type;       patch_bytes "$WORK/bad-type.sif" $SLOT0 '\x10\x40\x00\x00'
bad_image bad-magic;      patch_bytes "$WORK/bad-magic.sif" 32 'XIF_MAGIC'
bad_image table-size;     patch_bytes "$WORK/table-size.sif" 104 "$(le64 100)"
head -c 100 "$FIXTURES/sif/busybox_amd64.sif" > "$WORK/trunc-header.sif"
head -c 20000 "$FIXTURES/sif/busybox_amd64.sif" > "$WORK/trunc-table.sif"
head -c 500000 "$FIXTURES/sif/busybox_amd64.sif" > "$WORK/trunc-data.sif"
: > "$WORK/empty-file.sif"
head -c 65536 /dev/urandom > "$WORK/random.sif"; patch_bytes "$WORK/random.sif" 32 'SIF_MAGIC\x0001\x00'

for b in desc-past-end overlap many-descr unterminated bad-type bad-magic table-size \
         trunc-header trunc-table trunc-data empty-file random; do
    for cmd in header list; do
        run "$CAPSA" sif $cmd "$WORK/$b.sif"
        if [ "$RC" = 255 ] && [[ $OUT == FATAL:* ]] && [ "$(printf '%s\n' "$OUT" | wc -l)" = 1 ]; then
            pass "sif $cmd rejects malformed image ($b)"
        else
            fail "sif $cmd rejects malformed image ($b)" "rc=$RC out=[$(printf '%s' "$OUT" | head -c 300)]"
        fi
    done
done
run "$CAPSA" sif list "$WORK/desc-past-end.sif"
expect_match "sif error names the image and descriptor" "invalid SIF image .*desc-past-end.sif: descriptor 2 extends past end of file" "$OUT"
run "$CAPSA" sif list "$WORK/no-such-file.sif"
expect_eq "sif list of a missing file exits 255" 255 "$RC"
run "$CAPSA" sif info 9 "$SIFDIR/one-group.sif"
expect_eq "sif info of a missing object exits 255" 255 "$RC"
run "$CAPSA" sif frobnicate "$SIFDIR/one-group.sif"
expect_eq "sif with an unknown command exits 255" 255 "$RC"
run "$CAPSA" sif help
expect_match "sif help lists the commands" "setprim ID IMAGE" "$OUT"
run "$CAPSA" sif add --help
expect_match "sif add --help lists siftool's flags" "--partarch N" "$OUT"

# ---- building an image: new + add, readable by the reference format ----

mkdir -p "$WORK/tree/etc" "$WORK/tree/bin"
echo "capsa sif test" > "$WORK/tree/etc/motd"
printf '#!/bin/sh\necho hi\n' > "$WORK/tree/bin/hello"
chmod 0755 "$WORK/tree/bin/hello"
printf 'Bootstrap: scratch\n' > "$WORK/test.def"
if mksquashfs "$WORK/tree" "$WORK/tree.sqfs" -noappend -quiet -all-root > "$WORK/.mksq" 2>&1; then
    pass "mksquashfs of a small tree"
else
    fail "mksquashfs of a small tree" "$(head -c 300 "$WORK/.mksq")"
fi

NEW=$WORK/built.sif
check "sif new" "$CAPSA" sif new "$NEW"
expect_eq "sif new leaves no temporary file" "" "$(ls -A "$WORK" | grep '\.tmp$')"
run "$CAPSA" sif header "$NEW"
expect_match "new image has the run-singularity launch script" "^Launch Script: +#!/usr/bin/env run-singularity$" "$OUT"
check "sif add definition file" "$CAPSA" sif add --datatype 1 --groupid 1 --filename test.def "$NEW" "$WORK/test.def"
check "sif add squashfs partition" "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1 "$NEW" "$WORK/tree.sqfs"

run "$CAPSA" sif list "$NEW"
expect_eq "built image: list header same as siftool's" \
    "$(head -n 3 "$GOLDEN/TestApp_List/OneGroup.golden")" "$(printf '%s\n' "$OUT" | head -n 3)"
expect_match "built image: definition file row" '^1    \|1       \|NONE    \|32176-32195 +\|Def\.FILE$' "$OUT"
expect_match "built image: partition row" '^2    \|1       \|NONE    \|32768-[0-9]+ +\|FS \(Squashfs/\*System/amd64\)$' "$OUT"

pos=$(printf '%s\n' "$OUT" | sed -n 's/^2 .*|\([0-9]*\)-\([0-9]*\) .*/\1 \2/p')
start=${pos% *}; end=${pos#* }
if [ -n "$pos" ] && dd if="$NEW" of="$WORK/extracted.sqfs" bs=4096 iflag=skip_bytes,count_bytes \
        skip="$start" count=$((end - start)) status=none; then
    if unsquashfs -l "$WORK/extracted.sqfs" > "$WORK/.unsq" 2>&1 && grep -q 'etc/motd' "$WORK/.unsq"; then
        pass "partition extracted at the listed offset passes unsquashfs -l"
    else
        fail "partition extracted at the listed offset passes unsquashfs -l" "$(head -c 300 "$WORK/.unsq")"
    fi
else
    fail "partition extracted at the listed offset passes unsquashfs -l" "no position in [$OUT]"
fi
"$CAPSA" sif dump 2 "$NEW" > "$WORK/dumped.sqfs" 2>/dev/null
if cmp -s "$WORK/dumped.sqfs" "$WORK/tree.sqfs"; then pass "sif dump returns the partition bytes"; else fail "sif dump returns the partition bytes" "differs"; fi
run "$CAPSA" sif header "$NEW"
expect_match "built image: header arch from the primary partition" "^Primary Architecture: amd64$" "$OUT"
expect_match "built image: two descriptors used" "^Descriptors Free: +46$" "$OUT"
run "$CAPSA" sif info 1 "$NEW"
expect_match "built image: info shows the object name" "^  Name: +test\.def$" "$OUT"

# setprim / del, as siftool does them
check "sif add a second system partition" "$CAPSA" sif add --datatype 4 --parttype 1 --partfs 1 --partarch 4 "$NEW" "$WORK/tree.sqfs"
run "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$NEW" "$WORK/tree.sqfs"
expect_eq "a second primary partition is refused" 255 "$RC"
check "sif setprim 3" "$CAPSA" sif setprim 3 "$NEW"
run "$CAPSA" sif list "$NEW"
expect_match "setprim: new primary" '^3    \|NONE    \|NONE .*\|FS \(Squashfs/\*System/arm64\)$' "$OUT"
expect_match "setprim: old primary demoted" '^2    .*\|FS \(Squashfs/System/amd64\)$' "$OUT"
run "$CAPSA" sif header "$NEW"
expect_match "setprim: header arch follows" "^Primary Architecture: arm64$" "$OUT"
run "$CAPSA" sif setprim 1 "$NEW"
expect_eq "setprim of a non-partition exits 255" 255 "$RC"
check "sif del 3" "$CAPSA" sif del 3 "$NEW"
run "$CAPSA" sif list "$NEW"
expect_eq "del: sif list still reads the file" "0" "$RC"
expect_nomatch "del: object 3 gone" '^3 ' "$OUT"
run "$CAPSA" sif header "$NEW"
expect_eq "del: sif header still reads the file" "0" "$RC"
expect_match "del: the header is printed" "^Launch Script:" "$OUT"
expect_nomatch "del of the primary clears the header arch" "Primary Architecture" "$OUT"
run "$CAPSA" sif add --datatype 4 --parttype 2 --partfs 1 "$NEW" "$WORK/tree.sqfs"
expect_eq "add partition without --partarch exits 255" 255 "$RC"
run "$CAPSA" sif add "$NEW" "$WORK/test.def"
expect_eq "add without --datatype exits 255" 255 "$RC"
run "$CAPSA" sif add --datatype 11 "$NEW" "$WORK/test.def"
run "$CAPSA" sif info 3 "$NEW"
expect_match "OCI blob digest is the SHA-256 of the data" \
    "^  Digest: +sha256:$(sha256sum < "$WORK/test.def" | cut -d' ' -f1)$" "$OUT"
