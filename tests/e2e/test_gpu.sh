# GPUs: --nv, --nvccli, --rocm, --compat32 and the apptainer.conf
# directives (issue 18, docs/hpc.md "GPUs"), on a machine without a GPU:
#
#   - a stand-in driver: stub libcuda.so.1, libnvidia-ml.so.1 (64-bit, and a
#     32-bit libcuda.so.1), libamdocl64.so.1, built here from tiny C files in
#     $WORK/gpu/lib*, registered with the linker cache for this test only
#     (/etc/ld.so.conf.d/zz-capsa-test-gpu.conf + ldconfig; removed and
#     ldconfig run again at the end, and the cache compared with the one
#     before); stand-in programs nvidia-smi, rocm-smi, nvidia-container-cli
#     in a directory on the caller's PATH;
#   - stand-in devices in the host's /dev: /dev/nvidia0, /dev/nvidia1,
#     /dev/nvidiactl with NVIDIA's major 195, /dev/kfd with major 120 (a
#     number the kernel keeps for local use and never hands out),
#     /dev/dri/card0, renderD128 with DRM's 226; none is registered in
#     /proc/devices here, so opening one gives ENXIO (nothing answers), which
#     also shows the node is usable (a nodev mount gives EACCES).  All are
#     removed at the end; on a machine with a real GPU (its nodes exist) the
#     device checks are skipped: run tests/gpu/real.sh there.
#
# Checks run as root, as $TUSER through the setuid starter, and with
# --userns; the attacks (as $TUSER) try to make --nv bind host files or
# non-GPU devices: forged --gpu-file values given to the starter directly,
# files the user cannot read, a setuid program, a list file the user can
# write, and nodes named like GPU devices that are symlinks, block devices,
# another driver's character devices.

GPU=$WORK/gpu
IMG=$WORK/img
LDCONF=/etc/ld.so.conf.d/zz-capsa-test-gpu.conf
STARTER=$CAPSA_PREFIX/libexec/capsa/starter
ETC=$CAPSA_PREFIX/etc/capsa
made_nodes=()

gpu_cleanup () {
    local n
    for n in "${made_nodes[@]}"; do rm -rf "$n"; done
    made_nodes=()
    if [ -e "$LDCONF" ]; then rm -f "$LDCONF"; ldconfig; fi
    install -m 0644 "$TOP/etc/capsa.conf" "$ETC/capsa.conf"
    install -m 0644 "$TOP/etc/nvliblist.conf" "$ETC/nvliblist.conf"
    install -m 0644 "$TOP/etc/rocmliblist.conf" "$ETC/rocmliblist.conf"
}
trap gpu_cleanup EXIT

# node PATH ARGS...: mknod made here (and removed at the end).
node () { local p=$1; shift; mknod "$p" "$@" && made_nodes+=("$p"); }

# gpu MODE ARGS: capsa exec in MODE (root, setuid, userns) with the stand-in
# programs first in PATH; ARGS is one string for sh.  Output in OUT, RC.
gpu () {
    local mode=$1 args=$2 path="$GPU/bin:/usr/local/bin:/usr/bin:/bin"
    case $mode in
    root) OUT=$(cd /tmp && env -i PATH="$path" HOME=/root sh -c "$CAPSA exec $args" 2>&1); RC=$? ;;
    setuid) run_user "PATH=$path $CAPSA exec $args" ;;
    userns) run_user "PATH=$path $CAPSA exec --userns $args" ;;
    esac
}

real_nv=0; real_rocm=0
[ -e /dev/nvidiactl ] || [ -e /dev/nvidia0 ] || [ -e /dev/nvidia1 ] && real_nv=1
[ -e /dev/kfd ] || [ -e /dev/dri ] && real_rocm=1
before=$(ldconfig -p | sort)

