# Slow test and benchmark fixtures, built once and cached outside the repo.
# Sourced (never run) by tests/ and bench/ scripts:
#
#   source tests/fixtures.sh
#   dir=$(fixture_busybox_dir)          # busybox directory image
#   sqfs=$(fixture_busybox_sqfs)        # the same tree as a bare squashfs
#   root=$(fixture_minbase)             # Debian bookworm minbase tree
#   root=$(fixture_minbase "iputils-ping libcap2-bin")   # ... with extra packages
#   sqfs=$(fixture_minbase_sqfs [INCLUDE])               # squashfs of that tree
#
# Each function prints only the path of the fixture on stdout (logs go to
# stderr) and returns non-zero when it cannot build it.  Every fixture lives
# in $CACHE under a name that carries a hash of what made it (the inputs and
# the recipe version below), so changing a recipe or an input makes a new
# fixture instead of reusing a stale one.  A fixture is built under a
# temporary name inside $CACHE and renamed into place when complete, under
# an flock, so concurrent callers wait for one build and then share it; a
# missing fixture is simply rebuilt.  Old fixtures are never deleted
# automatically: remove entries of $CACHE by hand to reclaim space.
#
# Environment:
#   CAPSA_TEST_CACHE       cache directory        [/var/cache/capsa-test]
#   CAPSA_FIXTURE_BUSYBOX  busybox binary to use  [/bin/busybox, Debian busybox-static]
#   CAPSA_FIXTURE_MIRROR   Debian mirror          [http://deb.debian.org/debian]
#
# Building needs root (debootstrap, file ownership); using a built fixture
# needs nothing: the cache and every fixture are world-readable, so the
# unprivileged test users can use them.

CACHE=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}

# Bump a version when its recipe changes what it produces.
_FX_BUSYBOX_RECIPE=busybox-dir-v1
_FX_MINBASE_RECIPE=minbase-v1
_FX_SQFS_RECIPE=sqfs-v1

_fx_log () { echo "fixtures: $*" >&2; }

_fx_sha () { sha256sum | cut -c1-16; }

# Make sure $CACHE exists and is traversable by everyone.
_fx_cache () {
    if [ ! -d "$CACHE" ]; then
        mkdir -p "$CACHE" || { _fx_log "cannot create $CACHE"; return 1; }
    fi
    if [ -O "$CACHE" ] && [ "$(stat -c %a "$CACHE")" != 755 ]; then
        chmod 0755 "$CACHE"
    fi
    return 0
}

# _fx_build NAME KIND BUILDER [ARGS...]
# Ensures $CACHE/NAME exists, building it with "BUILDER TMP ARGS..." when
# missing.  KIND is "dir" or "file": the type of TMP handed to BUILDER.  The
# builder's stdout goes to stderr.  It must check each of its own steps:
# errexit does not work in functions called as "x=$(f) || ...".  The result
# becomes world-readable and is renamed into place only when BUILDER
# returns 0; otherwise it is removed.
_fx_build () {
    local name=$1 kind=$2 builder=$3; shift 3
    local final="$CACHE/$name" rc
    if [ -e "$final" ]; then echo "$final"; return 0; fi
    _fx_cache || return 1
    (
        # Serialise builds of one fixture; other fixtures build in parallel.
        # The lock files stay: removing one could let two builders in at once.
        exec 9> "$CACHE/.lock.$name" || exit 1
        flock 9 || exit 1
        [ -e "$final" ] && exit 0
        umask 022
        if [ "$kind" = dir ]; then
            tmp=$(mktemp -d "$CACHE/.tmp.$name.XXXXXX") || exit 1
        else
            tmp=$(mktemp "$CACHE/.tmp.$name.XXXXXX") || exit 1
        fi
        [ -n "$tmp" ] && [ -e "$tmp" ] || exit 1
        _fx_log "building $final"
        start=$(date +%s)
        if "$builder" "$tmp" "$@" >&2; then
            if [ "$kind" = dir ]; then chmod 0755 "$tmp"; else chmod 0644 "$tmp"; fi
            if mv -T "$tmp" "$final"; then
                _fx_log "built $final in $(( $(date +%s) - start ))s"
                exit 0
            fi
        fi
        _fx_log "FAILED to build $final (partial result removed)"
        rm -rf --one-file-system "$tmp"
        exit 1
    )
    rc=$?
    [ $rc -eq 0 ] && [ -e "$final" ] || return 1
    echo "$final"
}

