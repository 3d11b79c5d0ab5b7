# Instances (issue 16): capsa instance start|run|list|stop|stats and
# exec|run|shell instance://NAME, as root, as a user through the setuid
# starter, with --userns and with --fakeroot; directory, squashfs, SIF,
# encrypted and oras:// images; and the attacks on what describes an
# instance: another user's exec instance://, records edited to name
# another process (of the user, of another user, of root), a recycled pid,
# a stale instance, symbolic links for the logs and the pid file.
#
# The users capsa-in1 and capsa-in2 are this file's own (`instance stop
# --all` stops every instance of a user); runs of this file for other
# install prefixes wait for each other on a lock in $CACHE.  Root's
# instances here are all named t-root*.

U=capsa-in1
U2=capsa-in2
for u in $U $U2; do
    id "$u" > /dev/null 2>&1 || useradd -m -s /bin/sh "$u"
done
exec 8> "$CACHE/.lock.test-instance"
flock 8
UID_U=$(id -u $U)
UHOME=$(getent passwd $U | cut -d: -f6)
U2HOME=$(getent passwd $U2 | cut -d: -f6)
HOSTN=$(hostname)
RSTATE=/run/capsa/instances
USTATE=$UHOME/.capsa/instances/state/$HOSTN/$U
ULOGS=$UHOME/.capsa/instances/logs/$HOSTN/$U
EFFECT=/tmp/capsa-inst-effect

ru () { run_as "$U" "$@"; }
ru2 () { run_as "$U2" "$@"; }

stop_all () {
    as_user $U "$CAPSA -s instance stop --all -t 2" > /dev/null 2>&1
    as_user $U2 "$CAPSA -s instance stop --all -t 2" > /dev/null 2>&1
    "$CAPSA" -s instance stop -t 2 't-root*' > /dev/null 2>&1
}
trap 'stop_all; rm -f /tmp/capsa-inst-victim $EFFECT-*' EXIT
stop_all
rm -f $EFFECT-*
rm -rf "$UHOME/.capsa/instances" "$U2HOME/.capsa/instances" "$UHOME"/pid-* "$UHOME"/stopped-by*

# field N (from 3 on) of /proc/PID/stat
stat_field () { sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | awk -v f=$(($2 - 2)) '{ print $f }'; }
# the pid of instance NAME in `instance list` output $OUT
listed_pid () { printf '%s\n' "$OUT" | awk -v n="$1" '$1 == n { print $2 }'; }
# run CMD (a command line for ru) until it succeeds, 10 s at most
wait_ok () {
    local i
    for i in $(seq 1 100); do
        ru "$1"
        [ "$RC" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}
# live processes of USERS (comma-separated) whose name matches REGEX;
# zombies are ended (what PID 1 is here may be slow to reap orphans)
live_procs () { ps -u "$1" -o pid=,stat=,comm= | awk -v re="^($2)\$" '$2 !~ /^Z/ && $3 ~ re'; }
# processes (numbers) whose mount namespace has inode INO
in_mntns () {
    local p
    for p in /proc/[0-9]*; do
        [ "$(stat -L -c %i "$p/ns/mnt" 2> /dev/null)" = "$1" ] && echo "${p#/proc/}"
    done
}

# ---- images ----------------------------------------------------------------------------
IMG=$WORK/img
cp -a "$IMG_DIR" "$IMG"
cat > "$IMG/.singularity.d/startscript" << EOF
#!/bin/sh
echo "args: \$* instance=\$APPTAINER_INSTANCE" > $EFFECT-\$APPTAINER_INSTANCE
echo "startscript out \$APPTAINER_INSTANCE"
echo "startscript err \$APPTAINER_INSTANCE" >&2
case "\$1" in
trap-term)
    for s in INT TERM HUP QUIT USR1; do trap "echo got \$s > \$HOME/stopped-by-\$APPTAINER_INSTANCE; exit 0" \$s; done
    sleep 7777777 &
    wait
    ;;
ignore-int)
    trap '' INT
    sleep 7777777 &
    wait
    ;;
*)
    exec sleep 7777777
    ;;