# ---- the image: the busybox image with the C library, a probe ------------
mkdir -p "$GPU"/lib "$GPU"/lib32 "$GPU"/bin "$GPU"/src "$GPU"/log && chmod 0755 "$GPU" "$GPU"/lib "$GPU"/lib32 "$GPU"/bin
chmod 0777 "$GPU/log"
cp -a "$IMG_PING" "$IMG" || fail "setup" "cannot copy $IMG_PING"
cat > "$GPU/src/cuda.c" <<'EOF'
int cuInit (unsigned int flags) { return (int) flags; }
const char *capsa_stub_name (void) { return "stand-in libcuda"; }
EOF
cat > "$GPU/src/probe.c" <<'EOF'
#include <stdio.h>
int cuInit (unsigned int);
const char *capsa_stub_name (void);
int main (void) { printf ("cuInit=%d %s\n", cuInit (0), capsa_stub_name ()); return 0; }
EOF
echo 'int nvmlInit_v2 (void) { return 0; }' > "$GPU/src/nvml.c"
echo 'int clGetPlatformIDs (void) { return 0; }' > "$GPU/src/ocl.c"
printf '%s\n' '#include <stdio.h>' '#include <string.h>' \
    'int main (int c, char **v) { if (c > 1 && strcmp (v[1], "-L") == 0) puts ("GPU 0: capsa stand-in (UUID: GPU-capsa)"); else puts (NAME); return 0; }' \
    > "$GPU/src/prog.c"
# The driver's file has its full version; the linker cache knows it by its
# soname (libcuda.so.1), as a real driver's.
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$GPU/lib/libcuda.so.999.1" "$GPU/src/cuda.c" \
    && ln -s libcuda.so.999.1 "$GPU/lib/libcuda.so.1" \
    && cc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -o "$GPU/lib/libnvidia-ml.so.1" "$GPU/src/nvml.c" \
    && cc -shared -fPIC -Wl,-soname,libamdocl64.so.1 -o "$GPU/lib/libamdocl64.so.1" "$GPU/src/ocl.c" \
    && cc -shared -fPIC -Wl,-soname,libcapsaevil.so.1 -o "$GPU/lib/libcapsaevil.so.1" "$GPU/src/nvml.c" \
    && cc -static -DNAME='"stand-in nvidia-smi"' -o "$GPU/bin/nvidia-smi" "$GPU/src/prog.c" \
    && cc -static -DNAME='"stand-in rocm-smi"' -o "$GPU/bin/rocm-smi" "$GPU/src/prog.c" \
    && cc -o "$IMG/usr/bin/cudaprobe" "$GPU/src/probe.c" "$GPU/lib/libcuda.so.1" \
    || fail "setup" "cannot build the stand-in driver"
have32=0
if cc -m32 -shared -fPIC -nostdlib -Wl,-soname,libcuda.so.1 -o "$GPU/lib32/libcuda.so.1" "$GPU/src/cuda.c" 2>/dev/null; then
    have32=1
fi
cat > "$IMG/probe" <<'EOF'
#!/bin/sh
for f in libcuda.so.1 libcuda.so.999.1 libnvidia-ml.so.1 libcapsaevil.so.1 libamdocl64.so.1; do
    [ -f /.singularity.d/libs/$f ] && echo "lib $f"
done
[ -f /.singularity.d/libs32/libcuda.so.1 ] && echo "lib32 libcuda.so.1"
echo "ld=${LD_LIBRARY_PATH:-}"
for d in nvidia0 nvidia1 nvidiactl kfd dri/renderD128; do [ -c /dev/$d ] && echo "chr $d"; done
[ -x /usr/bin/nvidia-smi ] && echo "smi $(nvidia-smi -L)"
[ -x /usr/bin/rocm-smi ] && echo "rocm $(rocm-smi)"
[ -c /dev/nvidia0 ] && echo "open $(cat /dev/nvidia0 2>&1 >/dev/null | sed 's/.*: //')"
cudaprobe 2>/dev/null || echo "cudaprobe failed"
exit 0
EOF
chmod 0755 "$IMG/probe"

# ---- 2. no driver: one WARNING, the command runs ---------------------------
if [ "$real_nv" = 0 ]; then
    for mode in root setuid userns; do
        gpu $mode "--nv $IMG echo ran"
        expect_eq "$mode: no driver: --nv gives one WARNING and the command runs" \
            "WARNING: --nv: no NVIDIA GPU on this host (no /dev/nvidia* device): the container runs without one
ran" "$OUT"
        expect_rc "$mode: no driver: exit status 0" 0
    done
    gpu setuid "--rocm $IMG echo ran"
    expect_eq "setuid: no driver: --rocm gives one WARNING and the command runs" \
        "WARNING: --rocm: no AMD GPU on this host (no /dev/kfd, no /dev/dri): the container runs without one
