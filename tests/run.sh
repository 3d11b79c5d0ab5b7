#!/usr/bin/env bash
# Runs capsa's whole test suite and ends with "N passed, N failed, N skipped".
# Called by `make check`; needs root (it creates test users and installs a
# setuid starter).  Environment: CAPSA_PREFIX (installed capsa under test),
# CAPSA_BUILDDIR (where the unit-test binaries are), CAPSA_SAN=1 for the
# sanitizer build.  TESTS="sif exec" runs only tests/e2e/test_{sif,exec}.sh
# (test_starter_links.sh, a few seconds of readelf, always runs).
#
# Every check is one line in $RESULTS: "PASS name", "FAIL name: why" or
# "SKIP name: why".  A skip is never counted as a pass (a TAP "ok N - ...
# # SKIP why" line from a unit test is a skip), and a run with no pass at
# all fails.
#
# The tests in NOSYS_TESTS run a second time under tests/helpers/nosys, a
# seccomp filter that makes openat2, close_range and mount_setattr fail
# with ENOSYS as on an older kernel (inherited by runuser, capsa, the
# setuid starter and the container); their check names start "[nosys] ".
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
: "${CAPSA_PREFIX:?}" "${CAPSA_BUILDDIR:?}"
export CAPSA_PREFIX CAPSA="$CAPSA_PREFIX/bin/capsa"
export FIXTURES=${FIXTURES:-$top/../shared/fixtures}
export CACHE=${CAPSA_TEST_CACHE:-/var/cache/capsa-test}
export TOP=$top
NOSYS_TESTS="exec attacks"
if [ "${CAPSA_SAN:-}" = 1 ]; then
    # LeakSanitizer cannot run under a setuid or ptrace-restricted process;
    # leaks are checked by the unit tests and fuzzers instead.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99
fi

if [ "$(id -u)" != 0 ]; then echo "tests/run.sh must run as root" >&2; exit 2; fi

RESULTS=$(mktemp /tmp/capsa-results.XXXXXX); export RESULTS
HELPERS=
trap 'rm -f "$RESULTS"; [ -n "$HELPERS" ] && rm -rf "$HELPERS"' EXIT

# Users, /dev/fuse, images: tests/setup.sh is idempotent and caches slow parts.
if ! source "$here/setup.sh"; then
    echo "FAIL setup" >> "$RESULTS"
fi

# C unit tests (TAP).  "ok N - name # SKIP why" is a skip.
for t in "$CAPSA_BUILDDIR"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | sed "s/^/[$name] /"
    printf '%s\n' "$out" | grep -E '^ok ' | grep -viE '^ok [0-9]+[^#]*#[[:space:]]*skip' \
        | sed "s/^ok [0-9]* - /PASS $name: /" >> "$RESULTS"
    printf '%s\n' "$out" | grep -iE '^ok [0-9]+[^#]*#[[:space:]]*skip' \
        | sed -E "s/^ok [0-9]+( - )?([^#]*)#[[:space:]]*[Ss][Kk][Ii][Pp][[:alpha:]]*[[:space:]]*/SKIP $name: \2/" >> "$RESULTS"
    printf '%s\n' "$out" | grep -E '^not ok ' | sed "s/^not ok [0-9]* - /FAIL $name: /" >> "$RESULTS"
    if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok '; then
        echo "FAIL $name: exited $rc" >> "$RESULTS"
    fi
done

selected () { [ -z "${TESTS:-}" ] || [[ " $TESTS starter_links " == *" $1 "* ]]; }

# run_e2e TAG NAME FILE [WRAPPER...]: one end-to-end file in its own
# scratch directory, in a fresh bash (optionally under a wrapper program)
# with the fixtures' functions and lib.sh; check names start with TAG.
run_e2e () {
    local tag=$1 base=$2 t=$3 start; shift 3
    echo "== $tag$base"
    WORK=$(mktemp -d /tmp/capsa-e2e.XXXXXX); chmod 0755 "$WORK"; export WORK
    start=$(date +%s)
    CAPSA_TEST_TAG=$tag NOSYS=$(( $# > 0 )) \
        "$@" bash -c 'source "$TOP/tests/fixtures.sh" && cd "$WORK" && source "$1" && source "$2"' run-e2e \
        "$here/e2e/lib.sh" "$t" || echo "FAIL $tag$base: script exited $?" >> "$RESULTS"
    rm -rf "$WORK"
    echo "   ($(( $(date +%s) - start ))s)"
}

# The wrapper must really take the three system calls away, or the second
# runs prove nothing (checked on the host, through runuser).
result () { echo "$1 $2" >> "$RESULTS"; echo "$1 $2"; }
nosys_ready=0
for base in $NOSYS_TESTS; do selected "$base" && nosys_ready=1; done
if [ "$nosys_ready" = 1 ]; then
    name="[nosys] the wrapper makes openat2, close_range, mount_setattr fail with ENOSYS (through runuser)"
    out=$("$HELPERS/nosys" runuser -u "$TUSER" -- "$HELPERS/sysprobe" openat2 close_range mount_setattr 2>&1)
    if [ "$out" = "$(printf 'openat2=ENOSYS\nclose_range=ENOSYS\nmount_setattr=ENOSYS')" ]; then
        result PASS "$name"
    else
        result FAIL "$name: $out"
        nosys_ready=0
    fi
    name="without the wrapper none of them is ENOSYS"
    out=$(runuser -u "$TUSER" -- "$HELPERS/sysprobe" openat2 close_range mount_setattr 2>&1)
    if [ -n "$out" ] && ! printf '%s\n' "$out" | grep -q ENOSYS; then result PASS "$name"; else result FAIL "$name: $out"; fi
fi

for t in "$here"/e2e/test_*.sh; do
    base=$(basename "$t" .sh); base=${base#test_}
    selected "$base" || continue
    run_e2e "" "$base" "$t"
    if [[ " $NOSYS_TESTS " == *" $base "* ]]; then
        if [ "$nosys_ready" = 1 ]; then
            run_e2e "[nosys] " "$base" "$t" "$HELPERS/nosys"
        else
            result SKIP "[nosys] $base: the ENOSYS wrapper does not work here"
        fi
    fi
done

echo
grep '^SKIP' "$RESULTS" || true
grep '^FAIL' "$RESULTS" || true
passed=$(grep -c '^PASS' "$RESULTS")
failed=$(grep -c '^FAIL' "$RESULTS")
skipped=$(grep -c '^SKIP' "$RESULTS")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
