# Attacks on the setuid install (issue 12): an unprivileged user ($TUSER)
# against another user ($TUSER2) or root, through the setuid starter and
# again with --userns where the case applies.  Each attack asserts what can
# be observed (exit status, the exact host paths it aimed at, new root-owned
# entries in the directories it targeted, that no secret is printed) and
# sits beside the legitimate use that must keep working.
#
# The targets are harmless if an attack succeeds (empty files in
# directories made for this run, /etc/capsa-attack-probe-*), and everything
# an attack may have made is removed at the end (trap), so that a failing
# run leaves the machine usable.  The numbers are the findings of the issue.

U=$TUSER
V=$TUSER2
UID_U=$(id -u "$U")
UHOME=$(getent passwd "$U" | cut -d: -f6)
VHOME=$(getent passwd "$V" | cut -d: -f6)
STARTER=$CAPSA_PREFIX/libexec/capsa/starter
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"

T=${WORK##*.}                        # unique to this run
UD=$UHOME/capsa-att-$T               # the attacker's own files
RD=/var/tmp/capsa-att-$T-rootdir     # root's 0755 directory below the default /var/tmp bind
X=/tmp/capsa-att-$T-x                # root's 0755 directory below the default /tmp bind
ETCP=/etc/capsa-attack-probe-$T      # what -B /:/host would reach
RPUB=/root/capsa-att-$T              # root's 0755 directory below 0700 /root
VTMP=/tmp/capsa-att-$T-v             # the victim's 0700 directory in /tmp
UTMP=/tmp/capsa-att-$T-u             # the attacker's 0700 directory in /tmp
SH=/var/tmp/capsa-att-$T-shared      # a shared 1777 directory used as an image
VPRIV=$VHOME/capsa-att-$T            # the victim's 0700 directory with an image
RACE=/tmp/capsa-att-$T-race
EVIL=/var/tmp/capsa-att-$T-evil      # an image whose /tmp is a symlink to /etc
VCLOSED=$VHOME/capsa-att-$T-closed   # the victim's 0700 directory, used as an image
A10=/tmp/capsa-att-$T-10             # the attacker's files for the later findings
A11=/tmp/capsa-att-$T-11             # ... and for the second review's
S11=/dev/shm/capsa-att-$T-11
D11=/dev/capsa-att-$T-target         # a root directory on the host's devtmpfs
L12=/dev/capsa-att-$T-link           # an administrator's symlink in the host's /dev
V13=/root/capsa-att-$T-victim        # a root-only file
BGPIDS=()   # processes this file started and has not ended yet

cleanup () {
    local p
    for p in "${BGPIDS[@]}"; do
        case $(ps -o user= -p "$p" 2> /dev/null) in root | "$U" | "$V") kill -9 "$p" ;; esac
    done
    cp "$WORK/conf.orig" "$CONF"
    mountpoint -q "$A10/src/m" 2> /dev/null && { umount "$A10/src/m"; umount "$A10/src/m"; } 2> /dev/null
    rm -rf "$UD" "$RD" "$X" "$ETCP"-* "$RPUB" "$VTMP" "$UTMP" "$SH" "$VPRIV" "$RACE" "$EVIL" "$VCLOSED" "$A10" "$A11" "$S11" "$D11" "$L12" "$V13" \
        "$VHOME/planted-$T"-* "/tmp/capsa-att-$T-probe"-* "/tmp/capsa-att-$T-hostmark"
}
trap cleanup EXIT

# cx MODE ARG...: capsa exec ARG... as root, as $U through the setuid
# starter, or as $U with --userns; $OUT and $RC as for run.
cx () {
    local mode=$1; shift
    case $mode in
    root) run "$CAPSA" exec "$@" ;;
    setuid) run_user "$CAPSA exec $(printf '%q ' "$@")" ;;
    userns) run_user "$CAPSA exec --userns $(printf '%q ' "$@")" ;;
    esac
}

# refused NAME TEXT [REGEX]: exit 255 and a FATAL line containing TEXT
# (and matching the case-insensitive REGEX).  Messages name what is wrong
# (HACKING.md), which tells this refusal from any failure; where the text
# cannot tell, $NEIGHBOUR_FAILED (set when the legitimate neighbour, run
# first, failed) does: a refusal from a capsa that runs nothing proves
# nothing.
NEIGHBOUR_FAILED=
refused () {
    if [ -n "$NEIGHBOUR_FAILED" ]; then
        fail "$1" "the legitimate neighbour failed too, so this refusal proves nothing: $NEIGHBOUR_FAILED"
    elif [ "$RC" = 255 ] && printf '%s\n' "$OUT" | grep '^FATAL:' | grep -qF -- "$2" \
        && { [ -z "${3:-}" ] || printf '%s\n' "$OUT" | grep '^FATAL:' | grep -qiE -- "$3"; }; then
        pass "$1"
    else
        fail "$1" "exit $RC, expected 255 and a FATAL line naming '$2${3:-}': $(printf '%s' "$OUT" | head -c 400)"
    fi
}

# refused_host NAME TEXT: as refused, for attacks through -B /:/host.  On a
# kernel without mount_setattr (the [nosys] pass) the host's / has mounts
# stacked on one another (/dev/pts, /dev/shm here), which the fallback
# cannot all make nosuid,nodev: that bind itself is refused (fail closed),
# which is as good.
refused_host () {
    if [ "$NOSYS" = 1 ] && [ "$RC" = 255 ] \
        && printf '%s\n' "$OUT" | grep -q '^FATAL: .*cannot apply the mount flags to every mount below /host'; then
        pass "$1"
    else
        refused "$@"
    fi
}