ran" "$OUT"
else
    skip "no driver: --nv gives one WARNING" "this machine has NVIDIA devices"
fi

# ---- the stand-in driver ----------------------------------------------------
printf '%s\n%s\n' "$GPU/lib" "$GPU/lib32" > "$LDCONF" && ldconfig
expect_match "setup: the linker cache knows the stand-in libcuda.so.1" "libcuda.so.1 \(libc6,x86-64\) => $GPU/lib/libcuda.so.1" "$(ldconfig -p)"
if [ "$real_nv" = 0 ]; then
    node /dev/nvidia0 -m 0666 c 195 0 && node /dev/nvidia1 -m 0666 c 195 1 && node /dev/nvidiactl -m 0666 c 195 255 \
        || fail "setup" "mknod of the stand-in NVIDIA devices"
fi

# ---- 1. the libraries, programs and devices arrive, in the three modes -----
for mode in root setuid userns; do
    gpu $mode "--nv $IMG /probe"
    expect_rc "$mode: --nv runs" 0
    expect_match "$mode: --nv: the stub libraries are in /.singularity.d/libs" "^lib libcuda.so.1$" "$OUT"
    expect_match "$mode: --nv: ... libnvidia-ml.so.1 too" "^lib libnvidia-ml.so.1$" "$OUT"
    expect_nomatch "$mode: --nv: under the cache's name, not the file's" "libcuda.so.999.1" "$OUT"
    expect_match "$mode: --nv: LD_LIBRARY_PATH has /.singularity.d/libs (an image without Apptainer's 99-base.sh)" \
        "^ld=/.singularity.d/libs$" "$OUT"
    expect_match "$mode: --nv: a program linked with libcuda.so.1 loads the stub" "^cuInit=0 stand-in libcuda$" "$OUT"
    expect_match "$mode: --nv: nvidia-smi is bound into /usr/bin" "^smi GPU 0: capsa stand-in \(UUID: GPU-capsa\)$" "$OUT"
    if [ "$real_nv" = 0 ]; then
        expect_match "$mode: --nv: /dev/nvidia0, /dev/nvidia1, /dev/nvidiactl are character devices" \
            "chr nvidia0.chr nvidia1.chr nvidiactl" "$(printf '%s' "$OUT" | tr '\n' '.')"
        expect_match "$mode: --nv: /dev/nvidia0 is usable, not nodev (opening it reaches the absent driver: ENXIO)" \
            "^open No such device or address$" "$OUT"
    fi
    gpu $mode "$IMG /probe"
    expect_rc "$mode: without --nv: runs" 0
    expect_eq "$mode: without --nv: no library, no LD_LIBRARY_PATH, no device, no nvidia-smi" \
        "ld=
cudaprobe failed" "$OUT"
done

if [ "$real_nv" = 0 ]; then
    gpu setuid "--nv $IMG sh -c 'ls -l /dev/nvidia0'"
    expect_match "setuid: ls -l /dev/nvidia0 shows a character device (acceptance 1)" "^crw-rw-rw- +1 root +root +195, +0 .*/dev/nvidia0$" "$OUT"
fi
gpu setuid "--nv $IMG sh -c 'grep -E \" /.singularity.d/libs/libcuda.so.1 | /usr/bin/nvidia-smi \" /proc/self/mountinfo'"
expect_eq "setuid: the library and the program are mounted ro,nosuid,nodev" "2" \
    "$(printf '%s\n' "$OUT" | grep -cE ' (ro,nosuid,nodev|ro,nodev,nosuid)[, ]')"