esac
EOF
chmod 0755 "$IMG/.singularity.d/startscript" "$IMG"
SQFS=$WORK/img.sqfs
mksquashfs "$IMG" "$SQFS" -noappend -quiet -no-progress -all-root > /dev/null
SIF=$WORK/img.sif
"$CAPSA" -s sif new "$SIF" && "$CAPSA" -s sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$SIF" "$SQFS"
ENC=$WORK/enc.sif
PASS=instance-test-passphrase
CAPSA_ENCRYPTION_PASSPHRASE=$PASS "$CAPSA" -s encrypt "$SIF" "$ENC"
chmod 0644 "$SQFS" "$SIF" "$ENC"
if [ -f "$ENC" ] && [ -f "$SIF" ]; then pass "instance test images built"; else fail "instance test images built" "no $SIF or $ENC"; fi

# ---- 1. start, list, exec instance://, stop: setuid, --userns, --fakeroot ---------------
# acceptance MODE FLAGS IMAGE [ENV]: one instance through its whole life.
acceptance () {
    local mode=$1 flags=$2 img=$3 env=${4:-} n=t-$1 pid mon mntns
    # (A --fakeroot instance's home is /root: joined from ~, the command
    # would start in / with a warning, as in Apptainer.)
    ru () { if [ "$mode" = fakeroot ]; then run_as "$U" "cd / && $1"; else run_as "$U" "$1"; fi; }
    rm -f "$UHOME/pid-$n"
    ru "$env $CAPSA instance start $flags --contain --pid-file $UHOME/pid-$n $img $n a b"
    expect_rc "$mode: instance start" 0
    expect_match "$mode: start says it started" "INFO: +instance $n started" "$OUT"
    ru "$CAPSA instance list"
    expect_match "$mode: list shows it" "^$n +[0-9]+ +$img\$" "$OUT"
    pid=$(listed_pid "$n")
    expect_eq "$mode: --pid-file holds the pid of the instance's init" "${pid:-none}" "$(cat "$UHOME/pid-$n" 2>&1)"
    ru "$CAPSA instance list --json $n"
    expect_eq "$mode: list --json" "$n ${pid:-none} $img" \
        "$(printf '%s' "$OUT" | python3 -c 'import json,sys; i=json.load(sys.stdin)["instances"]; print(i[0]["instance"], i[0]["pid"], i[0]["img"]) if len(i)==1 else print(i)' 2>&1)"
    [ -n "$pid" ] || { fail "$mode: the instance's pid" "none listed"; ru () { run_as "$U" "$@"; }; return; }
    mon=$(stat_field "$pid" 4)
    expect_eq "$mode: the init's parent, the monitor, runs in a session of its own (detached)" "$mon" "$(stat_field "$mon" 6)"
    expect_eq "$mode: the init is the user's, PID 1 of its own namespace" "$UID_U appinit 1" \
        "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status") $(cat "/proc/$pid/comm") $(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status")"
    mntns=$(stat -L -c %i "/proc/$pid/ns/mnt")

    wait_ok "$CAPSA exec instance://$n cat $EFFECT-$n"
    expect_eq "$mode: exec instance:// sees what the startscript wrote in the instance's own /tmp" \
        "args: a b instance=$n" "$OUT"
    expect_absent "$mode: ... which is not the host's /tmp" "$EFFECT-$n"
    ru "$CAPSA exec instance://$n sh -c 'cat /proc/1/comm; ps | grep -c \"[s]leep 7777777\"; stat -L -c %i /proc/self/ns/mnt'"
    expect_eq "$mode: joined: PID 1 is the init, the startscript's process is there, the same mount namespace" \
        "appinit
1
$mntns" "$OUT"
    ru "$env $CAPSA -s exec $flags $img sh -c 'id -u; grep -E \"^(Cap(Prm|Eff|Inh|Bnd|Amb)|NoNewPrivs)\" /proc/self/status'"
    local want=$OUT
    ru "$CAPSA -s exec instance://$n sh -c 'id -u; grep -E \"^(Cap(Prm|Eff|Inh|Bnd|Amb)|NoNewPrivs)\" /proc/self/status'"
    expect_eq "$mode: the joined command's identity, capabilities and no_new_privs are those of an exec" "$want" "$OUT"
    ru "$CAPSA exec --env FOO=bar instance://$n sh -c 'echo \$APPTAINER_INSTANCE \$APPTAINER_CONTAINER \$FOO'"
    expect_eq "$mode: APPTAINER_INSTANCE, APPTAINER_CONTAINER and --env in the joined command" "$n $img bar" "$OUT"
    ru "$CAPSA exec instance://$n sh -c 'exit 7'"
    expect_rc "$mode: the joined command's exit status is passed on" 7
    ru "$CAPSA run instance://$n x"
    expect_eq "$mode: run instance:// runs the runscript" "runscript args: x" "$OUT"
    ru "$CAPSA exec --security seccomp:$WORK/nomkdir.json instance://$n mkdir /tmp/seccomp-x"
    expect_eq "$mode: --security seccomp: applies to the joined command (mkdir killed)" "159" "$RC"
    ru "$CAPSA exec instance://$n sh -c 'mkdir /tmp/seccomp-y && echo made'"
    expect_eq "$mode: ... and without it the same mkdir works" "made" "$OUT"
    check "$mode: the startscript's output is in NAME.out" grep -qx "startscript out $n" "$ULOGS/$n.out"
    check "$mode: its errors in NAME.err" grep -qx "startscript err $n" "$ULOGS/$n.err"

    ru "$CAPSA instance stop $n"
    expect_rc "$mode: instance stop" 0
    if proc_gone "$pid" && proc_gone "$mon"; then pass "$mode: stop ends the init and the monitor"; else
        fail "$mode: stop ends the init and the monitor" "$(ps -o pid,stat,args -p "$pid,$mon")"; fi
    expect_eq "$mode: no process left in the instance's mount namespace" "" "$(in_mntns "$mntns")"
    expect_eq "$mode: no FUSE server of the user left" "" "$(live_procs $U 'squashfuse_ll|cryptfuse')"
    expect_absent "$mode: no record left" "$RSTATE/$UID_U/$n" "$USTATE/$n"
    ru "$CAPSA instance list"
    expect_nomatch "$mode: list no longer shows it" "^$n " "$OUT"
    ru () { run_as "$U" "$@"; }
}
cat > "$WORK/nomkdir.json" << 'EOF'
{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
EOF
chmod 0644 "$WORK/nomkdir.json"
acceptance setuid "" "$IMG"
acceptance userns --userns "$IMG"
acceptance fakeroot --fakeroot "$IMG"
acceptance setuid-sqfs "" "$SQFS"
acceptance userns-sif --userns "$SIF"
acceptance setuid-encrypted "" "$ENC" "CAPSA_ENCRYPTION_PASSPHRASE=$PASS"
acceptance userns-encrypted --userns "$ENC" "CAPSA_ENCRYPTION_PASSPHRASE=$PASS"

# ---- 2. the FUSE servers and the monitor outlive the front end --------------------------
ru "CAPSA_ENCRYPTION_PASSPHRASE=$PASS $CAPSA instance start $ENC t-fuse"
expect_rc "encrypted image: instance start" 0
ru "$CAPSA instance list"
pid=$(listed_pid t-fuse)
mon=$(stat_field "${pid:-0}" 4)
# The user's image server (issue 17) decrypts and serves it: one process
# with the image open, not the monitor's child (it is shared), and no
# squashfuse_ll or cryptfuse.
ENC_REAL=$(readlink -f "$ENC")
servers_of () { for p in $(pgrep -u $U -x imagefuse); do ls -l "/proc/$p/fd" 2>/dev/null | grep -q -- "-> $ENC_REAL\$" && echo "$p"; done; }
expect_eq "after the front end has exited, one image server serves the instance's image" "1" "$(servers_of | wc -l)"
expect_eq "... and the monitor runs no squashfuse_ll or cryptfuse" "0" "$(pgrep -u $U -P "${mon:-0}" -x 'squashfuse_ll|cryptfuse' | wc -l)"
expect_nomatch "the monitor's parent is no capsa process (the front end and starter have exited)" "capsa|starter|tools" \
    "$(cat "/proc/$(stat_field "${mon:-0}" 4)/comm" 2>&1)"
ru "$CAPSA exec instance://t-fuse cat /.singularity.d/runscript"
expect_match "the image is served: a file of the encrypted image reads" "runscript args" "$OUT"
ru "$CAPSA instance stop t-fuse"
for _ in $(seq 1 40); do [ -z "$(servers_of)" ] && break; sleep 0.5; done
expect_eq "stop: the image server ends after its linger time (10 s)" "" "$(servers_of)"
no_leftover_mounts "no capsa mount left on the host"

# ---- 3. instance run, several instances, stop --all, signals, timeouts -----------------
ru "$CAPSA instance run $IMG t-run x y"
expect_rc "instance run" 0
for i in $(seq 1 50); do grep -q 'runscript args: x y' "$ULOGS/t-run.out" 2> /dev/null && break; sleep 0.1; done
check "instance run: the runscript ran with the arguments (its output in the log)" grep -qx 'runscript args: x y' "$ULOGS/t-run.out"
ru "$CAPSA instance list t-run"
expect_match "instance run: the instance stays up after its runscript ended" "^t-run +[0-9]+" "$OUT"
ru "$CAPSA instance start --userns $IMG t-two"
ru "$CAPSA instance start $IMG t-run"
expect_rc "a second instance of the same name: exit 255" 255
expect_match "... says so" "instance t-run already exists" "$OUT"
ru "$CAPSA instance start $IMG 'bad/name'"
expect_rc "an invalid name: exit 255" 255
ru "$CAPSA instance list 't-*'"
expect_eq "list with a pattern: two instances" "2" "$(printf '%s\n' "$OUT" | grep -c '^t-')"
ru "$CAPSA instance stop --all"
expect_rc "stop --all" 0
ru "$CAPSA instance list"
expect_eq "stop --all: none left" "INSTANCE NAME    PID    IP    IMAGE" "$OUT"
ru "$CAPSA instance stop --all"
expect_rc "stop --all with nothing to stop: exit 255" 255

rm -f "$UHOME"/stopped-by-*
ru "$CAPSA instance start $IMG t-term trap-term"
wait_ok "$CAPSA exec instance://t-term sh -c \"ps | grep -q '[s]leep 7777777'\""
expect_rc "t-term: its startscript runs" 0
ru "$CAPSA instance stop --signal SIGTERM t-term"
expect_rc "stop --signal SIGTERM" 0
expect_eq "the startscript got SIGTERM" "got TERM" "$(cat "$UHOME/stopped-by-t-term" 2>&1)"
ru "$CAPSA instance start $IMG t-term2 trap-term"
wait_ok "$CAPSA exec instance://t-term2 sh -c \"ps | grep -q '[s]leep 7777777'\""
expect_rc "t-term2: its startscript runs" 0
ru "$CAPSA instance start $IMG t-term3 trap-term"
wait_ok "$CAPSA exec instance://t-term3 sh -c \"ps | grep -q '[s]leep 7777777'\""
expect_rc "t-term3: its startscript runs" 0
ru "$CAPSA instance stop t-term3"
expect_eq "stop: SIGINT by default" "got INT" "$(cat "$UHOME/stopped-by-t-term3" 2>&1)"
ru "$CAPSA instance list t-term2"
pid=$(listed_pid t-term2)
ru "$CAPSA instance stop --force t-term2"
expect_rc "stop --force" 0
expect_absent "stop --force: SIGKILL, which nothing traps" "$UHOME/stopped-by-t-term2"
if proc_gone "${pid:-0}"; then pass "stop --force: gone"; else fail "stop --force: gone" "pid $pid"; fi
ru "$CAPSA instance start $IMG t-ign ignore-int"
wait_ok "$CAPSA exec instance://t-ign sh -c \"ps | grep -q '[s]leep 7777777'\""
expect_rc "t-ign: its startscript runs" 0
ru "$CAPSA instance list t-ign"
pid=$(listed_pid t-ign)
ru "$CAPSA instance stop -t 1 t-ign"
expect_match "stop -t 1: a command that ignores SIGINT is killed after the timeout" "killing instance t-ign" "$OUT"
if proc_gone "${pid:-0}"; then pass "stop -t 1: gone"; else fail "stop -t 1: gone" "pid $pid"; fi

# ---- 4. a stale instance: its monitor killed --------------------------------------------
ru "$CAPSA instance start $SQFS t-stale"
ru "$CAPSA instance list t-stale"
pid=$(listed_pid t-stale)
mon=$(stat_field "${pid:-0}" 4)
kill -9 "${mon:-0}"
for i in $(seq 1 50); do proc_gone "${pid:-0}" && break; sleep 0.1; done
if proc_gone "${pid:-0}"; then pass "stale: the init dies with its monitor"; else fail "stale: the init dies with its monitor" "$pid"; fi
ru "$CAPSA exec instance://t-stale true"
expect_rc "stale: exec instance:// exits 255" 255
expect_match "stale: ... saying it is not running" "instance t-stale is not running" "$OUT"
ru "$CAPSA instance list"
expect_match "stale: list says it ended" "WARNING: instance t-stale is no longer running" "$OUT"
expect_nomatch "stale: ... and does not list it" "^t-stale " "$OUT"
expect_absent "stale: its record is removed" "$RSTATE/$UID_U/t-stale"
ru "$CAPSA instance list"
expect_nomatch "stale: the next list says nothing of it" "t-stale" "$OUT"
expect_eq "stale: no FUSE server left" "" "$(live_procs $U 'squashfuse_ll|cryptfuse')"

# ---- 5. root's instances, another user's ----------------------------------------------------
run "$CAPSA" instance start --contain "$IMG" t-root
expect_rc "root: instance start" 0
run "$CAPSA" instance list t-root
expect_match "root: list" "^t-root +[0-9]+ +$IMG\$" "$OUT"
rpid=$(listed_pid t-root)
for i in $(seq 1 50); do run "$CAPSA" exec --pwd / instance://t-root cat $EFFECT-t-root; [ "$RC" = 0 ] && break; sleep 0.1; done
expect_eq "root: exec instance://" "args:  instance=t-root" "$OUT"
run "$CAPSA" exec --pwd / instance://t-root grep CapEff /proc/self/status
expect_match "root: the joined command keeps root's capabilities" "CapEff:.*[1-9a-f]" "$OUT"
ru "$CAPSA exec instance://t-root id"
expect_rc "a user's exec instance:// of root's instance: exit 255" 255
ru "$CAPSA instance list"
expect_nomatch "a user's list does not show root's instance" "t-root" "$OUT"
ru "$CAPSA instance stop t-root"
expect_rc "a user's stop of root's instance: exit 255" 255
check "root's instance still runs" test -d "/proc/${rpid:-0}"

ru "$CAPSA instance start --contain $IMG t-mine"
ru "$CAPSA instance start --contain --userns $IMG t-mine-ns"
ru "$CAPSA instance list t-mine"
mine=$(listed_pid t-mine)
wait_ok "$CAPSA exec instance://t-mine cat $EFFECT-t-mine"
wait_ok "$CAPSA exec instance://t-mine-ns cat $EFFECT-t-mine-ns"
for n in t-mine t-mine-ns; do
    ru2 "$CAPSA exec instance://$n cat $EFFECT-$n"
    expect_rc "another user's exec instance://$n: exit 255" 255
    expect_nomatch "... nothing of the instance shown" "args:" "$OUT"
    ru2 "$CAPSA exec --userns instance://$n cat $EFFECT-$n"
    expect_rc "another user's exec --userns instance://$n: exit 255" 255
    ru2 "$CAPSA instance stop $n"
    expect_rc "another user's stop of $n: exit 255" 255
done
ru2 "$CAPSA instance list"
expect_nomatch "another user's list does not show them" "t-mine" "$OUT"
ru2 "$CAPSA instance list --user $U"
expect_rc "a user's list --user: exit 255" 255
run "$CAPSA" instance list --user $U
expect_match "root's list --user shows the user's setuid instance" "^t-mine +$mine " "$OUT"
expect_match "... and the user-namespace one" "^t-mine-ns +[0-9]+" "$OUT"
expect_nomatch "... not root's own" "t-root" "$OUT"
ru "ls $RSTATE/$UID_U"
expect_match "the user cannot read root's records of their own instances" "Permission denied" "$OUT"
ru "echo x >> $RSTATE/$UID_U/t-mine"
if [ "$RC" != 0 ] && printf '%s' "$OUT" | grep -q 'Permission denied'; then pass "... nor write them"; else
    fail "... nor write them" "exit $RC: $OUT"; fi

# The instance's other namespaces: network, UTS, IPC.
ru "$CAPSA instance start --net --network none --hostname inst-host --ipc $IMG t-ns"
expect_rc "setuid: instance start --net --hostname --ipc" 0
ru "$CAPSA instance list t-ns"
nspid=$(listed_pid t-ns)
ru "$CAPSA exec instance://t-ns sh -c 'hostname; ls /sys/class/net; for n in net uts ipc; do stat -L -c %i /proc/self/ns/\$n; done'"
expect_eq "joined: the instance's host name, its network (lo only), its net, uts and ipc namespaces" "inst-host
lo
$(for n in net uts ipc; do stat -L -c %i "/proc/${nspid:-0}/ns/$n"; done)" "$OUT"
expect_nomatch "... which are not the host's" "^$(stat -L -c %i /proc/self/ns/net)\$" "$OUT"
ru "$CAPSA instance stop t-ns"

# ---- 6. records edited by their owner never lead elsewhere -------------------------------
# forge RECORD PID: RECORD rewritten to describe process PID exactly (start
# time, monitor, namespace identities), as a determined owner would.
forge () {
    local rec=$1 p=$2 mon args ns
    mon=$(stat_field "$p" 4)
    args=(-e "s/^pid=.*/pid=$p/" -e "s/^start=.*/start=$(stat_field "$p" 22)/"
          -e "s/^monitor=.*/monitor=$mon/" -e "s/^monitor-start=.*/monitor-start=$(stat_field "$mon" 22)/")
    for ns in mnt pid ipc uts net user cgroup; do
        args+=(-e "s/^ns\\.$ns=.*/ns.$ns=$(stat -L -c %d:%i "/proc/$p/ns/$ns")/")
    done
    sed "${args[@]}" "$rec"
}
# put TEXT (stdin) as U's record NAME (U's own file, as U would write it)
put_record () { cat > "$WORK/rec.tmp" && install -o $U -g $U -m 0600 "$WORK/rec.tmp" "$USTATE/$1"; }

ru2 "$CAPSA instance start --contain --userns $IMG t-victim"
ru2 "$CAPSA instance list t-victim"
victim=$(listed_pid t-victim)
for i in $(seq 1 50); do as_user $U2 "$CAPSA exec instance://t-victim cat $EFFECT-t-victim" > /dev/null 2>&1 && break; sleep 0.1; done
setpriv --reuid=$UID_U --regid=$(id -g $U) --clear-groups sleep 7777 &
ownsleep=$!
root_sleep_pid=$rpid # root's instance init
cp "$USTATE/t-mine-ns" "$WORK/real-record"
ru "$CAPSA instance list t-mine-ns"
nspid=$(listed_pid t-mine-ns)
for target in "another user's instance init:$victim" "root's instance init:$root_sleep_pid" \
              "a plain process of the user's own:$ownsleep"; do
    what=${target%%:*}
    p=${target##*:}
    forge "$WORK/real-record" "$p" | put_record t-mine-ns
    ru "$CAPSA exec instance://t-mine-ns sh -c 'cat $EFFECT-t-victim $EFFECT-t-root; cat /proc/1/comm'"
    expect_rc "userns record edited to name $what, consistently: exit 255" 255
    expect_nomatch "... nothing of that process's container shown ($what)" "args:|appinit" "$OUT"
done
expect_match "the last refusal says why" "is not in a container" "$OUT"
# A recycled pid: the number is another process's now, with another start time.
sed "s/^pid=.*/pid=$ownsleep/" "$WORK/real-record" | put_record t-mine-ns
ru "$CAPSA exec instance://t-mine-ns true"
expect_rc "userns record with a recycled pid (another start time): exit 255" 255
expect_match "... 'is not running'" "is not running" "$OUT"
sed "s/^uid=.*/uid=$(id -u $U2)/" "$WORK/real-record" | put_record t-mine-ns
ru "$CAPSA exec instance://t-mine-ns true"
expect_rc "userns record naming another user: exit 255" 255
sed "s/^ns\\.mnt=.*/ns.mnt=4:4026531840/" "$WORK/real-record" | put_record t-mine-ns
ru "$CAPSA exec instance://t-mine-ns true"
expect_rc "userns record with another mount namespace: exit 255" 255
expect_match "... because it is not the one recorded" "not the one recorded" "$OUT"
# Root's stats and list of the user's instances read what the user wrote:
# a cgroup leading out of the cgroup file system (to a FIFO that would
# block root, or a device), or terminal escapes in the image's name.
ru "mkdir -p \$HOME/cg && rm -f \$HOME/cg/cpu.stat && mkfifo \$HOME/cg/cpu.stat"
{ grep -v '^cgroup=' "$WORK/real-record" | grep -v '^end$'; echo "cgroup=/../../../../../../..$UHOME/cg"; echo end; } | put_record t-mine-ns
OUT=$(timeout 20 "$CAPSA" instance stats --no-stream --user "$U" t-mine-ns 2>&1); RC=$?
expect_eq "root's stats of a record whose cgroup climbs out (to the user's FIFO): exit 255, no hang" "255" "$RC"
expect_match "... the record is not used" "no running instance named t-mine-ns" "$OUT"
sed 's/^image=.*/image=\/x\\x1b]0;pwn\\x07.sif/' "$WORK/real-record" | put_record t-mine-ns
run "$CAPSA" instance list --user "$U" t-mine-ns
expect_match "root's list of a record with escapes in the image's name: listed" "^t-mine-ns " "$OUT"
expect_eq "... with no control byte reaching root's terminal" "0" "$(printf '%s' "$OUT" | tr -d '\n\t' | LC_ALL=C grep -c '[[:cntrl:]]')"
ru "rm -rf \$HOME/cg"
put_record t-mine-ns < "$WORK/real-record"
ru "$CAPSA exec instance://t-mine-ns cat $EFFECT-t-mine-ns"
expect_eq "the untouched record joins the real instance" "args:  instance=t-mine-ns" "$OUT"
mv "$USTATE" "$USTATE.real" && ln -s "$RSTATE/$UID_U" "$USTATE"
ru "$CAPSA exec --userns instance://t-mine true"
expect_rc "the user's record directory a symlink to root's: exit 255" 255
rm "$USTATE" && mv "$USTATE.real" "$USTATE"

# Setuid mode reads root's record only: a record of the user's own with
# the setuid instance's name, naming root's instance, changes nothing.
forge "$WORK/real-record" "$rpid" | sed "s/^name=.*/name=t-mine/" | put_record t-mine
ru "$CAPSA exec instance://t-mine sh -c 'cat $EFFECT-t-mine; cat /proc/1/comm'"
expect_eq "setuid: a forged record of the user's own is ignored, the real instance joined" "args:  instance=t-mine
appinit" "$OUT"
ru "$CAPSA exec --userns instance://t-mine true"
expect_rc "setuid: ... and with --userns the forged one is refused (exit 255)" 255
rm -f "$USTATE/t-mine"
kill "$ownsleep" 2> /dev/null
wait "$ownsleep" 2> /dev/null
ru2 "$CAPSA instance stop t-victim"
expect_rc "the other user's instance was left alone: its owner stops it" 0

# ---- 7. logs and pid file through symbolic links -----------------------------------------
echo original > /tmp/capsa-inst-victim
chmod 0644 /tmp/capsa-inst-victim
ln -sfn /tmp/capsa-inst-victim "$UHOME/evil-pid" && chown -h $U:$U "$UHOME/evil-pid"
ru "$CAPSA instance start --pid-file $UHOME/evil-pid $IMG t-pidlink"
expect_rc "--pid-file a symlink to root's file: the instance starts" 0
expect_match "... with a warning" "cannot write the pid file" "$OUT"
expect_eq "... and root's file is untouched" "original" "$(cat /tmp/capsa-inst-victim)"
ln -sfn /tmp/capsa-inst-victim "$ULOGS/t-loglink.err" && chown -h $U:$U "$ULOGS/t-loglink.err"
ru "$CAPSA instance start $IMG t-loglink"
expect_rc "a log that is a symlink: exit 255" 255
expect_eq "... and root's file is untouched" "original" "$(cat /tmp/capsa-inst-victim)"
rm -f "$ULOGS/t-loglink.err" "$UHOME/evil-pid"

# ---- 8. stats -------------------------------------------------------------------------------
ru "$CAPSA instance stats t-mine"
expect_rc "stats without a cgroup of its own: exit 255" 255
expect_match "... with a clear message" "has no cgroup of its own" "$OUT"
CG2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -n "$CG2" ] && mkdir "$CG2/capsa-test-instance-$$" 2> /dev/null; then
    CG=$CG2/capsa-test-instance-$$
    # The front end itself in the cgroup, alone (setpriv and env exec, not fork).
    ( echo $BASHPID > "$CG/cgroup.procs" && cd "$UHOME" &&
      exec setpriv --reuid=$UID_U --regid=$(id -g $U) --clear-groups env -i PATH=/usr/bin:/bin HOME="$UHOME" \
          "$CAPSA" instance start "$IMG" t-cg ) > "$WORK/cg.out" 2>&1
    ru "$CAPSA instance stats --no-stream t-cg"
    expect_rc "stats in a cgroup of its own" 0
    expect_match "stats: Apptainer's columns and a CPU figure" "^t-cg +[0-9.]+% " "$OUT"
    ru "$CAPSA instance stats --json t-cg"
    expect_match "stats --json: cpu usage_usec from the cgroup's cpu.stat" "^[0-9]+$" \
        "$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu"]["usage_usec"])' 2>&1)"
    ru "$CAPSA instance stop t-cg"
    for i in $(seq 1 50); do rmdir "$CG" 2> /dev/null && break; sleep 0.1; done
    expect_absent "the test cgroup is empty after stop" "$CG"
