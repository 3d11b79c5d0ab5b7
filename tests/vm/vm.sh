# A small Linux VM that is not capsa: Debian's stock kernel under
# qemu-system-x86_64 (software emulation, no KVM needed) with a tiny
# initramfs holding busybox, the host's cryptsetup and the kernel modules
# of virtio disks, device-mapper, dm-crypt (xts, ecb) and squashfs.  It
# gives the test suite the kernel's own dm-crypt, which this machine's
# kernel lacks.
#
# Sourced by tests/vm/ scripts (after tests/fixtures.sh), or run:
#
#   bash tests/vm/vm.sh fixture          # print the cached kernel+initramfs directory
#   bash tests/vm/vm.sh run [-t SECONDS] [-i INDIR] [-m MIB] SCRIPT [DISK...]
#
# vm_fixture builds $CACHE/vm-<key>/{vmlinuz,initrd.img,kernel-version}
# once, keyed by the kernel package, the cryptsetup and busybox package
# versions and the recipe below.  The kernel package is fetched with
# `apt-get download` and unpacked in a temporary directory: nothing is
# installed on the host and /boot is never touched.
#
# vm_run boots the VM with the files INDIR/* and SCRIPT in a squashfs on
# the first virtio disk (/dev/vda, mounted on /in, the script's working
# directory) and each DISK as the next one (/dev/vdb, /dev/vdc, ... in
# order, read-write; "ro:PATH" attaches one read-only).  The script runs
# under busybox sh as root; its output (stdout and stderr) comes back on
# vm_run's stdout through a second serial port; the kernel's console
# (ttyS0) is copied to the file $VM_CONSOLE when that is set.  vm_run
# returns the script's exit status, 124 when the timeout (default 300 s)
# expired and 125 when the VM failed before the script ended.  Nothing
# needs a terminal; nothing is left in /tmp.
#
# Environment:
#   CAPSA_VM_KERNEL_DEB   use this linux-image .deb instead of downloading one
#   CAPSA_VM_MEM          guest memory in MiB [512]

: "${CACHE:=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}}"

# Part of the key, with the text of the builder functions below: bump it
# when something else changes what they make.
_VM_RECIPE=vm-initramfs-v1
# Modules loaded in this order (their dependencies first, from modules.dep).
_VM_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
dm-mod dm-crypt ecb xts squashfs"

_vm_log () { echo "vm: $*" >&2; }