# no_new_root_entries NAME STAMP DIR...: nothing owned by root in DIR (not
# recursive) is newer than STAMP; each DIR must exist.
no_new_root_entries () {
    local name=$1 stamp=$2 d found=; shift 2
    for d in "$@"; do
        [ -d "$d" ] || { fail "$name" "$d does not exist"; return; }
        found+=$(find "$d" -mindepth 1 -maxdepth 1 -user root -newer "$stamp" -printf ' %p')
    done
    if [ -z "$found" ]; then pass "$name"; else fail "$name" "new root-owned entries:$found"; fi
}

touch -d "@$(( $(date +%s) - 1 ))" "$WORK/stamp"
mkdir -p "$RD" "$X" && chmod 0755 "$RD" "$X"
as_user "$U" "mkdir -p $UD/own && echo own-file > $UD/own/file && : > $UD/own/existing && echo user-file > $UD/f"
run_user "touch $RD/w $X/w $VHOME/w-$T /etc/w-$T"
expect_eq "setup: $U cannot write the targeted directories" \
    "$(printf 'touch: cannot touch %s: Permission denied\n' "'$RD/w'" "'$X/w'" "'$VHOME/w-$T'" "'/etc/w-$T'" | head -c -1)" "$OUT"

# --- (0) the ENOSYS wrapper reaches the container's command ------------------
# Under tests/helpers/nosys (run.sh's second pass) the filter must be
# inherited through runuser, capsa and the setuid starter, else that pass
# proves nothing.
cx setuid -B "$HELPERS/sysprobe:/sysprobe" "$IMG_DIR" /sysprobe openat2 close_range mount_setattr
if [ "$NOSYS" = 1 ]; then
    expect_eq "the command in a setuid container runs under the ENOSYS filter" \
        "$(printf 'openat2=ENOSYS\nclose_range=ENOSYS\nmount_setattr=ENOSYS')" "$OUT"
else
    expect_rc "sysprobe runs in a setuid container" 0
    expect_nomatch "without the wrapper nothing is ENOSYS in a container" "ENOSYS" "$OUT"
fi

# --- (1) root-owned files and directories on the host ------------------------
# A bind destination or --pwd missing below a host directory that is already
# mounted must be refused, never created there as root.  Missing mount
# points are made only in the container's own in-memory layer.
HDIR=$(dirname "$VHOME") VNAME=$(basename "$VHOME")
for mode in setuid userns; do
    # Names differ per mode, so that what one run left cannot make the
    # next one pass.
    cx $mode -B "$RD:/mnt/ro" -B "$UD/f:/mnt/ro/created-$mode" "$IMG_DIR" true
    refused "(1) -B ROOTDIR:/mnt/ro -B f:/mnt/ro/created: refused, names it [$mode]" "/mnt/ro/created-$mode"
    expect_absent "(1) -B ROOTDIR:/mnt/ro -B f:/mnt/ro/created: nothing on the host [$mode]" "$RD/created-$mode"

    cx $mode --pwd "$X/made-$mode/deeper" "$IMG_DIR" true
    refused "(1) --pwd to a missing directory below the host's /tmp: refused, names it [$mode]" "$X/made-$mode/deeper"
    expect_absent "(1) --pwd to a missing directory below the host's /tmp: nothing on the host [$mode]" "$X/made-$mode"

    cx $mode --bind /etc/hostname:"$RD/evil-$mode" "$IMG_DIR" true
    refused "(1) --bind /etc/hostname:/var/tmp/ROOTDIR/evil: refused, names it [$mode]" "$RD/evil-$mode"
    expect_absent "(1) --bind /etc/hostname:/var/tmp/ROOTDIR/evil: nothing on the host [$mode]" "$RD/evil-$mode"

    cx $mode -B "$HDIR:/h" -B "$UD/f:/h/$VNAME/planted-$T-$mode" "$IMG_DIR" true
    refused "(1) -B /home:/h -B f:/h/VICTIM/planted: refused, names it [$mode]" "/h/$VNAME/planted-$T-$mode"
    expect_absent "(1) -B /home:/h -B f:/h/VICTIM/planted: nothing in the victim's home [$mode]" "$VHOME/planted-$T-$mode"

    cx $mode -B /:/host -B "$UD/f:/host$ETCP-$mode" "$IMG_DIR" true
    refused_host "(1) -B /:/host -B f:/host/etc/PROBE: refused, names it [$mode]" "/host$ETCP-$mode"
    expect_absent "(1) -B /:/host -B f:/host/etc/PROBE: nothing in /etc [$mode]" "$ETCP-$mode"

    cx $mode -B /:/host --pwd "/host$ETCP-$mode.d/deeper" "$IMG_DIR" true
    refused_host "(1) -B /:/host --pwd /host/etc/PROBE.d/deeper: refused, names it [$mode]" "/host$ETCP-$mode.d/deeper"
    expect_absent "(1) -B /:/host --pwd /host/etc/PROBE.d/deeper: nothing in /etc [$mode]" "$ETCP-$mode.d"

    # The neighbours: the user's own directory on new paths, and a bind
    # onto something that exists below a bound directory.
    cx $mode -B "$UD/own:/newdir" "$IMG_DIR" cat /newdir/file
    expect_eq "(1) neighbour: the user's own directory bound to a new path [$mode]" "own-file" "$OUT"
    cx $mode -B "$UD/own:/mnt/a/b/c" "$IMG_DIR" cat /mnt/a/b/c/file
    expect_eq "(1) neighbour: ... to a new nested path [$mode]" "own-file" "$OUT"
    cx $mode -B "$UD/own:/mnt/own" -B "$UD/f:/mnt/own/existing" "$IMG_DIR" cat /mnt/own/existing
    expect_eq "(1) neighbour: a bind onto an existing file below a bound directory [$mode]" "user-file" "$OUT"
    # The same rule below the user's own directory: refused, not created.
    cx $mode -B "$UD/own:/mnt/own" -B "$UD/f:/mnt/own/new-$mode" "$IMG_DIR" true
    refused "(1) a destination missing below the user's own bound directory: refused too [$mode]" "/mnt/own/new-$mode"
    expect_absent "(1) ... and not created there [$mode]" "$UD/own/new-$mode"
