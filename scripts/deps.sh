#!/usr/bin/env bash
# Installs everything capsa needs to build, run and test, from Debian 12's
# archive, by package name.  Run as root.  Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
    # build
    build-essential pkg-config clang
    libcap-dev libseccomp-dev libssl-dev libcryptsetup-dev libfuse3-dev libjson-c-dev
    libcurl4-openssl-dev libarchive-dev
    # gocryptfs images (SIF fs type 6): capsa reads their outer squashfs
    # with squashfs-tools-ng's libsquashfs
    libsquashfs-dev
    # run time
    fuse3 squashfs-tools squashfuse
    # --fakeroot: newuidmap/newgidmap map the /etc/subuid ranges (uidmap);
    # ext3 overlay images: mkfs.ext3 for 'overlay create' (e2fsprogs),
    # fuse2fs and fuse-overlayfs serve them in user namespaces
    uidmap e2fsprogs fuse2fs fuse-overlayfs
    # tests, fixtures and benchmarks
    busybox-static debootstrap bubblewrap charliecloud-runtime hyperfine python3 procps util-linux
    iputils-ping libcap2-bin openssl jq
    # Slurm, MPI and the Debian package (tests/e2e/test_slurm.sh, test_mpi.sh, test_deb.sh);
    # the host's Open MPI must match the test image's (Debian 12's, see docs/hpc.md)
    slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev iproute2
    dpkg-dev debhelper lintian man-db bash-completion
    # encrypted images: external format checks (cryptsetup, independent AES-XTS),
    # and gocryptfs images made the way Apptainer makes them (gocryptfs)
    cryptsetup-bin python3-cryptography gocryptfs
    # the kernel's dm-crypt as a judge, in a VM (make check-vm, tests/vm/): qemu in software
    # emulation; depmod (kmod) makes modules.dep for the unpacked, never installed, kernel
    # package; cpio writes the initramfs
    qemu-system-x86 kmod cpio
    # registry tests (tests/e2e/test_registry.sh)
    docker-registry apache2-utils skopeo umoci
    # the containers-common default seccomp profile, /usr/share/containers/seccomp.json
    # (Docker format; tests/unit/test_seccomp.c, test_apptainer.sh, the fuzz corpus)
    golang-github-containers-common
    # the version parser Snakemake checks "apptainer --version" with (test_apptainer.sh)
    python3-packaging
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