gpu setuid "--nv $IMG sh -c 'echo x > /.singularity.d/libs/libcuda.so.1 2>&1; echo rc=\$?'"
expect_match "setuid: the bound library cannot be written" "rc=1" "$OUT"
if [ "$real_nv" = 0 ]; then
    gpu setuid "--nv $IMG sh -c 'grep \" /dev/nvidia0 \" /proc/self/mountinfo'"
    expect_nomatch "setuid: /dev/nvidia0 is mounted without nodev" "nodev" "$(printf '%s' "$OUT" | cut -d' ' -f6)"
    expect_match "setuid: ... and nosuid" "nosuid" "$(printf '%s' "$OUT" | cut -d' ' -f6)"

    # --contain still gets the GPU; mount dev = yes has the host's devices.
    for mode in setuid userns; do
        gpu $mode "--contain --nv $IMG /probe"
        expect_match "$mode: --contain --nv: devices and libraries" "lib libcuda.so.1.*chr nvidia0.*chr nvidiactl.*cuInit=0" \
            "$(printf '%s' "$OUT" | tr '\n' ' ')"
    done
    sed -i 's/^mount dev = .*/mount dev = yes/' "$ETC/capsa.conf"
    grep -q '^mount dev = yes' "$ETC/capsa.conf" || echo 'mount dev = yes' >> "$ETC/capsa.conf"
    gpu setuid "--nv $IMG /probe"
    expect_match "setuid: mount dev = yes: the host's devices and the libraries" "lib libcuda.so.1.*chr nvidia0.*cuInit=0" \
        "$(printf '%s' "$OUT" | tr '\n' ' ')"
    gpu setuid "--contain --nv $IMG /probe"
    expect_match "setuid: mount dev = yes, --contain (minimal /dev): the devices are bound" "chr nvidia0.*chr nvidiactl" \
        "$(printf '%s' "$OUT" | tr '\n' ' ')"
    install -m 0644 "$TOP/etc/capsa.conf" "$ETC/capsa.conf"
fi

# user bind control = no: the files are left out (Apptainer), devices stay.
echo 'user bind control = no' >> "$ETC/capsa.conf"
gpu setuid "--nv $IMG /probe"
expect_match "setuid: user bind control = no: a WARNING for the GPU files" \
    "^WARNING: ignoring the GPU libraries and programs: user bind control is disabled" "$OUT"
expect_nomatch "setuid: user bind control = no: no GPU library" "^lib " "$OUT"
[ "$real_nv" = 0 ] && expect_match "setuid: user bind control = no: the devices still are" "^chr nvidia0$" "$OUT"
gpu root "--nv $IMG /probe"
expect_match "root: user bind control = no does not limit root" "^lib libcuda.so.1$" "$OUT"
install -m 0644 "$TOP/etc/capsa.conf" "$ETC/capsa.conf"

# --writable on a directory image: capsa creates no mount point in it, so
# the GPU files go only where it has them; one WARNING says so.
cp -a "$IMG" "$WORK/wimg" && mkdir -p "$WORK/wimg/dev" "$WORK/wimg/proc" "$WORK/wimg/sys" "$WORK/wimg/.singularity.d/libs" \
    && touch "$WORK/wimg/.singularity.d/libs/libcuda.so.1"
gpu root "--writable --nv $WORK/wimg /probe"
expect_match "root: --writable --nv: one WARNING" \
    "^WARNING: --writable: the GPU files are bound only where the directory image $WORK/wimg has their mount points" "$OUT"
expect_eq "root: --writable --nv: ... only one" "1" "$(printf '%s\n' "$OUT" | grep -c '^WARNING')"
expect_match "root: --writable --nv: the library whose mount point exists is bound, the rest left out" \
    "^lib libcuda.so.1 ld=/.singularity.d/libs .*cuInit=0" "$(printf '%s' "$OUT" | grep -v '^WARNING' | tr '\n' ' ')"
expect_nomatch "root: --writable --nv: nothing created in the image" "^smi|libnvidia-ml" "$OUT"
expect_absent "root: --writable --nv: no new file in the image" "$WORK/wimg/usr/bin/nvidia-smi" \
    "$WORK/wimg/.singularity.d/libs/libnvidia-ml.so.1"

# --compat32: the 32-bit build into /.singularity.d/libs32.
if [ "$have32" = 1 ]; then
    for mode in setuid userns; do
        gpu $mode "--nv --compat32 $IMG /probe"
        expect_match "$mode: --compat32: the 32-bit libcuda.so.1 in /.singularity.d/libs32, the 64-bit one in libs" \
            "lib libcuda.so.1 .*lib32 libcuda.so.1 ld=/.singularity.d/libs:/.singularity.d/libs32 " "$(printf '%s' "$OUT" | tr '\n' ' ')"
    done
    gpu setuid "--nv $IMG sh -c 'test -e /.singularity.d/libs32 || echo no-libs32'"
    expect_eq "setuid: without --compat32 no libs32" "no-libs32" "$(printf '%s' "$OUT" | grep -v '^WARNING')"
    run_user "NVIDIA_DRIVER_CAPABILITIES=compute,compat32 PATH=$GPU/bin:\$PATH $CAPSA exec --nv $IMG /probe"
    expect_match "setuid: NVIDIA_DRIVER_CAPABILITIES=...,compat32 is --compat32 (as Apptainer)" "^lib32 libcuda.so.1$" "$OUT"