done
no_new_root_entries "(1) no new root-owned entry in the targeted host directories" "$WORK/stamp" \
    "$RD" "$X" "$VHOME" "$UD" "$UD/own"
expect_eq "(1) the user's own directory holds only what they put there" "existing file" \
    "$(ls "$UD/own" | paste -sd' ')"

# --- (2) reading through directories the user cannot enter -------------------
mkdir -p "$RPUB/pub" && chmod 0755 "$RPUB" "$RPUB/pub"
echo "ROOT-PUB-SECRET-$T" > "$RPUB/pub/f" && chmod 0644 "$RPUB/pub/f"
as_user "$V" "mkdir -p $VTMP/pub && echo V-PUB-SECRET-$T > $VTMP/pub/f && chmod 0644 $VTMP/pub/f && chmod 0755 $VTMP/pub && chmod 0700 $VTMP"
as_user "$U" "mkdir -p $UTMP/sub && echo u-tmp-file > $UTMP/sub/file && chmod 0700 $UTMP"
run_user "cat $RPUB/pub/f $VTMP/pub/f"
expect_nomatch "setup: $U cannot read either secret outside" "SECRET-$T" "$OUT"
for mode in setuid userns; do
    cx $mode -B /:/host --pwd "/host$RPUB/pub" "$IMG_DIR" cat f
    refused_host "(2) -B /:/host --pwd /host/root/x/pub: refused, names it [$mode]" "/host$RPUB/pub"
    expect_nomatch "(2) -B /:/host --pwd /host/root/x/pub cat f: no secret [$mode]" "ROOT-PUB-SECRET" "$OUT"
    cx $mode --pwd "$VTMP/pub" "$IMG_DIR" cat f
    refused "(2) --pwd into the victim's 0755 dir below their 0700 dir in /tmp: refused, names it [$mode]" "$VTMP/pub"
    expect_nomatch "(2) ... cat f: no secret [$mode]" "V-PUB-SECRET" "$OUT"
    cx $mode --pwd "$UD/missing-$mode" "$IMG_DIR" true
    refused "(2) --pwd to a missing directory: refused, names it [$mode]" "$UD/missing-$mode"
    expect_absent "(2) --pwd to a missing directory: not created [$mode]" "$UD/missing-$mode"
    # Neighbours: --pwd into the user's own directories.
    cx $mode --pwd "$UD/own" "$IMG_DIR" sh -c 'pwd; cat file'
    expect_eq "(2) neighbour: --pwd into the user's own directory [$mode]" "$UD/own
own-file" "$OUT"
    cx $mode --pwd "$UTMP/sub" "$IMG_DIR" cat file
    expect_eq "(2) neighbour: --pwd into the user's own 0700 directory in /tmp [$mode]" "u-tmp-file" "$OUT"
done