# ---------------------------------------------------------------- busybox

_fx_busybox_bin () { echo "${CAPSA_FIXTURE_BUSYBOX:-/bin/busybox}"; }

_fx_busybox_key () {
    local bb; bb=$(_fx_busybox_bin)
    [ -x "$bb" ] || { _fx_log "$bb missing (apt-get install busybox-static)"; return 1; }
    { sha256sum < "$bb" | cut -d' ' -f1; echo "$_FX_BUSYBOX_RECIPE"; } | _fx_sha
}

_fx_make_busybox_dir () {   # TMPDIR
    local d=$1 bb applet applets
    # Never let an empty argument turn these paths into the host's /etc.
    [ -n "$d" ] && [ "$d" != / ] && [ -d "$d" ] || { echo "bad target [$d]"; return 1; }
    bb=$(_fx_busybox_bin)
    mkdir -p "$d"/{bin,etc,root,home,usr/bin,sbin,tmp,.singularity.d/env} || return 1
    chmod 1777 "$d/tmp" && chmod 0700 "$d/root" || return 1
    install -m 0755 "$bb" "$d/bin/busybox" || return 1
    applets=$("$bb" --list) && [ -n "$applets" ] || { echo "$bb --list failed"; return 1; }
    for applet in $applets; do
        [ "$applet" = busybox ] && continue
        ln -s busybox "$d/bin/$applet" || return 1
    done
    echo 'root:x:0:0:root:/root:/bin/sh' > "$d/etc/passwd" || return 1
    echo 'root:x:0:' > "$d/etc/group" || return 1
    printf '%s\n' '#!/bin/sh' 'export PATH=/bin:/usr/bin:/sbin' \
        > "$d/.singularity.d/env/90-environment.sh" || return 1
    printf '%s\n' '#!/bin/sh' 'echo "runscript args: $*"' \
        > "$d/.singularity.d/runscript" || return 1
    chmod 0755 "$d/.singularity.d/env/90-environment.sh" "$d/.singularity.d/runscript"
}

# fixture_busybox_dir: a directory image made of Debian's static busybox.
fixture_busybox_dir () {
    local key; key=$(_fx_busybox_key) || return 1
    _fx_build "busybox-$key" dir _fx_make_busybox_dir
}

_fx_make_sqfs () {   # TMPFILE SRCDIR MKSQUASHFS-OPTIONS...
    local out=$1 src=$2; shift 2
    [ -n "$out" ] && [ -d "$src" ] || { echo "bad arguments [$out] [$src]"; return 1; }
    mksquashfs "$src" "$out" -noappend -quiet -no-progress "$@"
}

# fixture_busybox_sqfs: the busybox tree as a bare squashfs file.
fixture_busybox_sqfs () {
    local dir key
    dir=$(fixture_busybox_dir) || return 1
    key=$(printf '%s\n' "${dir##*/}" "$_FX_SQFS_RECIPE -all-root" | _fx_sha)
    _fx_build "${dir##*/}-$key.sqfs" file _fx_make_sqfs "$dir" -all-root
}

# ---------------------------------------------------------------- minbase

_FX_SUITE=bookworm
_FX_VARIANT=minbase
_fx_mirror () { echo "${CAPSA_FIXTURE_MIRROR:-http://deb.debian.org/debian}"; }

# The include list normalised: sorted, unique, comma-separated.
_fx_includes () { printf '%s\n' "$*" | tr ', \t' '\n\n\n' | sed '/^$/d' | sort -u | paste -sd, -; }

