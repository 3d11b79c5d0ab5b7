# Running and inspecting SIF images built by Apptainer.
BB=$FIXTURES/sif/busybox_amd64.sif
cp "$BB" "$WORK/bb.sif" && chmod 0644 "$WORK/bb.sif"
BB=$WORK/bb.sif

run "$CAPSA" exec "$BB" /bin/echo hello
expect_eq "busybox_amd64.sif: echo as root" "hello" "$OUT"
run_user "$CAPSA exec $BB /bin/echo hello"
expect_eq "busybox_amd64.sif: echo as a user (setuid)" "hello" "$OUT"
run_user "$CAPSA exec --userns $BB /bin/echo hello"
expect_eq "busybox_amd64.sif: echo as a user (--userns)" "hello" "$OUT"
run_user "PATH=/host/only $CAPSA exec $BB sh -c 'echo \$PATH'"
expect_eq "busybox_amd64.sif: PATH from its env scripts" "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$OUT"
run_user "$CAPSA run $BB echo from-runscript"
expect_eq "busybox_amd64.sif: run passes arguments to its runscript" "from-runscript" "$OUT"
run_user "$CAPSA exec $BB grep -c . /proc/self/mountinfo"
expect_match "busybox_amd64.sif: served by FUSE in setuid mode" "^[0-9]+$" "$OUT"
run "$CAPSA" exec "$BB" sh -c 'grep " / / " /proc/self/mountinfo'
expect_match "as root the root is an overlay over a loop-mounted squashfs" "overlay" "$OUT"

run "$CAPSA" inspect --labels "$BB"
expect_match "inspect --labels" "^org.label-schema.build-arch: amd64$" "$OUT"
run "$CAPSA" inspect --deffile "$BB"
expect_eq "inspect --deffile" "BootStrap: docker
From: busybox:1.33.1" "$OUT"
run "$CAPSA" inspect --runscript "$BB"
expect_match "inspect --runscript" "^#!/bin/sh" "$OUT"
run "$CAPSA" inspect --environment "$BB"
expect_match "inspect --environment" "^=== /.singularity.d/env/10-docker2singularity.sh ===$" "$OUT"
run "$CAPSA" inspect --json "$BB"
expect_match "inspect --json" '"org.label-schema.build-arch":"amd64"' "$(printf '%s' "$OUT" | tr -d ' \n')"
run_user "$CAPSA inspect --runscript $IMG_SQFS"
expect_eq "inspect --runscript of a bare squashfs (from the image)" '#!/bin/sh
echo "runscript args: $*"' "$OUT"
run_user "$CAPSA inspect --runscript $IMG_DIR"
expect_eq "inspect --runscript of a directory" '#!/bin/sh
echo "runscript args: $*"' "$OUT"
expect_eq "inspect leaves no temporary directory" "" "$(ls /tmp | grep capsa-inspect)"

# Another architecture: the partition descriptor's arch code set to arm64 (04).
cp "$BB" "$WORK/arm.sif"
part=$("$CAPSA" sif list "$BB" | awk -F'|' '/Squashfs/ {print $1+0}')
descoff=$((4096 + (part - 1) * 585 + 201 + 8))
printf '04' | dd of="$WORK/arm.sif" bs=1 seek=$descoff conv=notrunc status=none
for who in root user; do
    if [ $who = root ]; then run "$CAPSA" exec "$WORK/arm.sif" true; else run_user "$CAPSA exec $WORK/arm.sif true"; fi
    expect_eq "arm64 image refused ($who): exit 255" "255" "$RC"
    expect_eq "arm64 image refused ($who): message" "FATAL:   image architecture arm64 does not match host amd64" "$OUT"
done

# Malformed SIF files never start, and say so once.
head -c 40000 "$BB" > "$WORK/trunc.sif"
run_user "$CAPSA exec $WORK/trunc.sif true"
expect_eq "truncated SIF: exit 255" "255" "$RC"
expect_eq "truncated SIF: one line of output" "1" "$(printf '%s\n' "$OUT" | wc -l)"
expect_match "truncated SIF: FATAL naming the problem" "^FATAL:   invalid SIF image .*past end of file" "$OUT"
no_leftover_mounts "no mount left after the SIF runs"
