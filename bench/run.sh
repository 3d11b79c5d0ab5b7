#!/usr/bin/env bash
# Start-up benchmarks: capsa against bubblewrap and Charliecloud (ch-run)
# running /bin/true in a Debian bookworm minbase tree, in each of capsa's
# modes, plus SIF start-up against loop/FUSE mount + bwrap.  Called by
# `make bench`; see docs/performance.md for what is measured and why.
#
# Needs root (it runs the root mode itself and the other modes as a test
# user through runuser), hyperfine, and jq or python3.  bwrap, ch-run,
# squashfuse_ll and fusermount3 are the peers: a missing or failing peer is
# reported and left out, the rest still runs.  No crun/podman/docker needed.
#
# Environment:
#   CAPSA_PREFIX   installed capsa to measure           [/opt/capsa-check]
#   BENCH_USER     unprivileged user (made if missing)  [capsa-u1]
#   BENCH_RUNS     hyperfine --runs                     [100]
#   BENCH_WARMUP   hyperfine --warmup                   [5]
#   BENCH_STRICT   1: exit 1 when a goal is not met     [0]
#   BENCH_ONLY     sections to run, of: startup sif build enc images  [all]
#   FIXTURES       shared fixtures (for the SIF probe)  [../shared/fixtures]
#   CAPSA_TEST_CACHE  fixture cache (tests/fixtures.sh) [/var/cache/capsa-test]
# Exit status: 0 when everything ran, 1 when a goal is missed under
# BENCH_STRICT=1 or a capsa command failed, 2 when the bench cannot run.
set -u
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

CAPSA_PREFIX=${CAPSA_PREFIX:-/opt/capsa-check}
CAPSA=$CAPSA_PREFIX/bin/capsa
STARTER=$CAPSA_PREFIX/libexec/capsa/starter
BUSER=${BENCH_USER:-capsa-u1}
RUNS=${BENCH_RUNS:-100}
WARMUP=${BENCH_WARMUP:-5}
FIXTURES=${FIXTURES:-$top/../shared/fixtures}

# Goals: capsa's mean divided by the peer's mean must be at most this.
declare -A GOAL=([root/bwrap]=0.8 [setuid/bwrap]=0.8 [userns/ch-run]=1.0 [sif/loop+bwrap]=0.6
                 [build/mksquashfs]=1.05 [enc-start/capsa-plain]=1.5 [enc-read/capsa-plain]=1.25
                 [enc-start-user/capsa-plain]=1.5)