else
    skip "--compat32" "cc -m32 cannot build a 32-bit stub here"
fi
gpu setuid "--compat32 $IMG true"
expect_eq "setuid: --compat32 without --nv: Apptainer's warning" "WARNING: ignoring --compat32: it needs --nv or --rocm" "$OUT"

# NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES reach the command.
run_user "NVIDIA_VISIBLE_DEVICES=1 CUDA_VISIBLE_DEVICES=0 PATH=$GPU/bin:\$PATH $CAPSA exec --nv $IMG sh -c 'echo \$NVIDIA_VISIBLE_DEVICES \$CUDA_VISIBLE_DEVICES'"
expect_eq "setuid: NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES pass through" "1 0" "$(printf '%s' "$OUT" | grep -v '^WARNING')"

# ---- the administrator's directives ----------------------------------------
echo 'always use nv = yes' >> "$ETC/capsa.conf"
gpu setuid "$IMG /probe"
expect_match "setuid: always use nv = yes: --nv without asking" "^lib libcuda.so.1$" "$OUT"
gpu setuid "--no-nv $IMG /probe"
expect_nomatch "setuid: always use nv = yes, --no-nv: no GPU files" "^lib |^smi " "$OUT"
expect_rc "setuid: --no-nv runs" 0
gpu userns "$IMG /probe"
expect_match "userns: always use nv = yes: --nv without asking" "^lib libcuda.so.1$" "$OUT"
install -m 0644 "$TOP/etc/capsa.conf" "$ETC/capsa.conf"

# ---- --nvccli: nvidia-container-cli lists, capsa binds ---------------------
gpu setuid "--nvccli $IMG true"
expect_rc "setuid: --nvccli without nvidia-container-cli: exit 255" 255
expect_match "setuid: --nvccli without nvidia-container-cli: says so" \
    "^FATAL: +--nvccli: nvidia-container-cli is not installed" "$OUT"
# The stand-in prints what `nvidia-container-cli list` prints (its source,
# src/cli/list.c): device nodes of the selected GPUs, binaries, the driver's
# library files under their full versions; it logs its arguments.
cat > "$GPU/bin/nvidia-container-cli" <<EOF
#!/bin/sh
echo "\$*" > $GPU/log/nvccli.args
dev=
for a in "\$@"; do case \$a in --device=*) dev=\${a#--device=} ;; esac; done
if [ -n "\$dev" ]; then
    echo /dev/nvidiactl
    case ",\$dev," in *,all,*|*,0,*) echo /dev/nvidia0 ;; esac
    case ",\$dev," in *,all,*|*,1,*) echo /dev/nvidia1 ;; esac
fi
echo $GPU/bin/nvidia-smi
echo $GPU/lib/libcuda.so.999.1
echo $GPU/lib/libnvidia-ml.so.1
echo $GPU/lib/libcapsaevil.so.1
EOF
chmod 0755 "$GPU/bin/nvidia-container-cli"
for mode in setuid userns; do
    run_user "rm -f $GPU/log/nvccli.args"
    gpu $mode "--nvccli $IMG /probe"
    expect_match "$mode: --nvccli: the listed libraries, under their cache names" "lib libcuda.so.1 lib libnvidia-ml.so.1 ld=" \
        "$(printf '%s' "$OUT" | tr '\n' ' ')"
    expect_nomatch "$mode: --nvccli: a library nvliblist.conf does not name is left out" "libcapsaevil" "$OUT"
    expect_match "$mode: --nvccli: the program" "^smi GPU 0" "$OUT"
    expect_eq "$mode: --nvccli: nvidia-container-cli list was run as the user, all devices" \
        "list --libraries --binaries --device=all" "$(cat "$GPU/log/nvccli.args" 2>&1)"
    expect_eq "$mode: --nvccli: ... by the user" "$TUSER" "$(stat -c %U "$GPU/log/nvccli.args" 2>&1)"
