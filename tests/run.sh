#!/usr/bin/env bash
# Runs capsa's whole test suite and ends with "N passed, N failed".
# Called by `make check`; needs root (it creates test users and installs a
# setuid starter).  Environment: CAPSA_PREFIX (installed capsa under test),
# CAPSA_BUILDDIR (where the unit-test binaries are), CAPSA_SAN=1 for the
# sanitizer build.  TESTS="sif exec" runs only tests/e2e/test_{sif,exec}.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
: "${CAPSA_PREFIX:?}" "${CAPSA_BUILDDIR:?}"
export CAPSA_PREFIX CAPSA="$CAPSA_PREFIX/bin/capsa"
export FIXTURES=${FIXTURES:-$top/../shared/fixtures}
export CACHE=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}
export TOP=$top
if [ "${CAPSA_SAN:-}" = 1 ]; then
    # LeakSanitizer cannot run under a setuid or ptrace-restricted process;
    # leaks are checked by the unit tests and fuzzers instead.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99
fi

if [ "$(id -u)" != 0 ]; then echo "tests/run.sh must run as root" >&2; exit 2; fi

RESULTS=$(mktemp /tmp/capsa-results.XXXXXX); export RESULTS
trap 'rm -f "$RESULTS"' EXIT

# Users, /dev/fuse, images: tests/setup.sh is idempotent and caches slow parts.
if ! source "$here/setup.sh"; then
    echo "FAIL setup" >> "$RESULTS"
fi

# C unit tests (TAP).
for t in "$CAPSA_BUILDDIR"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | sed "s/^/[$name] /"
    printf '%s\n' "$out" | grep -E '^ok ' | sed "s/^ok [0-9]* - /PASS $name: /" >> "$RESULTS"
    printf '%s\n' "$out" | grep -E '^not ok ' | sed "s/^not ok [0-9]* - /FAIL $name: /" >> "$RESULTS"
    if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok '; then
        echo "FAIL $name: exited $rc" >> "$RESULTS"
    fi
done

# End-to-end tests, each in its own scratch directory.
for t in "$here"/e2e/test_*.sh; do
    base=$(basename "$t" .sh); base=${base#test_}
    if [ -n "${TESTS:-}" ] && ! [[ " $TESTS " == *" $base "* ]]; then continue; fi
    echo "== $base"
    WORK=$(mktemp -d /tmp/capsa-e2e.XXXXXX); chmod 0755 "$WORK"; export WORK
    start=$(date +%s)
    ( cd "$WORK" && source "$here/e2e/lib.sh" && source "$t" ) || echo "FAIL $base: script exited $?" >> "$RESULTS"
    rm -rf "$WORK"
    echo "   ($(( $(date +%s) - start ))s)"
done

echo
grep '^FAIL' "$RESULTS" || true
passed=$(grep -c '^PASS' "$RESULTS")
failed=$(grep -c '^FAIL' "$RESULTS")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
