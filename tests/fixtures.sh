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
