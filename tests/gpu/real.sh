#!/usr/bin/env bash
# The real check of --nv, for a machine with an NVIDIA GPU and its driver
# (docs/hpc.md, "GPUs"): runs `nvidia-smi -L` and a tiny CUDA program inside
# an image with --nv, as root, as a user through the setuid starter and with
# --userns, and compares with the host.  Exits 0 when every check passed, 1
# when one failed, 77 (skipped, never a pass) where no GPU is present.
#
#   sudo bash tests/gpu/real.sh               # capsa from CAPSA, CAPSA_PREFIX or PATH
#   CAPSA_PREFIX=/opt/capsa-check bash tests/gpu/real.sh
#
# Environment:
#   CAPSA        capsa to test (default $CAPSA_PREFIX/bin/capsa, else `capsa` in PATH)
#   GPU_IMAGE    an image with a C library (default: the cached Debian minbase
#                squashfs of tests/fixtures.sh, built once, a few minutes)
#   GPU_USER     the unprivileged user for the setuid and --userns runs
#                (default capsa-u1 when it exists; those runs are skipped without one)
#   NVCC         the CUDA compiler (default nvcc in PATH, /usr/local/cuda/bin,
#                Debian's nvidia-cuda-toolkit); without one the CUDA program is skipped
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
passed=0 failed=0 skipped=0
ok () { echo "PASS $1"; passed=$((passed + 1)); }
ko () { echo "FAIL $1: $2"; failed=$((failed + 1)); }
sk () { echo "SKIP $1: $2"; skipped=$((skipped + 1)); }

# No GPU here: skipped, not passed.
if ! [ -c /dev/nvidiactl ] || ! command -v nvidia-smi > /dev/null 2>&1; then
    echo "SKIP: no NVIDIA GPU on this machine (no /dev/nvidiactl or no nvidia-smi)"
    exit 77
fi
host_gpus=$(nvidia-smi -L 2>/dev/null | grep '^GPU ')
if [ -z "$host_gpus" ]; then
    echo "SKIP: nvidia-smi -L lists no GPU on this machine"
    exit 77
fi
echo "host: $host_gpus"

CAPSA=${CAPSA:-${CAPSA_PREFIX:+$CAPSA_PREFIX/bin/capsa}}
CAPSA=${CAPSA:-$(command -v capsa)}
[ -x "$CAPSA" ] || { echo "FAIL: capsa not found (set CAPSA or CAPSA_PREFIX)"; exit 1; }
GPU_USER=${GPU_USER:-capsa-u1}
id "$GPU_USER" > /dev/null 2>&1 || GPU_USER=
if [ "$(id -u)" != 0 ] && [ -n "$GPU_USER" ] && [ "$(id -un)" != "$GPU_USER" ]; then
    GPU_USER= # only root can run as another user
fi

IMAGE=${GPU_IMAGE:-}
if [ -z "$IMAGE" ]; then
    export CACHE=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}
    # shellcheck source=../fixtures.sh
    source "$top/tests/fixtures.sh"
    IMAGE=$(fixture_minbase_sqfs) || { echo "FAIL: cannot build the Debian minbase image (set GPU_IMAGE)"; exit 1; }
fi
WORK=$(mktemp -d /tmp/capsa-gpu-real.XXXXXX)
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

# A tiny CUDA program, the CUDA runtime linked statically: in the container
# it needs only the driver's libcuda.so.1, which --nv binds.
NVCC=${NVCC:-$(command -v nvcc || ls /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc /usr/lib/nvidia-cuda-toolkit/bin/nvcc 2>/dev/null | head -1)}
have_cuda=0
if [ -n "$NVCC" ] && [ -x "$NVCC" ]; then
    cat > "$WORK/vecadd.cu" <<'CU'
#include <stdio.h>
__global__ void add (const int *a, const int *b, int *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
int main (void)
{
    const int n = 1 << 16;
    int *a, *b, *c, bad = 0;
    if (cudaMallocManaged (&a, n * sizeof (int)) != cudaSuccess || cudaMallocManaged (&b, n * sizeof (int)) != cudaSuccess
        || cudaMallocManaged (&c, n * sizeof (int)) != cudaSuccess) {
        printf ("vecadd: cudaMallocManaged failed\n");
        return 1;
    }
    for (int i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; }
    add<<<(n + 255) / 256, 256>>> (a, b, c, n);
    cudaError_t e = cudaDeviceSynchronize ();
    for (int i = 0; i < n; i++) bad += c[i] != 3 * i;
    printf ("vecadd: %s, %d wrong\n", cudaGetErrorString (e), bad);
    return e != cudaSuccess || bad != 0;
}
CU
    if "$NVCC" -cudart static -o "$WORK/vecadd" "$WORK/vecadd.cu" > "$WORK/nvcc.log" 2>&1; then
        have_cuda=1
        host_out=$("$WORK/vecadd" 2>&1)
        [ "$host_out" = "vecadd: no error, 0 wrong" ] && ok "host: the CUDA program runs" || ko "host: the CUDA program" "$host_out"
    else
        ko "nvcc builds the CUDA program" "$(tail -3 "$WORK/nvcc.log")"
    fi
fi

run_mode () {   # MODE: root, setuid, userns
    local mode=$1 pre=() flag=() out
    case $mode in
    root) [ "$(id -u)" = 0 ] || { sk "$mode" "not run as root"; return; } ;;
    setuid|userns)
        [ -n "$GPU_USER" ] || { sk "$mode" "no user to run as (GPU_USER)"; return; }
        [ "$(id -u)" = 0 ] && pre=(runuser -u "$GPU_USER" --)
        [ "$mode" = userns ] && flag=(--userns) ;;
    esac
    out=$(cd "$WORK" && "${pre[@]}" "$CAPSA" exec "${flag[@]}" --nv "$IMAGE" nvidia-smi -L 2>&1 | grep '^GPU ')
    [ "$out" = "$host_gpus" ] && ok "$mode: nvidia-smi -L in the container lists the host's GPUs" \
        || ko "$mode: nvidia-smi -L in the container" "[$out], host [$host_gpus]"
    out=$(cd "$WORK" && "${pre[@]}" "$CAPSA" exec "${flag[@]}" --contain --nv "$IMAGE" nvidia-smi -L 2>&1 | grep '^GPU ')
    [ "$out" = "$host_gpus" ] && ok "$mode: ... with --contain too" || ko "$mode: --contain --nv" "[$out]"
    if [ "$have_cuda" = 1 ]; then
        out=$(cd "$WORK" && "${pre[@]}" "$CAPSA" exec "${flag[@]}" --nv -B "$WORK" "$IMAGE" "$WORK/vecadd" 2>&1)
        [ "$out" = "vecadd: no error, 0 wrong" ] && ok "$mode: the CUDA program runs on the GPU in the container" \
            || ko "$mode: the CUDA program in the container" "$out"
    else
        sk "$mode: the CUDA program" "no nvcc (Debian's nvidia-cuda-toolkit, or NVIDIA's CUDA toolkit)"
    fi
    out=$(cd "$WORK" && "${pre[@]}" "$CAPSA" exec "${flag[@]}" "$IMAGE" sh -c 'nvidia-smi -L 2>/dev/null; ls /dev/nvidia* 2>/dev/null; echo done')
    [ "$out" = done ] && ok "$mode: without --nv no GPU" || ko "$mode: without --nv" "$out"
}
for m in root setuid userns; do run_mode "$m"; done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
