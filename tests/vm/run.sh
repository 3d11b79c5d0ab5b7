#!/usr/bin/env bash
# Runs the tests that need the kernel's dm-crypt, in a VM (tests/vm/vm.sh),
# and ends with "N passed, N failed" like tests/run.sh.  Called by
# `make check-vm` as root; environment as tests/run.sh (CAPSA_PREFIX).
# TESTS="dmcrypt" runs only tests/vm/test_dmcrypt.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${CAPSA_PREFIX:?}"
export CAPSA_PREFIX CAPSA="$CAPSA_PREFIX/bin/capsa"
export FIXTURES=${FIXTURES:-$top/../shared/fixtures}
export CACHE=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}
export TOP=$top

if [ "$(id -u)" != 0 ]; then echo "tests/vm/run.sh must run as root" >&2; exit 2; fi

RESULTS=$(mktemp /tmp/capsa-results.XXXXXX); export RESULTS
trap 'rm -f "$RESULTS"' EXIT

# Users, /dev/fuse, the busybox fixture: as tests/run.sh.
if ! source "$top/tests/setup.sh"; then
    echo "FAIL setup" >> "$RESULTS"
fi
trap 'rm -f "$RESULTS"; rm -rf "${HELPERS:-}"' EXIT

for t in "$here"/test_*.sh; do
    base=$(basename "$t" .sh); base=${base#test_}
    if [ -n "${TESTS:-}" ] && ! [[ " $TESTS " == *" $base "* ]]; then continue; fi
    echo "== vm $base"
    WORK=$(mktemp -d /tmp/capsa-vm-e2e.XXXXXX); chmod 0755 "$WORK"; export WORK
    start=$(date +%s)
    ( cd "$WORK" && source "$top/tests/e2e/lib.sh" && source "$t" ) || echo "FAIL vm $base: script exited $?" >> "$RESULTS"
    rm -rf "$WORK"
    echo "   ($(( $(date +%s) - start ))s)"
done

echo
grep '^FAIL' "$RESULTS" || true
passed=$(grep -c '^PASS' "$RESULTS")
failed=$(grep -c '^FAIL' "$RESULTS")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