done
if [ "$real_nv" = 0 ]; then
    run_user "NVIDIA_VISIBLE_DEVICES=1 PATH=$GPU/bin:\$PATH $CAPSA exec --nvccli $IMG /probe"
    expect_eq "setuid: --nvccli, NVIDIA_VISIBLE_DEVICES=1: --device=1" "list --libraries --binaries --device=1" \
        "$(cat "$GPU/log/nvccli.args")"
    expect_match "setuid: --nvccli, NVIDIA_VISIBLE_DEVICES=1: only nvidia1 and nvidiactl" "^chr nvidia1 chr nvidiactl $" \
        "$(printf '%s\n' "$OUT" | grep '^chr' | tr '\n' ' ')"
    gpu setuid "--contain --nvccli $IMG /probe"
    expect_match "setuid: --nvccli --contain without NVIDIA_VISIBLE_DEVICES: Apptainer's warning" \
        "^WARNING: --nvccli with --contain: no GPU is bound unless NVIDIA_VISIBLE_DEVICES" "$OUT"
    expect_nomatch "setuid: ... and no GPU device" "^chr" "$OUT"
fi
echo 'use nvidia-container-cli = yes' >> "$ETC/capsa.conf"
run_user "rm -f $GPU/log/nvccli.args"
gpu setuid "--nv $IMG /probe"
expect_match "setuid: use nvidia-container-cli = yes: --nv goes through nvidia-container-cli" "^list --libraries" \
    "$(cat "$GPU/log/nvccli.args" 2>&1)"
install -m 0644 "$TOP/etc/capsa.conf" "$ETC/capsa.conf"
rm -f "$GPU/bin/nvidia-container-cli"

# ---- --rocm ----------------------------------------------------------------
if [ "$real_rocm" = 0 ]; then
    mkdir /dev/dri && made_nodes+=(/dev/dri) && node /dev/kfd -m 0666 c 120 0 \
        && node /dev/dri/card0 -m 0666 c 226 0 && node /dev/dri/renderD128 -m 0666 c 226 128 \
        && mkdir /dev/dri/by-path && ln -s ../renderD128 /dev/dri/by-path/pci-capsa-render \
        || fail "setup" "the stand-in ROCm devices"
    for mode in root setuid userns; do
        gpu $mode "--rocm $IMG /probe"
        expect_match "$mode: --rocm: the stub library, /dev/kfd, /dev/dri, rocm-smi" \
            "lib libamdocl64.so.1 ld=/.singularity.d/libs chr kfd chr dri/renderD128 rocm stand-in rocm-smi" \
            "$(printf '%s' "$OUT" | tr '\n' ' ')"
        expect_nomatch "$mode: --rocm alone: no NVIDIA library or device" "libcuda|nvidia" "$OUT"
    done
    gpu setuid "--rocm $IMG sh -c 'readlink /dev/dri/by-path/pci-capsa-render; cat /dev/kfd 2>&1 >/dev/null | sed \"s/.*: //\"'"
    expect_eq "setuid: --rocm: /dev/dri's links come along; /dev/kfd is usable (ENXIO)" "../renderD128
No such device or address" "$OUT"
    gpu userns "--nv --rocm $IMG /probe"
    expect_match "userns: --nv --rocm: both" "lib libcuda.so.1 .*lib libamdocl64.so.1 .*chr nvidia0 .*chr kfd" \
        "$(printf '%s' "$OUT" | tr '\n' ' ')"
    # A block device in /dev/dri: the directory is not bound.
    node /dev/dri/capsatest-blk -m 0600 b 7 0
    gpu setuid "--rocm $IMG /probe"
    expect_match "attack (setuid): a block device in /dev/dri: the directory is refused, with a WARNING" \
        "^WARNING: not binding /dev/dri for the GPU: holds capsatest-blk, which is not a character device" "$OUT"
    expect_nomatch "attack (setuid): ... and /dev/dri is not in the container" "chr dri" "$OUT"
    rm -f /dev/dri/capsatest-blk
else
    skip "--rocm stand-in devices" "this machine has /dev/kfd or /dev/dri"
fi