# --- (3) the image's /etc/passwd and /etc/group are read as the user ----------
# A shared 1777 directory is itself the image; the victim keeps a 0600 file
# in it, the attacker points the image's etc/passwd (etc/group) at it.
mkdir "$SH" && cp -a "$IMG_DIR/." "$SH/" && chown -R "$U:" "$SH" && chown root:root "$SH" && chmod 1777 "$SH"
as_user "$V" "echo V-TICKET-$T > $SH/ticket && chmod 0600 $SH/ticket"
as_user "$U" "rm -f $SH/etc/passwd && ln -s /ticket $SH/etc/passwd"
run_user "cat $SH/ticket"
expect_nomatch "setup: $U cannot read the victim's ticket outside" "V-TICKET" "$OUT"
# Read as the user or not at all: the container runs, with the user's own
# line, and never the secret.
runs_with_user_line () {
    if [ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -q "^$U:x:"; then
        pass "$1"
    else
        fail "$1" "exit $RC: $(printf '%s' "$OUT" | head -c 400)"
    fi
}
for mode in setuid userns; do
    cx $mode "$SH" cat /etc/passwd
    expect_nomatch "(3) etc/passwd -> the victim's 0600 file: not in /etc/passwd [$mode]" "V-TICKET" "$OUT"
    runs_with_user_line "(3) etc/passwd -> the victim's file: the container runs, with the user's line [$mode]"
done
as_user "$U" "rm -f $SH/etc/passwd && cp $IMG_DIR/etc/passwd $SH/etc/passwd && rm -f $SH/etc/group && ln -s /ticket $SH/etc/group"
for mode in setuid userns; do
    cx $mode "$SH" cat /etc/group
    expect_nomatch "(3) etc/group -> the victim's 0600 file: not in /etc/group [$mode]" "V-TICKET" "$OUT"
    runs_with_user_line "(3) etc/group -> the victim's file: the container runs, with the user's line [$mode]"
done
# Neighbour: a normal etc/passwd and etc/group, even private to the user.
as_user "$U" "rm -f $SH/etc/group && printf 'root:x:0:0:root:/root:/bin/sh\ncapsa-att-img:x:4242:4242::/:/bin/sh\n' > $SH/etc/passwd && printf 'root:x:0:\ncapsa-att-grp:x:4243:\n' > $SH/etc/group && chmod 0600 $SH/etc/passwd $SH/etc/group"
for mode in setuid userns; do
    cx $mode "$SH" sh -c "grep -c '^capsa-att-img:x:4242:' /etc/passwd; grep -c '^capsa-att-grp:x:4243:' /etc/group; grep -c '^$U:x:$UID_U:' /etc/passwd"
    expect_eq "(3) neighbour: the image's own passwd and group entries, and the user's [$mode]" "1
1
1" "$OUT"
done

# --- (4) the race on the work directory ----------------------------------------
# The victim runs a container whose image holds a file only reachable
# through that container.  The attacker swaps a directory of theirs in /tmp
# with a symlink to /proc/VICTIM/root while asking for --pwd into it.
mkdir -p "$VPRIV" && cp -a "$IMG_DIR" "$VPRIV/img" && echo "V-RACE-SECRET-$T" > "$VPRIV/img/secret.txt"
chmod 0644 "$VPRIV/img/secret.txt" && chown -R "$V:" "$VPRIV" && chmod 0700 "$VPRIV"
vn=$(( 3000 + RANDOM % 6000 ))
runuser -u "$V" -- env -i PATH=/usr/bin:/bin HOME="$VHOME" sh -c "cd / && exec $CAPSA exec $VPRIV/img sleep $vn" > /dev/null 2>&1 &
vbg=$!
BGPIDS+=("$vbg")
vpid=
for _ in $(seq 50); do
    vpid=$(pgrep -u "$V" -f -x "(/bin/)?sleep $vn" | head -1)
    [ -n "$vpid" ] && break
    sleep 0.1
done
vmon=$([ -n "$vpid" ] && ps -o ppid= -p "$vpid" | tr -d ' ')
grep -qs starter "/proc/$vmon/cmdline" || vmon=
if [ -n "$vpid" ] && [ "$(cat "/proc/$vpid/root/secret.txt" 2> /dev/null)" = "V-RACE-SECRET-$T" ]; then
    BGPIDS+=("$vpid" ${vmon:+"$vmon"})
    run_user "cat $VPRIV/img/secret.txt /proc/$vpid/root/secret.txt"
    expect_nomatch "setup: $U cannot read the victim's container file outside" "V-RACE-SECRET" "$OUT"
    for mode in setuid userns; do
        flag=$([ $mode = userns ] && echo --userns || true)
        tries=40
        [ $mode = userns ] && tries=20
        rm -rf "$RACE"
        run_user "mkdir $RACE && mkdir $RACE/d && echo mine > $RACE/d/mine && ln -s /proc/$vpid/root $RACE/d.alt &&
            { $HELPERS/swap $RACE/d $RACE/d.alt & sp=\$!; } &&
            w=0 && n=0 && for i in \$(seq $tries); do
                n=\$((n + 1)); $CAPSA exec $flag --pwd $RACE/d $IMG_DIR cat secret.txt 2>&1 | grep -q V-RACE-SECRET && w=\$((w + 1));
            done; { kill \$sp; wait \$sp; } 2> /dev/null; echo tries=\$n wins=\$w"
        expect_eq "(4) --pwd into a directory swapped with /proc/VICTIM/root: 0 wins [$mode]" "tries=$tries wins=0" "$OUT"
        # Neighbour: the same directory, left alone.
        [ -L "$RACE/d" ] && mv -T "$RACE/d" "$RACE/d.tmp" && mv -T "$RACE/d.alt" "$RACE/d"
        cx $mode --pwd "$RACE/d" "$IMG_DIR" cat mine
        expect_eq "(4) neighbour: --pwd into that directory when nobody swaps it [$mode]" "mine" "$OUT"
    done
else
    fail "(4) setup: the victim's container with the secret" "not found running (pid '$vpid')"
fi
[ -n "$vpid" ] && kill -9 "$vpid" ${vmon:+"$vmon"} 2> /dev/null
wait "$vbg" 2> /dev/null
BGPIDS=()

# --- (5) nothing replaces the container's root ---------------------------------
as_user "$U" "mkdir -p $UD/fakeroot/bin && cp $IMG_DIR/bin/busybox $UD/fakeroot/bin/ && ln -s busybox $UD/fakeroot/bin/sh && ln -s busybox $UD/fakeroot/bin/cat && echo FAKEROOT-$T > $UD/fakeroot/marker"
for mode in root setuid userns; do
    # The neighbour first: the same directory bound to /fr.
    cx $mode -B "$UD/fakeroot:/fr" "$IMG_DIR" cat /fr/marker
    expect_eq "(5) neighbour: the same directory bound to /fr [$mode]" "FAKEROOT-$T" "$OUT"
    NEIGHBOUR_FAILED=$([ "$OUT" = "FAKEROOT-$T" ] || printf 'exit %s: %s' "$RC" "$(printf '%s' "$OUT" | head -c 200)")
    for dst in / /. // /./; do
        cx $mode -B "$UD/fakeroot:$dst" "$IMG_DIR" cat /marker
        refused "(5) -B DIR:$dst: refused [$mode]" ""
        expect_nomatch "(5) -B DIR:$dst: the directory is not the root [$mode]" "FAKEROOT" "$OUT"
    done
    cx $mode --home "$UD/fakeroot:/" "$IMG_DIR" cat /marker
    refused "(5) --home DIR:/: refused [$mode]" ""
    expect_nomatch "(5) --home DIR:/: the directory is not the root [$mode]" "FAKEROOT" "$OUT"
    # The home's destination is a field of the container's /etc/passwd:
    # no second field, no second line (a uid-0 entry) through it.
    cx $mode --home "$UD/fakeroot:/h:0:0" "$IMG_DIR" grep -c ':0:0' /etc/passwd
    refused "(5) --home SRC:/h:0:0 (a passwd field): refused [$mode]" "more than one ':'"
    # (a literal newline: run_user's shell is sh, which has no $'...')
    nl_home="$UD/fakeroot:/h
evil"
    case $mode in
    root) run "$CAPSA" exec --home "$nl_home" "$IMG_DIR" grep -c '^evil' /etc/passwd ;;
    setuid) run_user "$CAPSA exec --home '$nl_home' $IMG_DIR grep -c '^evil' /etc/passwd" ;;
    userns) run_user "$CAPSA exec --userns --home '$nl_home' $IMG_DIR grep -c '^evil' /etc/passwd" ;;
    esac
    refused "(5) --home with a newline (a passwd line): refused [$mode]" "newline"