# Users' images (issue 17): a row's mean over root-kernel's must be at most
# this (root-kernel: root's container, the kernel's squashfs on a loop device).
declare -A IMG_GOAL=([walk/imagefuse]=1.5 [read/imagefuse]=1.25)
want () { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

die () { echo "bench: $*" >&2; exit 2; }
note () { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (it measures root, setuid and user-namespace modes)"
command -v hyperfine > /dev/null || die "hyperfine missing (apt-get install hyperfine)"
[ -x "$CAPSA" ] || die "$CAPSA missing: run 'make bench' or set CAPSA_PREFIX"
if command -v jq > /dev/null; then JSONTOOL=jq
elif command -v python3 > /dev/null; then JSONTOOL=python3
else die "need jq or python3 to read hyperfine's JSON"; fi

# shellcheck source=../tests/fixtures.sh
source "$top/tests/fixtures.sh"
DIR=$(fixture_minbase) || die "cannot make the minbase fixture"
SQFS=$(fixture_minbase_sqfs) || die "cannot make the minbase squashfs fixture"

if ! id -u "$BUSER" > /dev/null 2>&1; then
    useradd -m "$BUSER" || die "cannot create user $BUSER"
fi
[ -u "$STARTER" ] || note "warning: $STARTER is not setuid root: setuid mode cannot work"

TMP=$(mktemp -d /tmp/capsa-bench.XXXXXX) || die "mktemp failed"
chmod 0755 "$TMP"
MNT_LOOP=$TMP/mnt-loop
MNT_FUSE=$TMP/mnt-fuse
RESULTS=$TMP/results.tsv
: > "$RESULTS"
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cleanup () {
    [ -f "$TMP/capsa.conf.saved" ] && cp -p "$TMP/capsa.conf.saved" "$CONF"
    mountpoint -q "$MNT_LOOP" 2>/dev/null && umount "$MNT_LOOP"
    mountpoint -q "$MNT_FUSE" 2>/dev/null && { fusermount3 -u "$MNT_FUSE" || umount -l "$MNT_FUSE"; }
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
CAPSA_FAILED=0

# `make check` installs into and reconfigures the same prefix: notice if the
# installation changes while we measure.
install_stamp () {
    find "$CAPSA_PREFIX" -type f -printf '%p %s %T@ %m\n' 2>/dev/null | sort | md5sum
}
STAMP=$(install_stamp)

# as WHO COMMAND...: run COMMAND as WHO (root or the test user) in a small,
# clean, login-like environment from WHO's home directory, so every runtime
# starts with the same environment (capsa and ch-run pass it on).
as () {
    local who=$1 home; shift
    home=$(getent passwd "$who" | cut -d: -f6)
    set -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME="$home" USER="$who" LOGNAME="$who" TERM=dumb LANG=C.UTF-8 "$@"
    if [ "$who" = root ]; then
        (cd "$home" && "$@")
    else
        (cd "$home" && runuser -u "$who" -- "$@")
    fi
}

# json_means FILE: "NAME<TAB>MEAN<TAB>STDDEV<TAB>MEDIAN" (ms) per hyperfine result.
json_means () {
    if [ "$JSONTOOL" = jq ]; then
        jq -r '.results[] | [.command, .mean * 1000, (.stddev // 0) * 1000, .median * 1000] | @tsv' "$1"
    else
        python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("%s\t%s\t%s\t%s" % (r["command"], r["mean"]*1000, (r.get("stddev") or 0)*1000, r["median"]*1000))' "$1"
    fi
}

# bench MODE WHO SHELL "NAME|COMMAND"...: one hyperfine run, as WHO, over the
# commands that work; SHELL is "none" (-N, command run directly) or "sh"
# (through /bin/sh, hyperfine subtracting the shell's own start-up).  Each
# command is tried once first; a failing one is shown and left out.
# Appends "MODE<TAB>NAME<TAB>MEAN<TAB>SD<TAB>MEDIAN" (or "FAILED") to $RESULTS.
bench () {
    local mode=$1 who=$2 shell=$3 spec name cmd out n=0 outdir failed=''; shift 3
    outdir=$TMP/json-$who
    [ -d "$outdir" ] || install -d -o "$who" -m 0755 "$outdir"
    local hf=(hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS"
              --export-json "$outdir/$mode.json")
    [ -n "${PREPARE:-}" ] && hf+=(--prepare "$PREPARE")
    [ "$shell" = none ] && hf+=(-N)
    echo
    echo "== $mode (as $who)"
    for spec; do
        name=${spec%%|*}; cmd=${spec#*|}
        if out=$(as "$who" sh -c "$cmd" 2>&1 < /dev/null); then
            hf+=(-n "$name" "$cmd"); n=$((n + 1))
        else
            echo "   $name FAILS, left out: $cmd"
            printf '%s\n' "$out" | head -n 8 | sed 's/^/   | /'
            failed+=$(printf '%s\t%s\tFAILED\t\t' "$mode" "$name")$'\n'
            [ "$name" = capsa ] && CAPSA_FAILED=1
        fi
    done
    local rc=0
    if [ $n -eq 0 ]; then
        rc=1
    elif ! as "$who" "${hf[@]}" < /dev/null; then
        echo "   hyperfine failed for $mode; one more try of each command:"
        for spec; do
            name=${spec%%|*}; cmd=${spec#*|}
            out=$(as "$who" sh -c "$cmd" 2>&1 < /dev/null) && continue
            echo "   $name failed (status $?): $cmd"
            printf '%s\n' "$out" | head -n 8 | sed 's/^/   | /'
        done
        printf '%s\tall\tFAILED\t\t\n' "$mode" >> "$RESULTS"
        rc=1
    else
        json_means "$outdir/$mode.json" | sed "s/^/$mode\t/" >> "$RESULTS"
    fi
    printf '%s' "$failed" >> "$RESULTS"   # failed rows after the measured ones
    return $rc
}

# check_mode WHO WANT CAPSA-ARGS...: capsa -v must report "WANT mode".
check_mode () {
    local who=$1 want=$2 got; shift 2
    got=$(as "$who" "$CAPSA" -v "$@" 2>&1 < /dev/null | grep -o '[a-z ]* mode$' | head -n 1)
    [ "$got" = " $want mode" ] || [ "$got" = "$want mode" ] ||
        note "warning: expected capsa in '$want mode' as $who, capsa -v says '${got:-nothing}'"
}

echo "capsa:   $("$CAPSA" version 2>/dev/null | head -n 1) ($CAPSA)"
echo "image:   $DIR"
echo "peers:   $(bwrap --version 2>/dev/null | head -n 1), ch-run $(as root ch-run --version 2>&1 | head -n 1)"
echo "machine: $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "runs:    hyperfine --warmup $WARMUP --runs $RUNS"
# How busy the CPUs are right now (the load average still counts the build).
cpu_busy () {
    local a b
    a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; tot[NR] = 0; for (i = 2; i <= NF; i++) tot[NR] += $i }
        END { d = tot[2] - tot[1]; b = 0; if (d > 0) b = 100 * (1 - (idle[2] - idle[1]) / d); printf "%d\n", b }'
}
busy=$(cpu_busy)
echo "load:    CPUs ${busy}% busy before the runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$busy" -gt 20 ]; then
    note "warning: the machine is busy (${busy}% CPU): figures will be noisy and ratios unreliable"
fi

BWRAP="bwrap --ro-bind $DIR / --proc /proc --dev /dev --unshare-all /bin/true"
CHRUN="ch-run $DIR -- /bin/true"

if want startup; then
check_mode root root exec "$DIR" /bin/true
bench root root none "capsa|$CAPSA exec $DIR /bin/true" "bwrap|$BWRAP" "ch-run|$CHRUN"

check_mode "$BUSER" setuid exec "$DIR" /bin/true
bench setuid "$BUSER" none "capsa|$CAPSA exec $DIR /bin/true" "bwrap|$BWRAP" "ch-run|$CHRUN"

check_mode "$BUSER" "user namespace" exec --userns "$DIR" /bin/true
bench userns "$BUSER" none "capsa|$CAPSA exec --userns $DIR /bin/true" "bwrap|$BWRAP" "ch-run|$CHRUN"
fi

# SIF start-up, as root: capsa mounts the SIF's squashfs partition itself;
# the peers mount the same squashfs (kernel loop device or squashfuse) and
# run bwrap on it, mount and unmount included.
SIF_NOTE=
if ! want sif; then
    :
elif ! "$CAPSA" sif --help 2>&1 | grep -qw new || ! "$CAPSA" sif --help 2>&1 | grep -qw add; then
    SIF_NOTE="SIF rows: skipped (capsa has no 'sif new'/'sif add')"
else
    SIF=$TMP/minbase.sif
    sif_ok=0
    if "$CAPSA" -q sif new "$SIF" &&
       "$CAPSA" -q sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1 "$SIF" "$SQFS" &&
       chmod 0644 "$SIF" && "$CAPSA" exec "$SIF" /bin/true < /dev/null; then
        sif_ok=1
    fi
    ref=$FIXTURES/sif/busybox_amd64.sif
    if [ -f "$ref" ] && ! "$CAPSA" exec "$ref" /bin/true < /dev/null; then
        sif_ok=0
    fi
    if [ $sif_ok = 1 ]; then
        mkdir -p "$MNT_LOOP" "$MNT_FUSE"
        bench sif root sh \
            "capsa|$CAPSA exec $SIF /bin/true" \
            "loop+bwrap|mount -o loop,ro $SQFS $MNT_LOOP && bwrap --ro-bind $MNT_LOOP / --proc /proc --dev /dev --unshare-all /bin/true; umount $MNT_LOOP" \
            "squashfuse+bwrap|squashfuse_ll $SQFS $MNT_FUSE && bwrap --ro-bind $MNT_FUSE / --proc /proc --dev /dev --unshare-all /bin/true; fusermount3 -u $MNT_FUSE"
    else
        SIF_NOTE="SIF rows: skipped (capsa cannot run SIF yet)"
    fi
fi

# capsa build of the minbase tree against mksquashfs alone (gzip), as root.
# Each run takes seconds: fewer runs.
if want build; then
RUNS=${BENCH_BUILD_RUNS:-3} WARMUP=1 bench build root sh \
    "capsa|rm -f $TMP/b.sif && $CAPSA -q build $TMP/b.sif $DIR" \
    "mksquashfs|rm -f $TMP/x.sqfs && mksquashfs $DIR $TMP/x.sqfs -comp gzip -noappend -quiet -no-progress"
rm -f "$TMP/b.sif" "$TMP/x.sqfs"
fi

# Encrypted images, as root: start-up and reading every file, against the
# same image unencrypted.  The RSA image's keyslot uses a cheap KDF, so its
# start-up is the start-up without the KDF; the passphrase image's adds the
# Argon2id unlock, the gocryptfs image's (made with gocryptfs, as
# Apptainer's unprivileged builds make them) the scrypt unlock: both are
# measured apart with `capsa -v` and subtracted (the KDF's cost is the
# image owner's choice, not capsa's overhead).
ENC_NOTE=
# kdf_ms VAR=VALUE IMAGE: mean KDF time (ms) of 5 starts, from capsa -v.
kdf_ms () {
    local i t sum=0
    for i in 1 2 3 4 5; do
        t=$(env "$1" "$CAPSA" -v exec "$2" /bin/true 2>&1 < /dev/null | sed -n 's/.*key derivation .*took \([0-9.]*\) s$/\1/p')
        [ -n "$t" ] || return 1
        sum=$(awk -v a="$sum" -v b="$t" 'BEGIN { print a + b }')
    done
    awk -v s="$sum" 'BEGIN { printf "%.1f", s * 1000 / 5 }'
}
declare -A KDF_MS=()
PLAIN=$TMP/plain.sif
if ! want enc; then
    :
elif "$CAPSA" -q sif new "$PLAIN" &&
   "$CAPSA" -q sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1 "$PLAIN" "$SQFS" &&
   openssl genrsa -traditional -out "$TMP/key.pem" 2048 2>/dev/null &&
   openssl rsa -in "$TMP/key.pem" -RSAPublicKey_out -out "$TMP/key.pub" 2>/dev/null &&
   "$CAPSA" -q encrypt --pem-path "$TMP/key.pub" "$PLAIN" "$TMP/rsa.sif" &&
   CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase "$CAPSA" -q encrypt "$PLAIN" "$TMP/pass.sif"; then
    chmod 0644 "$PLAIN" "$TMP"/*.sif "$TMP/key.pem"
    gc_spec=()
    if command -v gocryptfs > /dev/null && _fx_gocryptfs_image "$DIR" "$TMP/gc.part" bench-passphrase &&
       _fx_sif_apptainer "$TMP/gc.sif" "$TMP/gc.part" 6; then
        chmod 0644 "$TMP/gc.sif"
        gc_spec=("capsa-gocryptfs|CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase $CAPSA exec $TMP/gc.sif /bin/true")
        KDF_MS[capsa-gocryptfs]=$(kdf_ms CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase "$TMP/gc.sif")
    else
        ENC_NOTE="gocryptfs row: skipped (could not make the gocryptfs image)"
    fi
    rm -f "$TMP/gc.part" "$TMP/gc.part.inner"
    KDF_MS[capsa-passphrase]=$(kdf_ms CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase "$TMP/pass.sif")
    bench enc-start root sh \
        "capsa|$CAPSA exec --pem-path $TMP/key.pem $TMP/rsa.sif /bin/true" \
        "capsa-plain|$CAPSA exec $PLAIN /bin/true" \
        "capsa-passphrase|CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase $CAPSA exec $TMP/pass.sif /bin/true" \
        "${gc_spec[@]}"
    TAR="sh -c 'cd / && tar --one-file-system -cf - . | wc -c'"
    PREPARE="sync; echo 3 > /proc/sys/vm/drop_caches" RUNS=${BENCH_READ_RUNS:-5} WARMUP=1 bench enc-read root sh \
        "capsa|$CAPSA exec --pem-path $TMP/key.pem $TMP/rsa.sif $TAR" \
        "capsa-plain|$CAPSA exec $PLAIN $TAR"
else
    ENC_NOTE="encrypted rows: skipped (could not make the encrypted images)"
fi


# ------------------------------------------------------------------ users' images
# A user's SIF (the minbase squashfs) in fresh containers: root's kernel
# mount against the user's image server (setuid mode, the default
# configuration: shared and warm, 'image server linger = 10s'; and cold,
# 'linger = 0', a new server per container) and against squashfuse_ll
# ('image server = squashfuse_ll').  Then 64 concurrent starts of one image
# as the user, and an encrypted image's start-up against the same image in
# clear, as the user.  capsa.conf of CAPSA_PREFIX is changed for the rows
# and restored afterwards.
IMG_NOTE=
declare -A SERVERS_STARTED=()
# use_conf KEY=VALUE...: the saved capsa.conf with these settings.
use_conf () {
    local kv
    cp -p "$TMP/capsa.conf.saved" "$CONF"
    for kv; do
        sed -i "/^${kv%%=*} = /d" "$CONF"
        echo "${kv%%=*} = ${kv#*=}" >> "$CONF"
    done
}
if want images; then
    cp -p "$CONF" "$TMP/capsa.conf.saved"
    USIF=$TMP/user.sif
    if "$CAPSA" -q sif new "$USIF" &&
       "$CAPSA" -q sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1 "$USIF" "$SQFS" &&
       chmod 0644 "$USIF"; then
        cp "$USIF" "$TMP/cold.sif" && chmod 0644 "$TMP/cold.sif"
        cat > "$TMP/start64.sh" <<'SCRIPT'
#!/bin/sh
# 64 containers of one image at once; fails if any of them fails.
pids=
i=0
while [ $i -lt 64 ]; do
    "$1" exec "$2" /bin/true < /dev/null &
    pids="$pids $!"
    i=$((i + 1))
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
exit $rc
SCRIPT
        chmod 0755 "$TMP/start64.sh"
        # interleave ROW ROUNDS: one run of each variant per round, in turn,
        # so that the machine's changing load falls on all of them alike;
        # the first round warms up and is not counted.  Each run is timed
        # inside the user's own shell (no runuser in the figure).  The warm
        # variant's server is kept between rounds ('linger = 60s'); the cold
        # one runs a copy of the image with 'linger = 0' (a new server each
        # time).
        interleave () {
            local row=$1 rounds=$2 r v name who conf img cmd t
            local -a variants=("root-kernel|root||$USIF" "imagefuse|$BUSER|image server linger=60s|$USIF"
                               "imagefuse-cold|$BUSER|image server linger=0|$TMP/cold.sif"
                               "squashfuse_ll|$BUSER|image server=squashfuse_ll|$USIF")
            [ "$row" = start64 ] && unset 'variants[2]'
            echo
            echo "== $row (interleaved, $rounds rounds)"
            for v in "${variants[@]}"; do : > "$TMP/times.$row.${v%%|*}"; done
            for r in $(seq 0 "$rounds"); do
                for v in "${variants[@]}"; do
                    IFS='|' read -r name who conf img <<< "$v"
                    case $row in
                    walk) cmd="$CAPSA exec $img tar cf /dev/null /usr" ;;
                    read) cmd="$CAPSA exec $img sh -c 'find /usr -type f | xargs cat > /dev/null'" ;;
                    start64) cmd="sh $TMP/start64.sh $CAPSA $img" ;;
                    esac
                    if [ -n "$conf" ]; then use_conf "$conf"; else use_conf; fi
                    t=$(as "$who" sh -c "s=\$(date +%s%N); $cmd > /dev/null 2>&1 < /dev/null || echo fail; e=\$(date +%s%N); echo \$(( (e - s) / 1000 ))")
                    case $t in *fail*) echo "   $name FAILED: $cmd"; echo FAILED >> "$TMP/times.$row.$name"; continue ;; esac
                    [ "$r" = 0 ] || echo "$t" >> "$TMP/times.$row.$name"
                done
            done
            for v in "${variants[@]}"; do
                name=${v%%|*}
                if grep -q FAILED "$TMP/times.$row.$name"; then
                    printf '%s\t%s\tFAILED\t\t\n' "$row" "$name" >> "$RESULTS"
                    [ "$name" != root-kernel ] && CAPSA_FAILED=1
                    continue
                fi
                sort -n "$TMP/times.$row.$name" | awk -v m="$row" -v n="$name" '
                    { x[NR] = $1 / 1000; s += x[NR]; q += x[NR] * x[NR] }
                    END { mean = s / NR; sd = NR > 1 ? sqrt((q - NR * mean * mean) / (NR - 1)) : 0
                          med = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
                          printf "%s\t%s\t%s\t%s\t%s\n", m, n, mean, sd, med
                          printf "   %-15s mean %8.1f ms  sd %7.1f  median %8.1f  (%d runs)\n", n, mean, sd, med, NR > "/dev/stderr" }' \
                    >> "$RESULTS"
            done
        }
        interleave walk "${BENCH_WALK_RUNS:-10}"
        interleave read "${BENCH_READ_RUNS:-5}"
        interleave start64 "${BENCH_START64_RUNS:-4}"
        # How many servers 64 concurrent starts start: a copy of the image
        # no server holds yet, run once with -v.
        for how in imagefuse squashfuse_ll; do
            cp "$USIF" "$TMP/count.sif" && chmod 0644 "$TMP/count.sif"
            if [ $how = imagefuse ]; then use_conf; pat="image server: started"; else use_conf "image server=squashfuse_ll"; pat="squashfuse_ll serves"; fi
            : > "$TMP/count.log"
            chmod 0666 "$TMP/count.log"
            t0=$(date +%s.%N)
            as "$BUSER" sh -c "for i in \$(seq 64); do $CAPSA -v exec $TMP/count.sif /bin/true < /dev/null >> $TMP/count.log 2>&1 & done; wait"
            t1=$(date +%s.%N)
            SERVERS_STARTED[$how]="$(grep -c "$pat" "$TMP/count.log") servers started, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s wall (cold)"
            rm -f "$TMP/count.sif"
        done
        use_conf
        # Encrypted start-up as the user (RSA key: no costly KDF).
        if [ -f "$TMP/rsa.sif" ] && [ -f "$PLAIN" ]; then
            # (The passphrase row: the server opened the image once, during
            # the warm-up; a warm server runs no KDF.)
            bench enc-start-user "$BUSER" none \
                "capsa|$CAPSA exec --pem-path $TMP/key.pem $TMP/rsa.sif /bin/true" \
                "capsa-plain|$CAPSA exec $PLAIN /bin/true" \
                "capsa-passphrase|env CAPSA_ENCRYPTION_PASSPHRASE=bench-passphrase $CAPSA exec $TMP/pass.sif /bin/true"
        else
            IMG_NOTE="enc-start-user: skipped (needs the enc section's images)"
        fi
        cp -p "$TMP/capsa.conf.saved" "$CONF"
    else
        IMG_NOTE="users' image rows: skipped (could not make the SIF)"
    fi
fi

# ------------------------------------------------------------------ report
mean_of () { awk -F'\t' -v m="$1" -v n="$2" '$1 == m && $2 == n && $3 != "FAILED" { print $3; exit }' "$RESULTS"; }
median_of () { awk -F'\t' -v m="$1" -v n="$2" '$1 == m && $2 == n && $3 != "FAILED" { print $5; exit }' "$RESULTS"; }

met=0; missed=0; unknown=0; verdicts=()
echo
echo "Start-up time of /bin/true ($RUNS runs each).  Ratio = capsa's mean / the runtime's mean"
echo "(goals apply to it); the median ratio beside it is less sensitive to a busy machine."
echo
echo "| mode | runtime | mean ms | σ ms | median ms | capsa / runtime | (medians) | goal | met |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|"
for mode in root setuid userns sif build enc-start enc-read enc-start-user; do
    grep -q "^$mode	" "$RESULTS" || continue
    cm=$(mean_of "$mode" capsa)
    while IFS=$'\t' read -r m name mean sd median; do
        [ "$m" = "$mode" ] || continue
        [ "$name" = all ] && { echo "| $mode | (hyperfine failed) | | | | | | | |"; continue; }
        ratio='' mratio='' goal=${GOAL[$mode/$name]:-} verdict=''
        if [ "$mean" = FAILED ]; then
            mean_s=failed; sd_s='' median_s=''
        else
            mean_s=$(printf '%.1f' "$mean"); sd_s=$(printf '%.1f' "$sd"); median_s=$(printf '%.1f' "$median")
            if [ "$name" != capsa ] && [ -n "$cm" ]; then
                ratio=$(awk -v a="$cm" -v b="$mean" 'BEGIN { printf "%.2f", a / b }')
                mratio=$(awk -v a="$(median_of "$mode" capsa)" -v b="$median" 'BEGIN { printf "%.2f", a / b }')
            fi
        fi
        if [ -n "$goal" ]; then
            if [ -z "$ratio" ]; then verdict="n/a"; unknown=$((unknown + 1))
            elif awk -v r="$ratio" -v g="$goal" 'BEGIN { exit !(r <= g) }'; then verdict=yes; met=$((met + 1))
            else verdict="**no**"; missed=$((missed + 1)); fi
            verdicts+=("$mode: capsa / $name = ${ratio:-?} (goal ≤ $goal): ${verdict//\*/}; medians ${mratio:-?}")
            goal="≤ $goal"
        fi
        echo "| $mode | $name | $mean_s | $sd_s | $median_s | $ratio | $mratio | $goal | $verdict |"
    done < "$RESULTS"
done
echo

# Users' images: each row against root's kernel mount.
if grep -qE "^(walk|read|start64)	" "$RESULTS"; then
    echo
    echo "A user's SIF against root's: mean over root-kernel's mean (goals apply to it), medians beside it."
    echo "walk: tar cf /dev/null /usr; read: find /usr -type f | xargs cat; start64: 64 concurrent starts."
    echo
    echo "| work | served by | mean ms | σ ms | median ms | / root-kernel | (medians) | goal | met |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---|"
    for mode in walk read start64; do
        rm_=$(mean_of "$mode" root-kernel); rmed=$(median_of "$mode" root-kernel)
        while IFS=$'\t' read -r m name mean sd median; do
            [ "$m" = "$mode" ] || continue
            ratio='' mratio='' goal=${IMG_GOAL[$mode/$name]:-} verdict=''
            if [ "$mean" = FAILED ] || [ "$name" = all ]; then
                echo "| $mode | $name | failed | | | | | | |"; continue
            fi
            if [ "$name" != root-kernel ] && [ -n "$rm_" ]; then
                ratio=$(awk -v a="$mean" -v b="$rm_" 'BEGIN { printf "%.2f", a / b }')
                mratio=$(awk -v a="$median" -v b="$rmed" 'BEGIN { printf "%.2f", a / b }')
            fi
            if [ -n "$goal" ]; then
                if [ -z "$ratio" ]; then verdict="n/a"; unknown=$((unknown + 1))
                elif awk -v r="$ratio" -v g="$goal" 'BEGIN { exit !(r <= g) }'; then verdict=yes; met=$((met + 1))
                else verdict="**no**"; missed=$((missed + 1)); fi
                verdicts+=("$mode: $name / root-kernel = ${ratio:-?} (goal ≤ $goal): ${verdict//\*/}; medians ${mratio:-?}")
                goal="≤ $goal"
            fi
            printf '| %s | %s | %.1f | %.1f | %.1f | %s | %s | %s | %s |\n' "$mode" "$name" "$mean" "$sd" "$median" \
                "$ratio" "$mratio" "$goal" "$verdict"
        done < "$RESULTS"
    done
    echo
    for how in imagefuse squashfuse_ll; do
        [ -n "${SERVERS_STARTED[$how]:-}" ] && echo "64 concurrent starts of one image ($how): ${SERVERS_STARTED[$how]}"
    done
fi
[ -n "${IMG_NOTE:-}" ] && { echo "$IMG_NOTE"; echo; }
[ -n "$SIF_NOTE" ] && { echo "$SIF_NOTE"; echo; }
[ -n "$ENC_NOTE" ] && { echo "$ENC_NOTE"; echo; }
# Encrypted start-up with the KDF taken out (measured apart with capsa -v).
plain_ms=$(mean_of enc-start capsa-plain)
for name in capsa-passphrase capsa-gocryptfs; do
    m=$(mean_of enc-start "$name"); k=${KDF_MS[$name]:-}
    [ -n "$m" ] && [ -n "$k" ] && [ -n "$plain_ms" ] || continue
    awk -v n="$name" -v m="$m" -v k="$k" -v p="$plain_ms" 'BEGIN {
        printf "enc-start: %s %.1f ms, of which KDF %.1f ms (capsa -v); without it %.1f ms = %.2f x the clear image (goal <= 1.5)\n",
            n, m, k, m - k, (m - k) / p }'
done
echo
for v in "${verdicts[@]}"; do echo "$v"; done
echo "Goals: $met met, $missed not met, $unknown not measured."
if [ "$(install_stamp)" != "$STAMP" ]; then
    echo "WARNING: $CAPSA_PREFIX changed during the bench (another 'make check' or install?):"
    echo "         the figures may mix capsa builds or configurations; run it again."
fi

[ $CAPSA_FAILED = 0 ] || exit 1
[ "${BENCH_STRICT:-0}" = 1 ] && [ $missed -gt 0 ] && exit 1
exit 0