# ---- attacks ---------------------------------------------------------------
# Forged --gpu-file values, given to the starter directly (the front end
# refuses the option).
run_user "$CAPSA exec --gpu-file=lib:$GPU/lib/libcuda.so.1 --nv $IMG true"
expect_rc "attack: --gpu-file given to capsa is refused" 255
expect_match "attack: ... naming it" "^FATAL: +--gpu-file=lib:.*: --gpu-file is given by capsa itself" "$OUT"
st () { run_user "$STARTER exec $* $IMG /probe"; }
st "--gpu-file=lib:$GPU/lib/libcuda.so.1"
expect_eq "attack (setuid): --gpu-file without --nv: refused" \
    "FATAL:   --gpu-file lib:$GPU/lib/libcuda.so.1: needs --nv or --rocm" "$OUT"
st "--nv --gpu-file=lib:$GPU/lib/libcapsaevil.so.1"
expect_eq "attack (setuid): a library nvliblist.conf does not name: refused" \
    "FATAL:   --gpu-file lib:$GPU/lib/libcapsaevil.so.1: not allowed by $ETC/nvliblist.conf" "$OUT"
expect_rc "attack (setuid): ... exit 255" 255
st "--nv --gpu-file=bin:/bin/busybox"
expect_match "attack (setuid): a program the list does not name: refused" "^FATAL: +--gpu-file bin:/bin/busybox: not allowed" "$OUT"
st "--nv --gpu-file=file:/etc/shadow"
expect_match "attack (setuid): /etc/shadow as a file of the list: refused" "^FATAL: +--gpu-file file:/etc/shadow: not allowed" "$OUT"
mkdir -p "$GPU/secret" && chmod 0755 "$GPU/secret"
cp "$GPU/lib/libnvidia-ml.so.1" "$GPU/secret/libnvidia-ml.so.1" && chmod 0600 "$GPU/secret/libnvidia-ml.so.1"
ln -s "$GPU/secret/libnvidia-ml.so.1" "$GPU/lib/libnvidia-ml.so.7"
for m in "" "--userns"; do
    st "$m --nv --gpu-file=lib:$GPU/secret/libnvidia-ml.so.1"
    expect_eq "attack (${m:-setuid}): a library the user cannot read: refused" \
        "FATAL:   GPU library: $GPU/secret/libnvidia-ml.so.1: cannot be read: Permission denied" "$OUT"
    st "$m --nv --gpu-file=lib:$GPU/lib/libnvidia-ml.so.7"
    expect_eq "attack (${m:-setuid}): ... through a symlink of the user's: refused" \
        "FATAL:   GPU library: $GPU/lib/libnvidia-ml.so.7: cannot be read: Permission denied" "$OUT"
done
st "--nv --gpu-file=lib:/dev/loop0"
expect_match "attack (setuid): a device as a library: refused" "^FATAL: +--gpu-file lib:/dev/loop0: not allowed|not a regular file" "$OUT"
mkdir -p "$GPU/evil/libcuda.so.1"
st "--nv --gpu-file=lib:$GPU/evil/libcuda.so.1"
expect_eq "attack (setuid): a directory named like a library: refused" \
    "FATAL:   GPU library: $GPU/evil/libcuda.so.1: not a regular file" "$OUT"
st "--nv --gpu-file=dev:/dev/loop0"
expect_rc "attack (setuid): dev:/dev/loop0 (a selection, never a source) runs" 0
st "--nv --gpu-file=dev:/dev/loop0 --gpu-file=dev:/dev/nvidia0"
expect_nomatch "attack (setuid): dev:/dev/loop0 binds no /dev/loop0" "loop0" "$OUT"
[ "$real_nv" = 0 ] && expect_match "attack (setuid): ... while dev:/dev/nvidia0 selects the GPU" "^chr nvidia0$" "$OUT"
st "--nv --gpu-file=lib:/a/../etc/passwd"
expect_match "attack (setuid): a path with .. is malformed" "^FATAL: +invalid --gpu-file 'lib:/a/../etc/passwd'" "$OUT"

# A setuid-root program named nvidia-smi in the user's PATH: bound nosuid.
cp "$HELPERS/showid" "$WORK/suid-showid" && chown root:root "$WORK/suid-showid" && chmod 4755 "$WORK/suid-showid"
mkdir -p "$GPU/evilbin" && ln -sf "$WORK/suid-showid" "$GPU/evilbin/nvidia-smi"
run_user "PATH=$GPU/evilbin:$GPU/bin:\$PATH $CAPSA exec --nv $IMG /usr/bin/nvidia-smi"
expect_eq "attack (setuid): a setuid-root program bound as nvidia-smi runs as the user (nosuid)" \
    "uid=$(id -u "$TUSER") euid=$(id -u "$TUSER")" "$(printf '%s' "$OUT" | grep '^uid=')"