done
# It must not get round the administrator's limits either.
sed -i 's/^allow container dir = yes/allow container dir = no/' "$CONF"
cx setuid -B "$UD/fakeroot:/fr" "$IMG_SQFS" cat /fr/marker
expect_eq "(5) neighbour: allow container dir = no, the directory bound to /fr of a squashfs image" "FAKEROOT-$T" "$OUT"
NEIGHBOUR_FAILED=$([ "$OUT" = "FAKEROOT-$T" ] || printf 'exit %s: %s' "$RC" "$(printf '%s' "$OUT" | head -c 200)")
cx setuid -B "$UD/fakeroot:/" "$IMG_SQFS" cat /marker
refused "(5) allow container dir = no: -B DIR:/ over an allowed image refused" ""
expect_nomatch "(5) allow container dir = no: the directory is not run" "FAKEROOT" "$OUT"
cp "$WORK/conf.orig" "$CONF"
NEIGHBOUR_FAILED=

# --- (6) the host's hidepid= and subset= hold in the container -----------------
# In a private mount namespace whose /proc is mounted hidepid=invisible, the
# user sees only their own processes; so must their container (no --pid).
cat > "$WORK/hp.sh" <<EOF
echo "outside: pid1=\$(test -e /proc/1 && echo yes || echo no)"
exec $CAPSA exec \$1 $IMG_DIR sh -c 'echo "uids=\$(for p in /proc/[0-9]*; do stat -c %u \$p 2> /dev/null; done | sort -u | paste -sd" ")"
test -e /proc/1 && echo pid1=yes || echo pid1=no
test -e /proc/\$\$ && echo self=yes || echo self=no
test -e /proc/meminfo && echo meminfo=yes || echo meminfo=no'
EOF
chmod 0644 "$WORK/hp.sh"
for opts in hidepid=invisible hidepid=invisible,subset=pid; do
    meminfo=$([ "$opts" = hidepid=invisible ] && echo yes || echo no)
    for mode in setuid userns; do
        flag=$([ $mode = userns ] && echo --userns || true)
        OUT=$(unshare -m --propagation private sh -c "mount -t proc -o $opts proc /proc && test -e /proc/1 &&
            runuser -u $U -- env -i PATH=/usr/bin:/bin HOME=$UHOME sh $WORK/hp.sh '$flag'" 2>&1)
        expect_match "(6) $opts: the setup hides PID 1 from $U outside [$mode]" "^outside: pid1=no$" "$OUT"
        expect_eq "(6) $opts: the container sees only $U's processes, itself included [$mode]" \
            "uids=$UID_U
pid1=no
self=yes
meminfo=$meminfo" "$(printf '%s\n' "$OUT" | grep -v '^outside:')"
    done
done

# --- (7) the container dies with its monitor -----------------------------------
# capsa exec execs the starter, which becomes the monitor; the command is
# its child.  kill -9 of the monitor must take the command with it.
for flag in "" --pid --userns "--userns --pid"; do
    n=$(( 3000 + RANDOM % 6000 ))
    runuser -u "$U" -- env -i PATH=/usr/bin:/bin HOME="$UHOME" sh -c "cd / && exec $CAPSA exec $flag $IMG_DIR sleep $n" > /dev/null 2>&1 &
    bg=$!
    BGPIDS+=("$bg")
    cmd=
    for _ in $(seq 150); do
        cmd=$(pgrep -u "$U" -f -x "(/bin/)?sleep $n" | head -1)
        [ -n "$cmd" ] && ! proc_gone "$cmd" && break
        cmd=
        sleep 0.1
    done
    # The monitor is the topmost starter above the command (with --pid the
    # command's parent is the container's init, a starter process too).
    mon=$([ -n "$cmd" ] && ps -o ppid= -p "$cmd" | tr -d ' ')
    while [ -n "$mon" ]; do
        up=$(ps -o ppid= -p "$mon" | tr -d ' ')
        grep -q starter "/proc/$up/cmdline" 2> /dev/null || break
        mon=$up
    done
    if [ -z "$cmd" ] || [ -z "$mon" ] || ! grep -q starter "/proc/$mon/cmdline" 2> /dev/null; then
        fail "(7) kill -9 of the monitor [${flag:-setuid}]" "container or monitor not found (cmd '$cmd', monitor '$mon')"
        kill -9 "$bg" 2> /dev/null
        wait "$bg" 2> /dev/null
        BGPIDS=()
        continue
    fi
    BGPIDS+=("$cmd")
    kill -9 "$mon"
    gone=no
    for _ in $(seq 10); do
        sleep 0.1
        proc_gone "$cmd" && { gone=yes; break; }
    done
    expect_eq "(7) kill -9 of the monitor: no container process after 1 s [${flag:-setuid}]" "yes" "$gone"
    proc_gone "$cmd" || kill -9 "$cmd"
    wait "$bg" 2> /dev/null
    BGPIDS=()
done

# --- (8) descriptors named to the starter --------------------------------------
# Called directly, as the user: --key-fd must be an open pipe, --seccomp-fd
# an open, sealed memfd.
printf '\006\000\000\000\000\000\377\177' > "$WORK/allow.bpf"    # BPF: return SECCOMP_RET_ALLOW
chmod 0644 "$WORK/allow.bpf"
for flag in "" --userns; do
    m=${flag:-setuid}
    run_user "$HELPERS/memfd -s 3 $WORK/allow.bpf $STARTER exec $flag --seccomp-fd=3 $IMG_DIR /bin/echo ran"
    expect_eq "(8) neighbour: --seccomp-fd=3 on a sealed memfd runs [$m]" "ran" "$OUT"
    NEIGHBOUR_FAILED=$([ "$OUT" = ran ] || printf 'exit %s: %s' "$RC" "$(printf '%s' "$OUT" | head -c 200)")
    run_user "$STARTER exec $flag --key-fd=3 $IMG_DIR /bin/sh -c 'ls / \$HOME' 3<&-"
    refused "(8) --key-fd=3 with descriptor 3 closed: refused [$m]" "" "key"
    expect_nomatch "(8) --key-fd=3 closed: the staging directory is not shown [$m]" "^upper$" "$OUT"
    run_user "$STARTER exec $flag --key-fd=3 $IMG_DIR /bin/true 3< /etc/hostname"
    refused "(8) --key-fd=3 on a regular file: refused [$m]" "" "key"
    run_user "$STARTER exec $flag --seccomp-fd=3 $IMG_DIR /bin/echo ran 3<&-"
    refused "(8) --seccomp-fd=3 with descriptor 3 closed: refused [$m]" "" "seccomp"
    run_user "$STARTER exec $flag --seccomp-fd=3 $IMG_DIR /bin/echo ran 3< $WORK/allow.bpf"
    refused "(8) --seccomp-fd=3 on a regular file holding a filter: refused [$m]" "" "seccomp"
    run_user "$HELPERS/memfd 3 $WORK/allow.bpf $STARTER exec $flag --seccomp-fd=3 $IMG_DIR /bin/echo ran"
    refused "(8) --seccomp-fd=3 on an unsealed memfd: refused [$m]" "" "seccomp"
done
NEIGHBOUR_FAILED=

# --- (9) the minimal /dev ----------------------------------------------------------
# A tmpfs mounted nosuid,nodev,noexec and read-only once populated; the
# device nodes bound into it stay usable; devpts (which cannot be nodev)
# nosuid,noexec.
DEVSCRIPT='
flags () { awk -v m="$1" '"'"'$5 == m { print $6 }'"'"' /proc/self/mountinfo | tr , "\n" | grep -xE "ro|nosuid|nodev|noexec" | sort | paste -sd" "; }
echo "dev=$(flags /dev)"
echo "pts=$(flags /dev/pts)"
echo x > /dev/null && echo null=ok
echo "zero=$(head -c 4 /dev/zero | wc -c) urandom=$(head -c 4 /dev/urandom | wc -c) random=$(head -c 4 /dev/random | wc -c)"
(echo x > /dev/full) 2>&1 | grep -q "No space" && echo full=ENOSPC
test -c /dev/tty && echo tty=chr
touch /dev/capsa-x 2> /dev/null && echo dev=writable || echo dev=not-writable'
# (A file under $WORK, which the containers see through /tmp: the users'
# sh cannot read bash's $'...' quoting of a multi-line argument.)
printf '%s\n' "$DEVSCRIPT" > "$WORK/dev.sh"
chmod 0644 "$WORK/dev.sh"
for mode in root setuid userns; do
    cx $mode "$IMG_DIR" sh "$WORK/dev.sh"
    expect_eq "(9) /dev: ro,nosuid,nodev,noexec tmpfs, devpts nosuid,noexec, device nodes work [$mode]" "dev=nodev noexec nosuid ro
pts=noexec nosuid
null=ok
zero=4 urandom=4 random=4
full=ENOSPC
tty=chr
dev=not-writable" "$OUT"
done

# --- (9) securebits as SECURITY.md says: NOROOT and NO_SETUID_FIXUP locked,
# no ambient raise (locked), keep-caps not locked: 0xcb, in both user modes;
# root keeps its own (0).
sb=$WORK/sb-image
cp -a "$IMG_DIR" "$sb" && cp "$HELPERS/securebits" "$sb/bin/securebits"
for mode in root setuid userns; do
    cx $mode "$sb" /bin/securebits
    expect_eq "(9) securebits [$mode]" "securebits=$([ $mode = root ] && echo 0x0 || echo 0xcb)" "$OUT"
done

# --- (9) an image symlink at a mount point is not followed ----------------------
# The image's /tmp is a symlink to /etc: the host's /tmp must not be bound
# over the image's /etc (nor a bind below /etc land in the host's /tmp).
cp -a "$IMG_DIR" "$EVIL" && rm -rf "$EVIL/tmp" && ln -s /etc "$EVIL/tmp" && echo "image-etc-$T" > "$EVIL/etc/capsa-att-img"
chmod -R a+rX "$EVIL"
touch "/tmp/capsa-att-$T-hostmark"
# What a vulnerable runtime creates in the host's /tmp for the
# administrator's binds below /etc: removed afterwards if it was not there.
absent_before=$(for f in hosts localtime resolv.conf; do [ -e "/tmp/$f" ] || echo "/tmp/$f"; done)
for mode in setuid userns; do
    cx $mode -B "$UD/f:/etc/capsa-att-$T-probe-$mode" "$EVIL" sh -c "cat /etc/capsa-att-img; ls /etc/capsa-att-$T-hostmark 2>&1"
    expect_eq "(9) image /tmp -> /etc: its /etc stays the image's [$mode]" "image-etc-$T
ls: /etc/capsa-att-$T-hostmark: No such file or directory" "$OUT"
    expect_absent "(9) image /tmp -> /etc: a bind below /etc creates nothing in the host's /tmp [$mode]" \
        "/tmp/capsa-att-$T-probe-$mode"
done
for f in $absent_before; do
    [ -f "$f" ] && [ ! -s "$f" ] && [ "$(stat -c %u "$f")" = 0 ] && rm -f "$f"
done

# --- (10) found by the attack review of the reworked runtime -------------------------
mkdir -p "$A10/fake/bin" "$A10/x" && cp "$IMG_DIR/bin/busybox" "$A10/busybox" && cp "$IMG_DIR/bin/busybox" "$A10/fake/bin/"
echo "I-AM-FAKE-ROOT-$T" > "$A10/fake/marker" && ln -s / "$A10/rl" && chown -R "$U:" "$A10" && chmod -R a+rX "$A10"
runuser -u "$V" -- sh -c "umask 022; mkdir -p $VCLOSED && chmod 0700 $VCLOSED && echo SECRET-A1-$T > $VCLOSED/note.txt"

# A1: the overlay's private layer must not open what the image keeps closed.
# The user's own closed directory works as an image (the neighbour); the
# victim's closed directory neither as the image nor on the way to a mount
# point.
as_user "$U" "mkdir -p $UD/closed && chmod 0700 $UD/closed && echo own-closed-$T > $UD/closed/note.txt"
for mode in setuid userns; do
    cx $mode "$UD/closed" "$A10/busybox" cat /note.txt
    expect_eq "(10) A1 the user's own 0700 directory as an image [$mode]" "0:own-closed-$T" "$RC:$OUT"
    cx $mode "$VCLOSED" "$A10/busybox" cat /note.txt
    expect_eq "(10) A1 another user's 0700 directory as an image: exit 255 [$mode]" 255 "$RC"
    expect_nomatch "(10) A1 ... and its files are not shown [$mode]" "SECRET-A1" "$OUT"
    cx $mode -B "$A10/x:$VCLOSED/mp" / "$A10/busybox" sh -c "ls -la $VCLOSED; cat $VCLOSED/note.txt"
    expect_eq "(10) A1 a mount point inside another user's 0700 directory: exit 255 [$mode]" 255 "$RC"
    expect_nomatch "(10) A1 ... and nothing of it is shown [$mode]" "SECRET-A1|note.txt" "$OUT"
done
expect_absent "(10) A1 nothing was created in the victim's directory" "$VCLOSED/mp"

# A2: a destination that leads to the container's root through a symlink
# (the host's /tmp is bound in; $A10/rl -> /) must not replace the root,
# even where 'allow container dir = no' refuses the directory as an image.
sed -i 's/^allow container dir = yes/allow container dir = no/' "$CONF"
BBSIF=$FIXTURES/sif/busybox_amd64.sif
for mode in setuid userns; do
    cx $mode "$BBSIF" /bin/busybox true
    expect_eq "(10) A2 neighbour: a SIF still runs with 'allow container dir = no' [$mode]" 0 "$RC"
    for dst in "$A10/rl/." "$A10/rl/" "$A10/rl/bin/.." "$A10/rl"; do
        cx $mode -B "$A10/fake:$dst" "$BBSIF" /bin/busybox cat /marker
        expect_nomatch "(10) A2 -B DIR:$dst does not replace the root [$mode]" "I-AM-FAKE-ROOT" "$OUT"
        expect_eq "(10) A2 -B DIR:$dst exits 255 [$mode]" 255 "$RC"
    done
done
cp "$WORK/conf.orig" "$CONF"

# A3: the staging area must not come along in a recursive bind of a host
# directory that holds it (the installation's libexec/capsa, or /): there
# the root overlay would be seen writable.
for mode in setuid userns; do
    cx $mode -B "$CAPSA_PREFIX/libexec/capsa:/x" "$IMG_DIR" sh -c "touch /x/mnt/root/probe-$T 2>/dev/null; ls -A /x/mnt; ls /probe-$T 2>&1"
    expect_eq "(10) A3 a bind of the installation shows no staging area and the root stays read-only [$mode]" \
        "ls: /probe-$T: No such file or directory" "$OUT"
    cx $mode -B "/:/host" "$IMG_DIR" ls -A "/host$CAPSA_PREFIX/libexec/capsa/mnt"
    if [ "$NOSYS" = 1 ] && [ "$RC" = 255 ]; then
        refused_host "(10) A3 -B /:/host shows no staging area [$mode]" "/host"
    else
        expect_eq "(10) A3 -B /:/host shows no staging area [$mode]" "0:" "$RC:$OUT"
    fi
done
run_user "cd $CAPSA_PREFIX/libexec/capsa && $CAPSA exec $IMG_DIR ls -A mnt"
expect_eq "(10) A3 the current directory in the installation shows no staging area" "0:" "$RC:$OUT"

# A4: two mounts stacked below a bind source: every mount of the :ro bind
# is read-only (with mount_setattr), or the bind is refused (the fallback
# reaches only the top one by its path: fail closed).
mkdir -p "$A10/src/m" && mount -t tmpfs -o mode=1777 lower "$A10/src/m" && mount -t tmpfs -o mode=1777 upper "$A10/src/m"
for mode in setuid userns; do
    cx $mode -B "$A10/src:/d:ro" "$IMG_DIR" sh -c 'awk '"'"'$5 == "/d" || $5 ~ "^/d/" { print $5, $6 }'"'"' /proc/self/mountinfo'
    if [ "$NOSYS" = 1 ]; then
        refused "(10) A4 without mount_setattr a stacked submount makes the :ro bind fail closed [$mode]" \
            "cannot apply the mount flags to every mount below"
    else
        expect_eq "(10) A4 every mount of a :ro bind with stacked submounts is read-only [$mode]" "0:3:3" \
            "$RC:$(printf '%s\n' "$OUT" | grep -c '^/d')$(printf ':%s' "$(printf '%s\n' "$OUT" | awk '$2 ~ /^ro,/' | wc -l)")"
    fi
done
umount "$A10/src/m" && umount "$A10/src/m"

# --- (11) found by the second attack review -------------------------------------------
# B1: with --writable on a directory the attacker can rename entries in
# (a sticky 1777 one, as /tmp), the minimal /dev must be made in capsa's
# own file system, never in whatever "dev" names when it is looked up again:
# swapping dev/ with a symlink to the victim's directory creates nothing
# there.
mkdir -m 1777 "$A11" && install -d -o "$V" -g "$V" -m 0755 "$A11/victim"
as_user "$U" "mkdir $A11/dev && ln -s /victim $A11/devlink"
(cd "$A11" && exec runuser -u "$U" -- "$HELPERS/swap" dev devlink) > /dev/null 2>&1 &
sw=$!; BGPIDS+=("$sw")
for _ in $(seq 60); do
    as_user "$U" "$CAPSA -s exec --writable $A11 /nothing" > /dev/null 2>&1
    [ -e "$A11/victim/null" ] && break
done
kill "$sw" 2>/dev/null; wait "$sw" 2>/dev/null
expect_eq "(11) B1 --writable sandbox, dev/ swapped with a symlink: nothing made in another user's directory (60 runs)" \
    "" "$(ls -A "$A11/victim")"

# B2: with 'memory fs type = ramfs' the contained home is given to the user
# by the descriptor of the file system just made, never by a second lookup
# through a host directory (/dev, bound in, reaches the host's /dev/shm,
# where the image's /home leads): swapping that path with a symlink to a
# root directory of the host's /dev does not give it to the user.
sed -i 's/^memory fs type = .*/memory fs type = ramfs/' "$CONF"
grep -q '^memory fs type' "$CONF" || echo 'memory fs type = ramfs' >> "$CONF"
bimg=$A11/b2img
mkdir -p "$bimg" && cp -a "$IMG_DIR/." "$bimg/" && rm -rf "$bimg/home" && ln -s "$S11" "$bimg/home"
mkdir -p "$bimg/dev" "$bimg/tmp" "$bimg/var/tmp" "$bimg$S11"
mksquashfs "$bimg" "$A11/b2.sqfs" -quiet -noappend -all-root > /dev/null && chmod 0644 "$A11/b2.sqfs"
install -d -o root -g root -m 0755 "$D11"
as_user "$U" "mkdir -p $S11/$(basename "$UHOME") && ln -s $D11 $S11/l"
(cd "$S11" && exec runuser -u "$U" -- "$HELPERS/swap" "$(basename "$UHOME")" l) > /dev/null 2>&1 &
sw=$!; BGPIDS+=("$sw")
for _ in $(seq 60); do
    run_user "cd / && $CAPSA -s exec --contain -B /dev $A11/b2.sqfs /bin/true"
    [ "$(stat -c %U "$D11")" != root ] && break
done
kill "$sw" 2>/dev/null; wait "$sw" 2>/dev/null
expect_eq "(11) B2 ramfs home through a swapped path: a root directory of the host's /dev stays root's (60 runs)" \
    "root" "$(stat -c %U "$D11")"
cp "$WORK/conf.orig" "$CONF"

# B3: capsa-cryptfuse holds the key and produces the plaintext that root
# may loop-mount: the user must not be able to trace it, not even between
# its execve and its own prctl (it is installed unreadable: 0711).
expect_eq "(11) B3 cryptfuse is installed 0711" "711" "$(stat -c %a "$CAPSA_PREFIX/libexec/capsa/cryptfuse")"
B3PASS="att-$T-pass"
CAPSA_ENCRYPTION_PASSPHRASE=$B3PASS "$CAPSA" -q encrypt "$FIXTURES/sif/busybox_amd64.sif" "$A11/enc.sif" > /dev/null 2>&1
chmod 0644 "$A11/enc.sif"
attached=0
for _ in 1 2 3; do
    runuser -u "$U" -- "$HELPERS/catchptrace" cryptfuse 6 "$A11/enc.sif" > "$A11/catch.out" 2>&1 &
    cp=$!; sleep 0.3
    as_user "$U" "CAPSA_ENCRYPTION_PASSPHRASE=$B3PASS $CAPSA -s exec $A11/enc.sif /bin/busybox true" > /dev/null 2>&1
    wait "$cp"
    grep -q ATTACHED "$A11/catch.out" && attached=$((attached + 1))
done
expect_eq "(11) B3 the user attached to cryptfuse in none of 3 runs" 0 "$attached"

# --- (12) found by the third attack review ---------------------------------------------
# A device bind (-B /dev/X into the minimal /dev) is recursive, and its
# source is a host path that may lead anywhere: a symlink of the
# administrator's in /dev to a directory holding capsa's stage must not
# bring the stage (the container's root, upper layer and generated /etc
# files) along.  The user's device binds are made once the stage is
# unbindable.  (The symlink, which only root can make, stands in for one
# such as /dev/disk/by-*/ or a vendor's.)
ln -sfn "$CAPSA_PREFIX/libexec/capsa" "$L12"
for mode in setuid userns; do
    cx $mode --contain -B "$L12" "$IMG_DIR" sh -c "ls $L12/mnt; echo end"
    expect_eq "(12) -B /dev/LINK to PREFIX/libexec/capsa: the link is bound, the stage is not [$mode]" "end" "$OUT"
done
rm -f "$L12"

# --- (13) found by the fifth review: root's commands writing into a user's directory --
# overlay create makes the file system in a temporary file beside IMAGE: a
# user who can write there swaps its name for a symlink to a root-only
# file as soon as it appears; mkfs writes through the descriptor, and the
# swapped name is not renamed into place.
install -d -o "$U" -m 0755 "$UD/ov13"
printf 'SECRET' > "$V13" && chmod 0600 "$V13"
runuser -u "$U" -- "$HELPERS/swapin" "$UD/ov13" .capsa-overlay- "$V13" 2> /dev/null &
sw=$!; BGPIDS+=("$sw"); sleep 0.3
run "$CAPSA" overlay create "$UD/ov13/ov.img"
wait "$sw" 2> /dev/null
expect_eq "(13) root's overlay create in a user's directory, name swapped: the root-only file is untouched" \
    "SECRET $(stat -c %s "$V13")" "$(cat "$V13") 6"
if ls "$UD/ov13"/*.moved > /dev/null 2>&1; then   # the swap won the race
    expect_match "(13) ... and capsa says the name was replaced (255)" "^255:FATAL: .*was replaced meanwhile" "$RC:$OUT"
fi
# build works in a private directory beside OUT, by path: as root, into a
# directory another user can write (or below one), it refuses.
run "$CAPSA" build "$UD/ov13/x.sif" "$IMG_DIR"
refused "(13) root's build into a directory a user can write: refused" "refusing to build as root into"
expect_eq "(13) ... and nothing of the build is left there" "" "$(ls -A "$UD/ov13" | grep -E 'capsa-build|x.sif')"

no_leftover_mounts "no capsa mount left after the attacks"
