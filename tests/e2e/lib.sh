# Helpers for capsa's end-to-end tests.  Sourced by tests/e2e/test_*.sh,
# which tests/run.sh runs one by one as root.  Each check records one line
# "PASS name" or "FAIL name: why" in $RESULTS; run.sh counts them.
#
# Variables set by run.sh:
#   CAPSA_PREFIX   the install prefix under test (setuid starter inside)
#   CAPSA          $CAPSA_PREFIX/bin/capsa
#   FIXTURES       ../shared/fixtures
#   CACHE          /var/cache/capsa-test (slow fixtures, reused between runs)
#   TUSER, TUSER2  unprivileged test users (created by tests/setup.sh)
#   IMG_DIR        a small busybox directory image
#   IMG_SQFS       the same tree as a bare squashfs file
#   WORK           a scratch directory for this test file, removed afterwards
#   HELPERS        tests/helpers/*.c compiled by tests/setup.sh
#   CAPSA_TEST_TAG prefix of every check name ("[nosys] " when run.sh runs
#                  the file again under tests/helpers/nosys); NOSYS=1 then
#
# A check that cannot run here is a skip (`skip NAME WHY`, a "SKIP" line),
# never a pass.

set -u
NOSYS=${NOSYS:-0}

pass () { echo "PASS ${CAPSA_TEST_TAG:-}$1" >> "$RESULTS"; echo "ok - ${CAPSA_TEST_TAG:-}$1"; }
fail () { echo "FAIL ${CAPSA_TEST_TAG:-}$1: $2" >> "$RESULTS"; echo "not ok - ${CAPSA_TEST_TAG:-}$1: $2"; }
skip () { echo "SKIP ${CAPSA_TEST_TAG:-}$1: $2" >> "$RESULTS"; echo "ok - ${CAPSA_TEST_TAG:-}$1 # SKIP $2"; }

# check NAME COMMAND...: passes when COMMAND exits 0.
check () {
    local name=$1; shift
    if "$@" > "$WORK/.out" 2>&1; then pass "$name"; else fail "$name" "command failed: $* => $(head -c 600 "$WORK/.out")"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq () {
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1" "expected [$2] got [$3]"; fi
}

# expect_match NAME REGEX ACTUAL (grep -E on the text)
expect_match () {
    if printf '%s\n' "$3" | grep -qE -- "$2"; then pass "$1"; else fail "$1" "expected /$2/ in [$(printf '%s' "$3" | head -c 600)]"; fi
}

# expect_nomatch NAME REGEX ACTUAL.  An absent string proves nothing when the
# command failed before it could print it: check $RC (expect_rc) beside it.
expect_nomatch () {
    if printf '%s\n' "$3" | grep -qE -- "$2"; then fail "$1" "unexpected /$2/ in [$(printf '%s' "$3" | head -c 600)]"; else pass "$1"; fi
}

# expect_rc NAME EXPECTED: the status of the last run/run_user, output shown
# on failure.
expect_rc () {
    if [ "$RC" == "$2" ]; then pass "$1"; else fail "$1" "exit $RC, expected $2: $(printf '%s' "$OUT" | head -c 600)"; fi
}

# expect_absent NAME PATH...: none of the paths exists (not even as a
# dangling symlink).
expect_absent () {
    local name=$1 p found=; shift
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then found+=" $(ls -ld "$p" 2>&1)"; fi
    done
    if [ -z "$found" ]; then pass "$name"; else fail "$name" "exists:$found"; fi
}

# Run a shell command line as the unprivileged test user, in a login-like
# environment with HOME set.  Output and status come back.
as_user () {
    local u=$1; shift
    runuser -u "$u" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$(getent passwd "$u" | cut -d: -f6)" \
        USER="$u" LOGNAME="$u" TERM=dumb sh -c "cd ~ && $*"
}

# Run capsa and capture stdout+stderr in $OUT, status in $RC.
run () { OUT=$("$@" 2>&1); RC=$?; }
run_user () { OUT=$(as_user "$TUSER" "$@" 2>&1); RC=$?; }
run_as () { local u=$1; shift; OUT=$(as_user "$u" "$@" 2>&1); RC=$?; }

# proc_gone PID: the process has ended (a zombie counts as ended: whatever
# PID 1 is here may not reap orphans).
proc_gone () {
    local st
    st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}

# No capsa mount may remain in the host's mount table after a run.
no_leftover_mounts () {
    if grep -q capsa /proc/self/mountinfo; then
        fail "$1" "mounts left: $(grep capsa /proc/self/mountinfo | head -3)"
    else
        pass "$1"
    fi
}