_fx_minbase_key () {   # [INCLUDE]
    printf '%s\n' "$_FX_MINBASE_RECIPE" "$_FX_SUITE" "$_FX_VARIANT" "$(_fx_mirror)" \
        "$(_fx_includes "${1:-}")" "$(dpkg --print-architecture 2>/dev/null || uname -m)" | _fx_sha
}

# fixture_minbase_path [INCLUDE]: where fixture_minbase keeps its tree
# (printed whether or not it is built yet).
fixture_minbase_path () {
    echo "$CACHE/minbase-$_FX_SUITE-$(_fx_minbase_key "${1:-}")"
}

_fx_make_minbase () {   # TMPDIR INCLUDES
    local d=$1 inc=$2 log
    [ -n "$d" ] && [ "$d" != / ] && [ -d "$d" ] || { echo "bad target [$d]"; return 1; }
    command -v debootstrap > /dev/null || { echo "debootstrap missing (apt-get install debootstrap)"; return 1; }
    log="$d.log"
    set -- --variant="$_FX_VARIANT"
    [ -n "$inc" ] && set -- "$@" --include="$inc"
    echo "debootstrap $* $_FX_SUITE $d $(_fx_mirror)  (about 10 minutes; log in $log)"
    if ! debootstrap "$@" "$_FX_SUITE" "$d" "$(_fx_mirror)" > "$log" 2>&1; then
        tail -20 "$log"
        # debootstrap may leave its proc/sys mounts behind when it fails.
        umount -R "$d/proc" 2>/dev/null; umount -R "$d/sys" 2>/dev/null
        return 1
    fi
    rm -f "$log"
}

# fixture_minbase [INCLUDE]: a Debian bookworm minbase tree; INCLUDE is an
# optional list of extra packages (spaces or commas), part of the key.
fixture_minbase () {
    local inc path
    inc=$(_fx_includes "${1:-}")
    path=$(fixture_minbase_path "$inc")
    _fx_build "${path##*/}" dir _fx_make_minbase "$inc"
}

# fixture_minbase_sqfs [INCLUDE]: that tree as a squashfs (gzip, the
# default; ownership kept, unlike the busybox one).
fixture_minbase_sqfs () {
    local dir key
    dir=$(fixture_minbase "${1:-}") || return 1
    key=$(printf '%s\n' "${dir##*/}" "$_FX_SQFS_RECIPE" | _fx_sha)
    _fx_build "${dir##*/}-$key.sqfs" file _fx_make_sqfs "$dir"
}

# ---------------------------------------------------------------- Open MPI

_FX_MPI_RECIPE=mpi-sif-v1
# What the image holds besides minbase: Debian's Open MPI (the same version
# as the host's, for the hybrid model of docs/hpc.md) and a C compiler, so
# that /opt/hello_mpi is built by the image's own mpicc.  Installed with apt
# inside a copy of the minbase tree (debootstrap --include cannot order the
# configuration of these packages).
_FX_MPI_PACKAGES="openmpi-bin libopenmpi-dev gcc libc6-dev"