else
    skip "stats in a cgroup of its own" "no writable cgroup v2 hierarchy here"
fi

# ---- 9. oras:// -------------------------------------------------------------------------------
if command -v docker-registry > /dev/null; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/reg"
    printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' "$WORK/reg/data" "$PORT" > "$WORK/reg/config.yml"
    docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 &
    REGPID=$!
    for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
    run "$CAPSA" push --no-https "$SIF" "oras://127.0.0.1:$PORT/test/inst:1"
    ru "$CAPSA instance start --no-https oras://127.0.0.1:$PORT/test/inst:1 t-oras"
    expect_rc "oras://: instance start" 0
    wait_ok "$CAPSA exec instance://t-oras cat $EFFECT-t-oras"
    expect_eq "oras://: exec instance://" "args:  instance=t-oras" "$OUT"
    ru "$CAPSA instance stop t-oras"
    expect_rc "oras://: stop" 0
    kill $REGPID
    wait $REGPID 2> /dev/null
else
    fail "oras:// instance" "docker-registry missing (scripts/deps.sh)"
fi

# ---- the end: nothing left ------------------------------------------------------------------
run "$CAPSA" instance stop t-root
expect_rc "root: stop" 0
if proc_gone "${rpid:-0}"; then pass "root: stop ends its instance"; else fail "root: stop ends its instance" "$rpid"; fi
ru "$CAPSA instance stop --all"
expect_rc "stop --all of the rest" 0
expect_eq "no process of the test users left" "" "$(live_procs $U,$U2 .)"
run ls -A "$RSTATE/$UID_U" "$RSTATE/0"
expect_eq "no record left in root's directories" "" "$(ls -A "$RSTATE/$UID_U" "$RSTATE/0" 2>/dev/null | grep -v : | grep -v '^$')"
expect_eq "no record left in the user's" "" "$(ls -A "$USTATE" 2>&1)"
no_leftover_mounts "no capsa mount left at the end"
expect_eq "no sanitizer or runtime error in any instance's log (monitors, inits)" "" \
    "$(cat "$ULOGS"/*.err "$U2HOME"/.capsa/instances/logs/*/*/*.err 2> /dev/null | grep -E 'Sanitizer|runtime error')"