as_user "$TUSER" "$WORK/suid-showid" > "$WORK/.suid" 2>&1
expect_eq "attack control: on the host the same program is setuid root" "uid=$(id -u "$TUSER") euid=0" "$(cat "$WORK/.suid")"

# The administrator's list must be root's and not writable by others.
chmod 0666 "$ETC/nvliblist.conf"
gpu setuid "--nv $IMG true"
expect_eq "attack (setuid): a list writable by others is refused" \
    "FATAL:   $ETC/nvliblist.conf is writable by group or others; refusing to use it" "$OUT"
chmod 0644 "$ETC/nvliblist.conf"; chown "$TUSER" "$ETC/nvliblist.conf"
gpu setuid "--nv $IMG true"
expect_eq "attack (setuid): a list owned by the user is refused" \
    "FATAL:   $ETC/nvliblist.conf is not owned by root; refusing to use it" "$OUT"
chown root:root "$ETC/nvliblist.conf"
gpu setuid "--nv $IMG true"
expect_rc "attack control: root's list again: runs" 0

# Nodes named like GPU devices that are not GPU devices.
if [ "$real_nv" = 0 ]; then
    ln -s loop0 /dev/nvidia-capsatest-lnk && made_nodes+=(/dev/nvidia-capsatest-lnk)
    node /dev/nvidia-capsatest-blk -m 0600 b 7 0
    node /dev/nvidia-capsatest-mem -m 0666 c 1 3
    mkdir /dev/nvidia-capsatest-dir && made_nodes+=(/dev/nvidia-capsatest-dir) && node /dev/nvidia-capsatest-dir/x -m 0600 b 7 0
    for mode in setuid userns; do
        gpu $mode "--nv $IMG sh -c 'ls -d /dev/nvidia*'"
        expect_eq "attack ($mode): only the GPU's character devices are bound" "/dev/nvidia0
/dev/nvidia1
/dev/nvidiactl" "$(printf '%s\n' "$OUT" | grep -v '^WARNING')"
        expect_match "attack ($mode): a symlink named like a GPU device: refused with a WARNING" \
            "^WARNING: not binding /dev/nvidia-capsatest-lnk for the GPU: it is a symbolic link, not a character device$" "$OUT"
        expect_match "attack ($mode): a block device: refused" \
            "^WARNING: not binding /dev/nvidia-capsatest-blk for the GPU: it is a block device, not a character device$" "$OUT"
        expect_match "attack ($mode): another driver's character device: refused" \
            "^WARNING: not binding /dev/nvidia-capsatest-mem for the GPU: its major number 1 belongs to the driver 'mem'$" "$OUT"
        expect_match "attack ($mode): a directory holding a block device: refused" \
            "^WARNING: not binding /dev/nvidia-capsatest-dir for the GPU: holds x, which is not a character device" "$OUT"
    done
fi

# ---- the machine is as before ----------------------------------------------
gpu_cleanup
expect_absent "the stand-in devices are gone" /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl /dev/kfd /dev/dri \
    /dev/nvidia-capsatest-lnk /dev/nvidia-capsatest-blk /dev/nvidia-capsatest-mem /dev/nvidia-capsatest-dir "$LDCONF"
expect_eq "the linker cache is as before" "$before" "$(ldconfig -p | sort)"
no_leftover_mounts "no capsa mount left on the host"

# ---- 3. the real check skips (77, not a pass) where there is no GPU -------
if [ "$real_nv" = 0 ]; then
    OUT=$(CAPSA=$CAPSA bash "$TOP/tests/gpu/real.sh" 2>&1); RC=$?
    expect_rc "tests/gpu/real.sh exits 77 (skipped) on a machine without a GPU" 77
    expect_match "tests/gpu/real.sh says why" "^SKIP: no NVIDIA GPU" "$OUT"
else
    skip "tests/gpu/real.sh skips without a GPU" "this machine has NVIDIA devices: run tests/gpu/real.sh"
fi