# The kernel package linux-image-amd64 points at ("NAME VERSION"), from
# the local apt lists (no network).
_vm_kernel_pkg () {
    local name ver
    if [ -n "${CAPSA_VM_KERNEL_DEB:-}" ]; then
        dpkg-deb -f "$CAPSA_VM_KERNEL_DEB" Package Version | awk '{print $2}' | paste -sd' '
        return
    fi
    name=$(apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$name" ]; then
        # No package lists yet (a fresh container): fetch them once.
        apt-get update -qq > /dev/null 2>&1
        name=$(apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$name" ] || { _vm_log "cannot resolve linux-image-amd64 (apt-get update?)"; return 1; }
    ver=$(apt-cache policy "$name" 2> /dev/null | awk '/Candidate:/ {print $2; exit}')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || { _vm_log "no candidate version of $name"; return 1; }
    echo "$name $ver"
}

_vm_pkg_versions () {
    dpkg-query -W -f='${Package} ${Version}\n' cryptsetup-bin libcryptsetup12 busybox-static 2> /dev/null
}

# The guest's /init: mounts, modules, the input disk, the script, power off.
_vm_init () {
    cat <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/cryptsetup /tmp /in
out=/dev/ttyS1
stty -F $out raw -echo 2> /dev/null
fail () { echo "capsa-vm: $*" > $out; echo "capsa-vm-exit:125" > $out; sync; poweroff -f; }
while read -r m; do
    insmod "/lib/modules/$m" || fail "insmod $m failed"
done < /modules.load
i=0
while ! [ -b /dev/vda ]; do
    i=$((i + 1)); [ $i -le 100 ] || fail "no /dev/vda"; sleep 0.1
done
mount -t squashfs -o ro /dev/vda /in || fail "cannot mount the input disk"
cd /in
/bin/sh /in/.script < /dev/null > $out 2>&1
rc=$?
cd /
umount /in
sync
echo "capsa-vm-exit:$rc" > $out
poweroff -f
EOF
}

# _vm_make TMPDIR DEB KVER: unpack the kernel, gather modules, libraries
# and busybox, write initrd.img.
_vm_make () {
    local out=$1 deb=$2 kver=$3 root x m dep lib f list
    [ -n "$out" ] && [ -d "$out" ] && [ -f "$deb" ] || { echo "bad arguments [$out] [$deb]"; return 1; }
    x=$out/.deb; root=$out/.root
    mkdir -p "$x" "$root"/{bin,sbin,proc,sys,dev,run,tmp,in,lib/modules} || return 1
    dpkg-deb -x "$deb" "$x" || return 1
    [ -f "$x/boot/vmlinuz-$kver" ] && [ -d "$x/lib/modules/$kver" ] || { echo "no kernel $kver in $deb"; return 1; }
    cp "$x/boot/vmlinuz-$kver" "$out/vmlinuz" || return 1
    # The package ships no modules.dep (its postinst runs depmod): make one.
    depmod -b "$x" "$kver" || return 1
    list=()
    for m in $_VM_MODULES; do
        dep=$(grep -E "(^|/)$m\.ko(\.xz|\.zst|\.gz)?:" "$x/lib/modules/$kver/modules.dep") ||
            { echo "module $m not in modules.dep"; return 1; }
        # modules.dep lists what a module needs, the most basic last.
        for f in $(printf '%s\n' ${dep#*:} | tac) "${dep%%:*}"; do
            [[ " ${list[*]} " == *" $f "* ]] || list+=("$f")
        done
    done
    : > "$root/modules.load"
    for f in "${list[@]}"; do
        m=$(basename "$f"); m=${m%.xz}; m=${m%.zst}; m=${m%.gz}
        case $f in
        *.xz) xz -dc "$x/lib/modules/$kver/$f" > "$root/lib/modules/$m" ;;
        *.zst) zstd -qdc "$x/lib/modules/$kver/$f" > "$root/lib/modules/$m" ;;
        *.gz) gzip -dc "$x/lib/modules/$kver/$f" > "$root/lib/modules/$m" ;;
        *) cp "$x/lib/modules/$kver/$f" "$root/lib/modules/$m" ;;
        esac || { echo "cannot copy module $f"; return 1; }
        echo "$m" >> "$root/modules.load"
    done
    echo "modules: $(paste -sd' ' "$root/modules.load")"
    # busybox and its applets.
    install -m 0755 /bin/busybox "$root/bin/busybox" || return 1
    for f in $(/bin/busybox --list); do
        [ "$f" = busybox ] || ln -s busybox "$root/bin/$f" || return 1
    done
    # cryptsetup, its libraries, and libgcc_s.so.1 (glibc loads it when a
    # thread exits; cryptsetup's threads do).
    install -m 0755 "$(command -v cryptsetup)" "$root/sbin/cryptsetup" || return 1
    f=$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ {print $NF; exit}')
    [ -f "$f" ] || { echo "libgcc_s.so.1 not found"; return 1; }
    for lib in $( (ldd "$(command -v cryptsetup)"; echo "=> $f"; ldd "$f") | grep -o '/[^ ]*' | sort -u); do
        mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib" || return 1
    done
    _vm_init > "$root/init" && chmod 0755 "$root/init" || return 1
    # Not compressed: loads faster than it decompresses under emulation.
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out/initrd.img" ||
        return 1
    echo "$kver" > "$out/kernel-version"
    rm -rf "$x" "$root"
}

