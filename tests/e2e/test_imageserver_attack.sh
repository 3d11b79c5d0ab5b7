# A user's image server that lies (review finding F1, fixed in 8b8d87f).
#
# The image server runs as the user, so the user can put a program of their
# own at its socket: the monitor checks only that the peer is the user
# (SO_PEERCRED), which it is.  tests/helpers/lyingsrv takes the container's
# /dev/fuse connection there and serves a copy of the busybox tree with a
# directory /a/b, except that a lookup of "a" is answered with a symlink to
# a directory of $TUSER2 that $TUSER cannot enter: to root's lookups only
# ("root"), or to every lookup after the N-th ("after:N", swept so that the
# flip lands on each lookup capsa makes).  The bind destination /a/b/c
# makes capsa create /a and /a/b in its own layer with the image's owner
# and mode.  Before the fix root read them with fstatat through the path,
# following the symlink onto the host: /a/b in the container had the mode
# and owner of $TUSER2's hidden directory, and capsa failed where it was
# missing.  Now nothing of the host path may show: for each lie, the run
# with the hidden directory present and the run with it absent must end
# alike (exit 255 with a FATAL line, or a container that ran), and the
# hidden directory's mode and owner must appear nowhere.
#
# Setuid mode only: with --userns every access is the user's own anyway.
U=$TUSER
V=$TUSER2
UID_U=$(id -u "$U")
UID_V=$(id -u "$V")
IMGFUSE=$CAPSA_PREFIX/libexec/capsa/imagefuse
LIAR=$HELPERS/lyingsrv
BGPIDS=()
cleanup () {
    local p
    for p in "${BGPIDS[@]}"; do kill -9 "$p" 2> /dev/null; done
    for p in "${BGPIDS[@]}"; do wait "$p" 2> /dev/null; done
}
trap cleanup EXIT

# The user's image (its own inode: no server of another run serves it),
# the tree the lying server serves, a bind source, and $V's hidden
# directory (0700) with a directory of a mode nothing else here has.
cp "$IMG_SQFS" "$WORK/img.sqfs" && chmod 0644 "$WORK/img.sqfs"
cp -a "$IMG_DIR" "$WORK/tree" && mkdir -m 0755 -p "$WORK/tree/a/b" && chown -R "$U:" "$WORK/tree/a"
mkdir -p "$WORK/bsrc" "$WORK/v-hidden/b" "$WORK/v-empty" && chown "$U" "$WORK/bsrc"
chmod 0715 "$WORK/v-hidden/b" && chmod 0700 "$WORK/v-hidden" "$WORK/v-empty"
chown -R "$V:" "$WORK/v-hidden" "$WORK/v-empty"
SECRET="^715 |^[0-7]+ $UID_V |Permission denied"
run_as "$U" "stat -c '%a %u' $WORK/v-hidden/b"
expect_match "setup: $U cannot stat $V's hidden directory" "Permission denied" "$OUT"
expect_eq "setup: ... which root sees as mode 715, owner $V" "715 $UID_V $UID_V" "$(stat -c '%a %u %g' "$WORK/v-hidden/b")"

# The socket the user's monitor looks for: the name of the real server a
# first container of the image started (the user can see their own
# processes), which the user then stops.
run_user "$CAPSA exec $WORK/img.sqfs /bin/true"
srv= name=
for p in $(pgrep -u "$U" -x imagefuse); do
    [ "$(readlink "/proc/$p/exe")" = "$IMGFUSE" ] || continue
    ls -l "/proc/$p/fd" 2> /dev/null | grep -qF -- "$WORK/img.sqfs" || continue
    srv=$p
    name=$(tr '\0' '\n' < "/proc/$p/cmdline" | grep -A1 -x -- --name | tail -n +2)
done
rundir=/tmp/capsa-$UID_U
[ -d "/run/user/$UID_U" ] && rundir=/run/user/$UID_U/capsa
if [ -z "$srv" ] || [ -z "$name" ]; then
    fail "setup: the user's image server of the image and its socket" "server '$srv', name '$name' (exit $RC: $OUT)"
    return 0
fi
pass "setup: the user's image server of the image and its socket"
as_user "$U" "kill $srv"
for _ in $(seq 50); do proc_gone "$srv" && break; sleep 0.1; done

# lie MODE TARGET: one container of the image served by the lying server;
# $OUT and $RC, the server's log in $LOG.
lie () {
    local pid
    LOG=$WORK/log-${1/:/-}-$(basename "$2")
    : > "$LOG" && chown "$U" "$LOG"
    as_user "$U" "exec $LIAR $rundir/$name $WORK/tree $2 $1 $LOG" &
    pid=$!
    BGPIDS+=("$pid")
    for _ in $(seq 100); do [ -S "$rundir/$name" ] && break; sleep 0.05; done
    run_user "$CAPSA -v exec -B $WORK/bsrc:/a/b/c $WORK/img.sqfs sh -c 'stat -c \"%a %u %g\" /a/b /a; echo ran'"
    for _ in $(seq 50); do proc_gone "$pid" && break; sleep 0.1; done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
}

# outcome: what capsa's run showed, its own words and the command's.
outcome () {
    printf 'exit %s\n' "$RC"
    printf '%s\n' "$OUT" | grep -v '^VERBOSE:'
}

for mode in root after:0 after:1 after:2 after:3 after:4 after:5 after:6; do
    lie "$mode" "$WORK/v-hidden"
    hidden=$(outcome) log_hidden=$(cat "$LOG")
    expect_match "lying server ($mode): the container's connection went to the user's own program" \
        "^VERBOSE: image server: joined the running server" "$OUT"
    expect_match "lying server ($mode): it answered a lookup of the directory /a with a symlink to $V's directory" \
        "^lookup a uid=[0-9]+ symlink$" "$log_hidden"
    expect_match "lying server ($mode): capsa refused (exit 255, FATAL) or the container ran" \
        "^exit 255 FATAL: |^exit [0-9]+ .*ran$" "$(printf '%s' "$hidden" | paste -sd' ')"
    expect_nomatch "lying server ($mode): nothing of $V's hidden directory shows (mode 715, owner $UID_V)" \
        "$SECRET" "$OUT"
    lie "$mode" "$WORK/v-empty"
    expect_eq "lying server ($mode): the outcome is the same whether $V's directory holds b or not" \
        "$hidden" "$(outcome)"
done

sleep 0.3
no_leftover_mounts "lying server: nothing left mounted"
left=
for p in "${BGPIDS[@]}"; do proc_gone "$p" || left+=" $p"; done
expect_eq "lying server: every server of this test ended with its container" "" "$left"