# The program run by tests/e2e/test_mpi.sh: every rank takes part in a
# ring exchange and an allreduce (so a broken transport fails or hangs
# instead of passing), then prints "rank R of N ...".
_fx_hello_mpi_c () {
    cat <<'CEOF'
#include <mpi.h>
#include <stdio.h>

int
main (int argc, char **argv)
{
    int rank, size, len, from = -1, sum = 0;
    char host[MPI_MAX_PROCESSOR_NAME];

    MPI_Init (&argc, &argv);
    MPI_Comm_rank (MPI_COMM_WORLD, &rank);
    MPI_Comm_size (MPI_COMM_WORLD, &size);
    MPI_Get_processor_name (host, &len);
    MPI_Sendrecv (&rank, 1, MPI_INT, (rank + 1) % size, 0, &from, 1, MPI_INT,
                  (rank + size - 1) % size, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Allreduce (&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf ("rank %d of %d on %s (from %d, sum %d)\n", rank, size, host, from, sum);
    MPI_Finalize ();
    return 0;
}
CEOF
}

# Runs inside a private mount namespace: /proc for the chroot's package
# scripts disappears with the namespace, whatever happens.
_fx_mpi_chroot_setup () {   # TREE PACKAGES
    local t=$1 pkgs=$2
    mount -t proc proc "$t/proc" || return 1
    chroot "$t" /bin/sh -c "
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs &&
        apt-get clean && rm -rf /var/lib/apt/lists/* &&
        mpicc -O2 -o /opt/hello_mpi /opt/hello_mpi.c && dpkg-query -W openmpi-bin libopenmpi3 libpmix2" || return 1
}

_fx_make_mpi_sif () {   # TMPFILE ROOTDIR CAPSA
    local out=$1 root=$2 capsa=$3 tree rc
    [ -n "$out" ] && [ -d "$root" ] && [ -x "$capsa" ] || { echo "bad arguments [$out] [$root] [$capsa]"; return 1; }
    tree=$(mktemp -d "$out.tree.XXXXXX") || return 1
    (
        cp -a "$root/." "$tree/" || exit 1
        mkdir -p "$tree/opt" || exit 1
        _fx_hello_mpi_c > "$tree/opt/hello_mpi.c" || exit 1
        export -f _fx_mpi_chroot_setup
        unshare -m --propagation private bash -c '_fx_mpi_chroot_setup "$1" "$2"' _ "$tree" "$_FX_MPI_PACKAGES" || exit 1
        rm -f "$out" && _fx_make_sqfs "$out.sqfs" "$tree" || exit 1
        "$capsa" sif new "$out" || exit 1
        "$capsa" sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$out" "$out.sqfs" || exit 1
    )
    rc=$?
    rm -rf --one-file-system "$tree" "$out.sqfs"
    return $rc
}

# fixture_mpi_sif: a SIF of Debian bookworm minbase with Open MPI, a
# compiler and /opt/hello_mpi (source above), built by the image's own
# mpicc.  Made with $CAPSA sif (else `capsa` on PATH); needs the network
# (Debian's mirror) the first time.
fixture_mpi_sif () {
    local root key capsa=${CAPSA:-$(command -v capsa)}
    root=$(fixture_minbase) || return 1
    key=$(printf '%s\n' "${root##*/}" "$_FX_MPI_RECIPE" "$_FX_SQFS_RECIPE" "$_FX_MPI_PACKAGES" \
        "$(_fx_hello_mpi_c)" | _fx_sha)
    _fx_build "mpi-$key.sif" file _fx_make_mpi_sif "$root" "$capsa"
}

# ---------------------------------------------------------------- ping SIF (capsa build)

# The definition file of fixture_ping_sif: Debian bookworm by debootstrap
# with iputils-ping and libcap2-bin (so that /usr/bin/ping carries
# cap_net_raw as a file capability), a %post, an %environment, a
# %runscript and %labels.  tests/e2e/test_build.sh checks the result.
_fx_ping_def () {
    printf '%s\n' \
        'Bootstrap: debootstrap' \
        'OSVersion: bookworm' \
        "MirrorURL: $(_fx_mirror)" \
        'Include: iputils-ping libcap2-bin' \
        '' \
        '%post' \
        '    echo "made by %post" > /etc/capsa-post.txt' \
        '' \
        '%environment' \
        '    export CAPSA_GREETING="hello from deb.sif"' \
        '' \
        '%runscript' \
        '    echo "greeting: $CAPSA_GREETING"' \
        '' \
        '%labels' \
        '    org.capsa.fixture ping' \
        '    Maintainer capsa-tests'
}

_fx_capsa_bin () { echo "${CAPSA:-${CAPSA_PREFIX:-/opt/capsa-check}/bin/capsa}"; }

_fx_make_ping_sif () {   # TMPFILE CAPSA
    local out=$1 capsa=$2 rc
    [ -n "$out" ] && [ -x "$capsa" ] || { echo "bad arguments [$out] [$capsa]"; return 1; }
    mkdir -p "$CACHE/debs" || return 1
    _fx_ping_def > "$out.def" || return 1
    echo "$capsa build $out (debootstrap: about 10 minutes; .debs kept in $CACHE/debs)"
    CAPSA_DEBOOTSTRAP_CACHE="$CACHE/debs" "$capsa" -q build --force "$out" "$out.def"
    rc=$?
    rm -f "$out.def"
    return $rc
}

# fixture_ping_def: the definition file fixture_ping_sif builds.
fixture_ping_def () { _fx_ping_def; }

# fixture_ping_sif: that definition built by the installed capsa
# ($CAPSA, else $CAPSA_PREFIX/bin/capsa), as root.  Keyed by the sha256 of
# the definition and capsa's build code version (`capsa build
# --code-version`), so a change to either builds a new image.
fixture_ping_sif () {
    local capsa ver key
    capsa=$(_fx_capsa_bin)
    ver=$("$capsa" build --code-version 2> /dev/null) || { _fx_log "$capsa cannot build images"; return 1; }
    key=$(printf '%s\n' "$(_fx_ping_def | sha256sum | cut -d' ' -f1)" "capsa-build-$ver" | _fx_sha)
    _fx_build "ping-$key.sif" file _fx_make_ping_sif "$capsa"
}

# ---------------------------------------------------------------- encrypted images made by others
#
# Encrypted SIF images made the way Apptainer and SingularityCE make them,
# with other people's tools, never capsa: tests/e2e/test_crypt_interop.sh
# runs them.  Every one holds the busybox tree plus /marker (the text of
# fixture_crypt_marker).  Their partitions are laid out as Apptainer's SIF
# assembler (internal/pkg/build/assemblers/sif.go) and the Go sif library
# lay them out, by _fx_sif_apptainer below: definition file, a JSON object,
# the primary partition (fs type 5 or 6), and for RSA keys a cryptographic
# message (PEM, RSA-OAEP) linked to the partition's ID.

_FX_CRYPT_RECIPE=crypt-interop-v1

fixture_crypt_marker () { echo "capsa-crypt-fixture-marker-$_FX_CRYPT_RECIPE"; }

# _fx_sif_apptainer OUT PARTITION FSTYPE [MESSAGE]: a SIF written by a
# small independent writer following github.com/apptainer/sif's layout
# (header, 48 descriptors of 585 bytes at 4096, data objects after them,
# partitions aligned to 4096), not by capsa's SIF code.
_fx_sif_apptainer () {
    python3 - "$@" <<'PYEOF'
import os, struct, sys, time, uuid
out, part, fstype = sys.argv[1], sys.argv[2], int(sys.argv[3])
msg = sys.argv[4] if len(sys.argv) > 4 else None
now = int(time.time())
GROUP = 1 | 0xf0000000
objs = [(0x4001, b"Bootstrap: localimage\nFrom: busybox\n", 0, 0, b""),
        (0x4006, b'{"data":{"attributes":{"labels":{"org.capsa.fixture":"crypt"}}}}', 0, 0, b"")]
objs[1] = objs[1][:4] + (b"inspect-metadata.json",)
objs.append((0x4004, open(part, "rb").read(), 4096, 0, b""))
part_id = len(objs)
if msg:
    objs.append((0x4008, open(msg, "rb").read(), 0, part_id, b""))
cap, doff = 48, 4096
data_off = doff + cap * 585
descs, blobs, pos = [], [], data_off
for i, (dt, data, align, link, name) in enumerate(objs):
    start = pos if not align or pos % align == 0 else pos + align - pos % align
    if dt == 0x4004:
        extra = struct.pack("<ii3s", fstype, 2, b"02\0")          # fs, PrimSys, amd64
    elif dt == 0x4008:
        extra = struct.pack("<ii", 2, 0x200)                      # PEM, RSA-OAEP
    else:
        extra = b""
    descs.append(struct.pack("<iBIIIqqqqqqq128s384s", dt, 1, i + 1, GROUP, link, start, len(data),
                             start - pos + len(data), now, now, 0, 0, name, extra))
    blobs.append((start, data))
    pos = start + len(data)
hdr = struct.pack("<32s10s3s3s16sqqqqqqqq", b"#!/usr/bin/env run-singularity\n", b"SIF_MAGIC\0", b"01\0",
                  b"02\0", uuid.uuid4().bytes, now, now, cap - len(objs), cap, doff, cap * 585, data_off,
                  pos - data_off)
with open(out, "wb") as f:
    f.write(hdr)
    f.seek(doff)
    f.write(b"".join(descs) + b"\0" * (585 * (cap - len(descs))))
    for start, data in blobs:
        f.seek(start)
        f.write(data)
PYEOF
}

# _fx_crypt_tree DIR: the busybox tree plus /marker, in DIR.
_fx_crypt_tree () {
    local d=$1 bb
    bb=$(fixture_busybox_dir) || return 1
    cp -a "$bb/." "$d/" && fixture_crypt_marker > "$d/marker"
}

# _fx_rsa_message PUBLIC SECRET: the key message, as Apptainer's
# cryptkey.EncryptKey makes it, with openssl: the secret cut into chunks of
# k - 66 bytes, each RSA-OAEP (SHA-256, MGF1-SHA-256) encrypted, the
# ciphertexts concatenated into a DER OCTET STRING in a PEM MESSAGE block.
_fx_rsa_message () {
    local pub=$1 secret=$2 k step n o tmp
    k=$(( $(openssl rsa -pubin -RSAPublicKey_in -in "$pub" -noout -text 2>/dev/null | sed -n 's/.*(\([0-9]*\) bit).*/\1/p') / 8 ))
    [ "$k" -gt 66 ] || return 1
    step=$((k - 66)); n=$(stat -c %s "$secret")
    tmp=$(mktemp -d) || return 1
    : > "$tmp/ct"
    for ((o = 0; o < n; o += step)); do
        tail -c +$((o + 1)) "$secret" | head -c "$step" > "$tmp/chunk"
        openssl pkeyutl -encrypt -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
            -pkeyopt rsa_mgf1_md:sha256 -in "$tmp/chunk" >> "$tmp/ct" || { rm -rf "$tmp"; return 1; }
    done
    openssl asn1parse -genstr "FORMAT:HEX,OCTETSTRING:$(od -An -tx1 -v "$tmp/ct" | tr -d ' \n')" -noout \
        -out "$tmp/der" > /dev/null || { rm -rf "$tmp"; return 1; }
    { echo '-----BEGIN MESSAGE-----'; base64 -w 64 "$tmp/der"; echo '-----END MESSAGE-----'; }
    rm -rf "$tmp"
}

_fx_rsa_keypair () {   # DIR BITS: DIR/rsaBITS.pem (PKCS#1 private), DIR/rsaBITS.pub (PKCS#1 public)
    openssl genrsa -traditional -out "$1/rsa$2.pem" "$2" 2> /dev/null &&
        openssl rsa -in "$1/rsa$2.pem" -RSAPublicKey_out -out "$1/rsa$2.pub" 2> /dev/null
}

# _fx_luks_container PLAIN OUT SECTOR KEYFILE PBKDF-OPTIONS...: a LUKS2
# container file as `cryptsetup luksFormat` + dm-crypt would leave it
# (16 MiB header area, the data segment after it), made without
# device-mapper: cryptsetup's own offline encryption of the data in place
# with a detached header whose data offset is 16 MiB, then that header
# copied over the first 16 MiB.
_fx_luks_container () {
    local plain=$1 out=$2 ss=$3 key=$4 s; shift 4
    s=$(stat -c %s "$plain") || return 1
    rm -f "$out" "$out.hdr"
    truncate -s 16M "$out" && cat "$plain" >> "$out" && truncate -s $((16777216 + (s + ss - 1) / ss * ss)) "$out" &&
        cryptsetup reencrypt --encrypt --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size "$ss" \
            --header "$out.hdr" --offset 32768 --force-offline-reencrypt --batch-mode --key-file "$key" "$@" "$out" &&
        dd if="$out.hdr" of="$out" conv=notrunc status=none || { rm -f "$out.hdr"; return 1; }
    rm -f "$out.hdr"
}

_FX_LUKS_KDF="--pbkdf argon2id --pbkdf-memory 65536 --pbkdf-force-iterations 4 --pbkdf-parallel 4"

_fx_make_luks_set () {   # TMPDIR
    local d=$1 ss bits
    [ -n "$d" ] && [ -d "$d" ] || return 1
    mkdir "$d/.tree" && _fx_crypt_tree "$d/.tree" &&
        mksquashfs "$d/.tree" "$d/plain.sqfs" -noappend -quiet -no-progress -all-root -comp gzip || return 1
    rm -rf "$d/.tree"
    printf '%s' "luks fixture passphrase $_FX_CRYPT_RECIPE" > "$d/passphrase"
    _fx_rsa_keypair "$d" 2048 && _fx_rsa_keypair "$d" 1024 || return 1
    for ss in 512 4096; do
        # shellcheck disable=SC2086
        _fx_luks_container "$d/plain.sqfs" "$d/.part" "$ss" "$d/passphrase" $_FX_LUKS_KDF &&
            _fx_sif_apptainer "$d/pass-$ss.sif" "$d/.part" 5 || return 1
        for bits in 2048 1024; do
            head -c 64 /dev/urandom > "$d/.secret" &&
                _fx_luks_container "$d/plain.sqfs" "$d/.part" "$ss" "$d/.secret" $_FX_LUKS_KDF &&
                _fx_rsa_message "$d/rsa$bits.pub" "$d/.secret" > "$d/.msg" &&
                _fx_sif_apptainer "$d/rsa$bits-$ss.sif" "$d/.part" 5 "$d/.msg" || return 1
        done
    done
    # A passphrase keyslot as cryptsetup benchmarks it on a big node: 1 GiB
    # of Argon2id (the KDF cost capsa -v reports).
    _fx_luks_container "$d/plain.sqfs" "$d/.part" 4096 "$d/passphrase" \
        --pbkdf argon2id --pbkdf-memory 1048576 --pbkdf-force-iterations 4 --pbkdf-parallel 4 &&
        _fx_sif_apptainer "$d/pass-1g.sif" "$d/.part" 5 || return 1
    rm -f "$d/.part" "$d/.secret" "$d/.msg"
    chmod 0644 "$d"/*
}

# fixture_luks_set: a directory of LUKS2 SIF images made with cryptsetup
# (no capsa code): pass-512.sif, pass-4096.sif (passphrase in ./passphrase),
# rsa2048-512.sif, rsa2048-4096.sif, rsa1024-512.sif, rsa1024-4096.sif
# (private keys rsa2048.pem, rsa1024.pem: PKCS#1; the 1024-bit key message
# is chunked), pass-1g.sif (1 GiB Argon2id keyslot), and plain.sqfs, the
# squashfs they hold.
fixture_luks_set () {
    local key
    key=$(printf '%s\n' "$_FX_CRYPT_RECIPE" "$_FX_LUKS_KDF" "$(cryptsetup --version)" "$(fixture_busybox_dir)" |
        _fx_sha)
    _fx_build "luks-set-$key" dir _fx_make_luks_set
}

# _fx_gocryptfs_image TREE OUT PASSWORD [MKSQUASHFS-OUTER-OPTIONS]: the
# partition Apptainer's Gocryptfs packer makes
# (internal/pkg/image/packer/gocryptfs.go): gocryptfs -init
# -deterministic-names -plaintextnames, the squashfs written through a
# gocryptfs mount as squashfs-NNN, then an outer squashfs of the
# ciphertext file and gocryptfs.conf (-noD -noF unless told otherwise).
# Also leaves OUT.inner, the inner squashfs, read back through the mount.
_fx_gocryptfs_image () {
    local tree=$1 out=$2 pw=$3 w rc=0; shift 3
    [ $# -gt 0 ] || set -- -noD -noF
    w=$(mktemp -d "$out.gc.XXXXXX") || return 1
    mkdir "$w/cipher" "$w/plain" || return 1
    if printf '%s\n%s\n' "$pw" "$pw" | gocryptfs -q -init -deterministic-names -plaintextnames "$w/cipher" &&
        printf '%s\n' "$pw" | gocryptfs -q -nosyslog "$w/cipher" "$w/plain"; then
        mksquashfs "$tree" "$w/plain/squashfs-2710596481" -noappend -quiet -no-progress -all-root -comp gzip &&
            cp "$w/plain/squashfs-2710596481" "$out.inner" || rc=1
        fusermount3 -u "$w/plain" 2> /dev/null || umount "$w/plain" || rc=1
        [ $rc = 0 ] && mksquashfs "$w/cipher/squashfs-2710596481" "$w/cipher/gocryptfs.conf" "$out" -noappend \
            -quiet -no-progress -all-root -comp gzip "$@" || rc=1
    else
        rc=1
    fi
    rm -rf --one-file-system "$w"
    return $rc
}

_fx_make_gocryptfs_set () {   # TMPDIR
    local d=$1 hex
    [ -n "$d" ] && [ -d "$d" ] || return 1
    command -v gocryptfs > /dev/null || { echo "gocryptfs missing (apt-get install gocryptfs)"; return 1; }
    mkdir "$d/.tree" && _fx_crypt_tree "$d/.tree" || return 1
    printf '%s' "gocryptfs fixture passphrase $_FX_CRYPT_RECIPE" > "$d/passphrase"
    _fx_gocryptfs_image "$d/.tree" "$d/.pass" "$(cat "$d/passphrase")" &&
        _fx_sif_apptainer "$d/pass.sif" "$d/.pass" 6 && mv "$d/.pass.inner" "$d/pass.inner.sqfs" || return 1
    # Not what Apptainer makes: the outer squashfs compressed, with a tail
    # fragment (capsa then reads the ciphertext through libsquashfs).
    _fx_gocryptfs_image "$d/.tree" "$d/.packed" "$(cat "$d/passphrase")" -b 65536 &&
        _fx_sif_apptainer "$d/pass-packed.sif" "$d/.packed" 6 || return 1
    # RSA, as cryptkey + the Gocryptfs packer: the password is the hex MD5
    # of 32 random bytes, wrapped for the public key.
    for bits in 2048 1024; do
        _fx_rsa_keypair "$d" "$bits" || return 1
        hex=$(head -c 32 /dev/urandom | md5sum | cut -c1-32)
        printf '%s' "$hex" > "$d/.secret"
        _fx_gocryptfs_image "$d/.tree" "$d/.rsa" "$hex" && _fx_rsa_message "$d/rsa$bits.pub" "$d/.secret" > "$d/.msg" &&
            _fx_sif_apptainer "$d/rsa$bits.sif" "$d/.rsa" 6 "$d/.msg" || return 1
    done
    rm -rf "$d/.tree" "$d/.pass" "$d/.packed" "$d/.packed.inner" "$d/.rsa" "$d/.rsa.inner" "$d/.secret" "$d/.msg"
    chmod 0644 "$d"/*
}

# fixture_gocryptfs_set: a directory of fs-type-6 SIF images made with
# Debian's gocryptfs and mksquashfs (no capsa code): pass.sif (passphrase
# in ./passphrase), rsa2048.sif and rsa1024.sif (private keys rsa2048.pem,
# rsa1024.pem), pass-packed.sif (outer squashfs compressed, 64 KiB blocks,
# with fragments) and pass.inner.sqfs, the squashfs inside pass.sif.
fixture_gocryptfs_set () {
    local key
    key=$(printf '%s\n' "$_FX_CRYPT_RECIPE" "$(gocryptfs -version 2>/dev/null | head -n 1)" "$(fixture_busybox_dir)" |
        _fx_sha)
    _fx_build "gocryptfs-set-$key" dir _fx_make_gocryptfs_set
}