_vm_build () {   # TMPDIR NAME VERSION
    local out=$1 name=$2 ver=$3 dl="" deb kver rc
    if [ -n "${CAPSA_VM_KERNEL_DEB:-}" ]; then
        deb=$CAPSA_VM_KERNEL_DEB
    else
        dl=$(mktemp -d /tmp/capsa-vm-deb.XXXXXX) || return 1
        # apt's download sandbox user must be able to write there.
        chmod 0755 "$dl"; id _apt > /dev/null 2>&1 && chown _apt "$dl"
        if ! (cd "$dl" && apt-get download -q=2 "$name=$ver"); then
            # The lists may name a version the archive no longer has.
            apt-get update -qq && (cd "$dl" && apt-get download -q=2 "$name=$ver") || return 1
        fi
        deb=$(ls "$dl"/*.deb) || return 1
    fi
    kver=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's#^\./boot/vmlinuz-##p' | head -1)
    [ -n "$kver" ] || { echo "no vmlinuz in $deb"; return 1; }
    _vm_make "$out" "$deb" "$kver"; rc=$?
    [ -n "$dl" ] && rm -rf "$dl"
    return $rc
}

# vm_fixture: the directory with vmlinuz and initrd.img (built once).
vm_fixture () {
    local pkg key
    command -v qemu-system-x86_64 > /dev/null || { _vm_log "qemu-system-x86_64 missing (scripts/deps.sh)"; return 1; }
    command -v depmod > /dev/null || { _vm_log "depmod missing (scripts/deps.sh: kmod)"; return 1; }
    pkg=$(_vm_kernel_pkg) || return 1
    key=$( { echo "$pkg"; _vm_pkg_versions; echo "$_VM_RECIPE $_VM_MODULES"; declare -f _vm_init _vm_make _vm_build; } | sha256sum | cut -c1-16)
    # shellcheck disable=SC2086
    _fx_build "vm-$key" dir _vm_build $pkg
}

# vm_run [-t SECONDS] [-i INDIR] [-m MIB] SCRIPT [DISK...]
vm_run () {
    local timeout=300 indir="" mem=${CAPSA_VM_MEM:-512} OPTIND=1 opt fx tmp d ro rc accel args=()
    while getopts t:i:m: opt; do
        case $opt in
        t) timeout=$OPTARG ;;
        i) indir=$OPTARG ;;
        m) mem=$OPTARG ;;
        *) return 2 ;;
        esac
    done
    shift $((OPTIND - 1))
    [ $# -ge 1 ] && [ -f "$1" ] || { _vm_log "vm_run: no script [${1:-}]"; return 2; }
    # vm_fixture asks apt (about 1.5 s): once per shell.
    fx=${_VM_FX:-}
    if ! [ -f "$fx/initrd.img" ] || ! [ -f "$fx/vmlinuz" ]; then
        fx=$(vm_fixture) || return 125
        _VM_FX=$fx
    fi
    tmp=$(mktemp -d /tmp/capsa-vm.XXXXXX) || return 125
    mkdir "$tmp/in" && cp "$1" "$tmp/in/.script" || { rm -rf "$tmp"; return 125; }
    shift
    if [ -n "$indir" ]; then
        cp -a "$indir/." "$tmp/in/" || { rm -rf "$tmp"; return 125; }
    fi
    mksquashfs "$tmp/in" "$tmp/in.sqfs" -noappend -quiet -no-progress -all-root > /dev/null ||
        { rm -rf "$tmp"; return 125; }
    rm -rf "$tmp/in"
    args=(-drive "file=$tmp/in.sqfs,format=raw,if=virtio,readonly=on")
    # One PCI slot each: the pc machine has room for about 28.
    [ $# -le 24 ] || { _vm_log "vm_run: at most 24 disks"; rm -rf "$tmp"; return 2; }
    for d in "$@"; do
        ro=""
        case $d in ro:*) d=${d#ro:}; ro=",readonly=on" ;; esac
        [ -f "$d" ] || { _vm_log "vm_run: no disk $d"; rm -rf "$tmp"; return 2; }
        # A comma in a -drive file name must be doubled.
        args+=(-drive "file=${d//,/,,},format=raw,if=virtio,cache=unsafe$ro")
    done
    : > "$tmp/out.log"
    # Software emulation (this machine has no KVM); KVM where there is one.
    accel=tcg
    [ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm:tcg
    timeout -k 10 "$timeout" qemu-system-x86_64 -nodefaults -no-user-config -machine "pc,accel=$accel" \
        -cpu max -smp 1 -m "$mem" -display none -monitor none -no-reboot \
        -kernel "$fx/vmlinuz" -initrd "$fx/initrd.img" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init" \
        -serial "file:$tmp/console.log" -serial "file:$tmp/out.log" \
        "${args[@]}" < /dev/null > "$tmp/qemu.log" 2>&1
    rc=$?
    tr -d '\r' < "$tmp/out.log" | grep -v '^capsa-vm-exit:'
    [ -n "${VM_CONSOLE:-}" ] && tr -d '\r' < "$tmp/console.log" > "$VM_CONSOLE"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        _vm_log "timeout after ${timeout}s; console: $(tail -3 "$tmp/console.log" | tr -d '\r')"
        rc=124
    elif [ $rc -ne 0 ]; then
        _vm_log "qemu exited $rc: $(head -c 400 "$tmp/qemu.log")"
        rc=125
    else
        rc=$(tr -d '\r' < "$tmp/out.log" | sed -n 's/^capsa-vm-exit:\([0-9]*\)$/\1/p' | tail -1)
        if [ -z "$rc" ]; then
            _vm_log "the VM stopped before the script ended; console: $(tail -5 "$tmp/console.log" | tr -d '\r')"
            rc=125
        fi
    fi
    rm -rf "$tmp"
    return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    here=$(cd "$(dirname "$0")" && pwd)
    source "$here/../fixtures.sh"
    case ${1:-} in
    fixture) vm_fixture ;;
    run) shift; vm_run "$@" ;;
    *) echo "usage: $0 fixture | run [-t SECONDS] [-i INDIR] [-m MIB] SCRIPT [DISK...]" >&2; exit 2 ;;
    esac
fi
