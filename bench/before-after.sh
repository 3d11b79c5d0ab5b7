#!/usr/bin/env bash
# Start-up of two installs of capsa side by side (a release against the
# tree, say), interleaved so that the machine's changing load falls on
# both alike: ROUNDS rounds, each one hyperfine run of both commands
# (RUNS runs each), in root, setuid and user-namespace mode, running
# /bin/true in the minbase tree.  Prints, per mode, the ratio of the mean
# times (new / old) and the per-round ratios' spread.
#
#   bash bench/before-after.sh OLD_PREFIX NEW_PREFIX
#
# Environment: ROUNDS [8], RUNS [30], BENCH_USER [capsa-u1],
# CAPSA_TEST_CACHE (tests/fixtures.sh).  Needs root and hyperfine.
set -u
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
[ $# = 2 ] || { echo "usage: $0 OLD_PREFIX NEW_PREFIX" >&2; exit 2; }
OLD=$1/bin/capsa NEW=$2/bin/capsa
for c in "$OLD" "$NEW"; do [ -x "$c" ] || { echo "before-after: $c missing" >&2; exit 2; }; done
[ "$(id -u)" = 0 ] || { echo "before-after: must run as root" >&2; exit 2; }
command -v hyperfine > /dev/null || { echo "before-after: hyperfine missing" >&2; exit 2; }
# shellcheck source=../tests/fixtures.sh
source "$here/../tests/fixtures.sh"
DIR=$(fixture_minbase) || { echo "before-after: cannot make the minbase fixture" >&2; exit 2; }
BUSER=${BENCH_USER:-capsa-u1}
ROUNDS=${ROUNDS:-8} RUNS=${RUNS:-30}
TMP=$(mktemp -d) && chmod 0755 "$TMP" || exit 2
trap 'rm -rf "$TMP"' EXIT
for mode in root setuid userns; do
    flag=; [ $mode = userns ] && flag=--userns
    : > "$TMP/$mode.txt"
    for r in $(seq "$ROUNDS"); do
        out=$TMP/$mode-$r
        mkdir "$out" && chmod 0777 "$out"
        if [ $mode = root ]; then
            hyperfine -N -w 3 -r "$RUNS" --export-json "$out/h.json" "$OLD exec $flag $DIR /bin/true" "$NEW exec $flag $DIR /bin/true" > /dev/null 2>&1
        else
            runuser -u "$BUSER" -- hyperfine -N -w 3 -r "$RUNS" --export-json "$out/h.json" \
                "$OLD exec $flag $DIR /bin/true" "$NEW exec $flag $DIR /bin/true" > /dev/null 2>&1
        fi || { echo "before-after: a run failed ($mode, round $r)" >&2; exit 1; }
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(r[0]["mean"]*1e3, r[1]["mean"]*1e3)' "$out/h.json" >> "$TMP/$mode.txt"
    done
    python3 - "$mode" "$TMP/$mode.txt" << 'PY'
import sys
m, f = sys.argv[1], sys.argv[2]
rows = [list(map(float, l.split())) for l in open(f) if l.strip()]
o = sum(r[0] for r in rows) / len(rows)
n = sum(r[1] for r in rows) / len(rows)
rat = sorted(r[1] / r[0] for r in rows)
print("%-7s old %.2f ms  new %.2f ms  new/old %.3f  (rounds: min %.3f median %.3f max %.3f, %d rounds)"
      % (m, o, n, n / o, rat[0], rat[len(rat) // 2], rat[-1], len(rat)))
PY
done
