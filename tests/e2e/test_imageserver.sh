# capsa's image server (libexec/capsa/imagefuse): what serves a user's
# image, sharing between one user's containers, the linger, 64 concurrent
# starts, encrypted images in one FUSE layer, the fallbacks to squashfuse_ll,
# and the attacks: another user connecting to a server or squatting its
# directory, a user's server and root's containers, what a user's server
# may serve.  The protocol is spoken by tests/helpers/imgsrv.py, written
# from the header's description.
U=$TUSER
U2=$TUSER2
UID1=$(id -u "$U")
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
IMGFUSE=$CAPSA_PREFIX/libexec/capsa/imagefuse
PY="python3 $TOP/tests/helpers/imgsrv.py"

set_conf () {
    if grep -q "^$1 = " "$CONF"; then sed -i "s|^$1 = .*|$1 = $2|" "$CONF"; else echo "$1 = $2" >> "$CONF"; fi
}
restore_conf () { install -m 0644 "$TOP/etc/capsa.conf" "$CONF"; }
# Ends every background process this file started (by pid), and the conf.
BGPIDS=()
cleanup_bg () {
    local p
    for p in "${BGPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${BGPIDS[@]}"; do wait "$p" 2>/dev/null; done
    BGPIDS=()
}
trap 'cleanup_bg; restore_conf; chmod 0755 "$IMGFUSE" 2>/dev/null' EXIT

# servers USER: "PID SOCKET" of each image server of this installation run
# by USER (other installations and test runs may have their own).
servers () {
    local uid p
    uid=$(id -u "$1")
    for p in $(pgrep -u "$uid" -x imagefuse); do
        [ "$(readlink "/proc/$p/exe")" = "$IMGFUSE" ] || continue
        echo "$p $(tr '\0' '\n' < "/proc/$p/cmdline" | grep -A1 -x -- --name | tail -n +2)"
    done
}
# servers_of USER FILE: the pids of USER's servers holding FILE open.
servers_of () {
    local p s
    servers "$1" | while read -r p s; do
        ls -l "/proc/$p/fd" 2>/dev/null | grep -qF -- "$2" && echo "$p"
    done
}
rundir_of () { local uid; uid=$(id -u "$1"); if [ -d "/run/user/$uid" ]; then echo "/run/user/$uid/capsa"; else echo "/tmp/capsa-$uid"; fi; }
# stat_of USER PID KEY: a counter of the server PID (asked as USER).
stat_of () {
    local sock
    sock=$(servers "$1" | awk -v p="$2" '$1 == p { print $2 }')
    as_user "$1" "$PY stats $(rundir_of "$1")/$sock" 2>/dev/null | awk -v k="$3" '$1 == k { print $2 }'
}
# wait_gone PID... : up to 8 s for the processes to end.
wait_gone () {
    local p i
    for i in $(seq 80); do
        for p in "$@"; do proc_gone "$p" || { sleep 0.1; continue 2; }; done
        return 0
    done
    return 1
}
# start_bg USER CMD: a container in the background that runs until killed;
# its command is "sleep N" with a unique N, whose pid is left in BG once it
# runs (not in a subshell: BGPIDS must keep what is started here).
start_bg () {
    local who=$1 n pid; shift
    n=$(( 5000 + RANDOM % 5000 ))
    BG=
    runuser -u "$who" -- env -i PATH=/usr/bin:/bin HOME=/ sh -c "cd / && exec $* sleep $n" > /dev/null 2>&1 &
    BGPIDS+=("$!")
    for _ in $(seq 100); do
        pid=$(pgrep -u "$who" -f -x "(/bin/)?sleep $n" | head -1)
        [ -n "$pid" ] && { BGPIDS+=("$pid"); BG=$pid; return 0; }
        sleep 0.1
    done
    return 1
}

# Images of this run (their own inodes: no server of another run serves them).
cp "$IMG_SQFS" "$WORK/img.sqfs"
"$CAPSA" -q sif new "$WORK/img.sif" && "$CAPSA" -q sif add --datatype 4 --parttype 2 --partfs 1 --partarch 2 "$WORK/img.sif" "$IMG_SQFS"
chmod 0644 "$WORK/img.sqfs" "$WORK/img.sif"
set_conf "image server linger" 2s

# --- what serves a user's image -----------------------------------------------------
run_user "$CAPSA -v exec $WORK/img.sif cat /proc/self/mountinfo"
expect_rc "setuid: a SIF runs through the image server" 0
expect_match "setuid: capsa says it started a shared image server" "^VERBOSE: image server: started a shared server of $WORK/img.sif" "$OUT"
expect_nomatch "setuid: no squashfuse_ll" "squashfuse_ll" "$OUT"
run_user "$CAPSA -v exec --userns $WORK/img.sqfs /bin/echo ran"
expect_eq "userns: a bare squashfs runs through the image server" "ran" "$(printf '%s\n' "$OUT" | grep -v '^VERBOSE')"
expect_match "userns: capsa says so" "^VERBOSE: image server: (started|joined)" "$OUT"
run "$CAPSA" -v exec "$WORK/img.sif" sh -c 'grep -c . /proc/self/mountinfo'
expect_rc "root: the SIF runs" 0
expect_nomatch "root: the kernel mounts root's image, no image server" "image server" "$OUT"

# --- the server -----------------------------------------------------------------------
start_bg "$U" "$CAPSA exec $WORK/img.sif"; c1=$BG
srv=$(servers_of "$U" "$WORK/img.sif")
if [ -z "$c1" ] || [ "$(printf '%s\n' "$srv" | grep -c .)" != 1 ]; then
    fail "a running container has one image server" "container '$c1', servers '$srv'"
else
    pass "a running container has one image server"
    st=/proc/$srv/status
    expect_eq "server: runs as the user (real, effective, saved, fs uid and gid)" \
        "$UID1 $UID1 $UID1 $UID1 $(id -g "$U") $(id -g "$U") $(id -g "$U") $(id -g "$U")" \
        "$(awk '/^Uid:/ { u = $2 " " $3 " " $4 " " $5 } /^Gid:/ { g = $2 " " $3 " " $4 " " $5 } END { print u, g }' "$st")"
    expect_eq "server: no capability in any set" "0000000000000000 0000000000000000 0000000000000000 0000000000000000" \
        "$(awk '/^Cap(Inh|Prm|Eff|Amb):/ { printf "%s%s", s, $2; s = " " } END { print "" }' "$st")"
    expect_eq "server: not dumpable (its /proc files are root's)" "0" "$(stat -c %u "/proc/$srv/environ")"
    run_as "$U" "cat /proc/$srv/environ"
    expect_match "server: the user cannot read its memory or environment" "Permission denied" "$OUT"
    expect_eq "server: its working directory is /" "/" "$(readlink "/proc/$srv/cwd")"
    expect_eq "server: no controlling terminal, a session of its own" "0 yes" \
        "$(awk '{ sub(/^.*\) /, ""); print $5, ($4 != '"$(ps -o sid= -p $$ | tr -d ' ')"' ? "yes" : "no") }' "/proc/$srv/stat")"
    expect_eq "server: in the host's mount, user and pid namespaces, not the container's" \
        "$(readlink /proc/self/ns/mnt /proc/self/ns/user /proc/self/ns/pid)" \
        "$(readlink "/proc/$srv/ns/mnt" "/proc/$srv/ns/user" "/proc/$srv/ns/pid")"
    expect_eq "server: its only user-named descriptor is the image (no terminal, no pipe of the caller's)" "" \
        "$(ls -l "/proc/$srv/fd" | grep -e /dev/pts -e 'pipe:' -e /dev/tty)"

    # Sharing: more containers of the same image, in both user modes.
    run_user "$CAPSA -v exec $WORK/img.sif cat /bin/busybox | md5sum"
    expect_match "a second container joins the running server (setuid)" "image server: joined the running server" "$OUT"
    run_user "$CAPSA -v exec --userns $WORK/img.sif /bin/true"
    expect_match "a user-namespace container joins the same server" "image server: joined the running server" "$OUT"
    expect_eq "still one server for the image" "$srv" "$(servers_of "$U" "$WORK/img.sif")"
    expect_eq "the server served 1 + 2 + the running container's connections" "4" "$(stat_of "$U" "$srv" connections_total)"
    # Blocks decompressed once: the same file read again by a fresh container.
    d1=$(stat_of "$U" "$srv" block_decompressions); h1=$(stat_of "$U" "$srv" block_hits)
    run_user "$CAPSA exec $WORK/img.sif cat /bin/busybox | md5sum"
    want=$(md5sum < "$IMG_DIR/bin/busybox")
    expect_eq "a fresh container reads the same bytes" "$want" "$OUT"
    d2=$(stat_of "$U" "$srv" block_decompressions); h2=$(stat_of "$U" "$srv" block_hits)
    expect_eq "... without decompressing any block again" "$d1" "$d2"
    expect_eq "... from the server's cache" "yes" "$([ "${h2:-0}" -gt "${h1:-0}" ] && echo yes || echo no)"

    # Another user, same image file: a server of their own.
    run_as "$U2" "$CAPSA -v exec $WORK/img.sif /bin/true"
    expect_match "$U2 starts a server of their own for the same file" "image server: started a shared server" "$OUT"
    expect_eq "... and $U's server took no connection from it" "5" "$(stat_of "$U" "$srv" connections_total)"

    # Root's containers never reach a user's server.
    run "$CAPSA" -v exec "$WORK/img.sif" /bin/true
    expect_nomatch "root's run of the image uses no image server while $U's runs" "image server" "$OUT"
    run "$CAPSA" -v exec --userns "$WORK/img.sif" /bin/true
    expect_nomatch "root's --userns run uses no image server either" "image server" "$OUT"
    expect_eq "... and $U's server took no connection from root" "5" "$(stat_of "$U" "$srv" connections_total)"
    # The linger: the server stays while a container runs, then 2 s.
    kill -9 "$c1"
    for _ in $(seq 30); do proc_gone "$c1" && break; sleep 0.1; done
    sleep 0.5
    expect_eq "linger: the server stays after its last container ended" "$srv" "$(servers_of "$U" "$WORK/img.sif")"
    run_user "$CAPSA -v exec $WORK/img.sif /bin/true"
    expect_match "linger: a container in that time finds it warm" "image server: joined the running server" "$OUT"
    t0=$(date +%s.%N)
    wait_gone "$srv"
    expect_eq "linger: it ends within the linger (2 s) and a little" "yes" \
        "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print (b - a < 4.5) ? "yes" : "no" }')"
    expect_eq "linger: its socket is gone with it" "" "$(ls "$(rundir_of "$U")" | grep -F "$(servers "$U" | grep "^$srv " | cut -d' ' -f2)x")"
fi
cleanup_bg

set_conf "image server linger" 0
run_user "$CAPSA -v exec $WORK/img.sqfs /bin/true"
expect_match "linger 0: a server starts" "image server: started" "$OUT"
sleep 0.5
expect_eq "linger 0: it ended with its container" "" "$(servers_of "$U" "$WORK/img.sqfs")"
set_conf "image server linger" 2s

# A server must not hold the caller's output open.
t0=$(date +%s.%N)
OUT=$(as_user "$U" "$CAPSA exec $WORK/img.sif /bin/echo piped | cat")
expect_eq "a pipe from capsa ends with the command, not with the server's linger" "piped yes" \
    "$OUT $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print (b - a < 1.8) ? "yes" : "no" }')"
wait_gone $(servers_of "$U" "$WORK/img.sif")

# --- 64 concurrent starts of one image ------------------------------------------------
cp "$WORK/img.sif" "$WORK/img64.sif"
for i in $(seq 64); do
    as_user "$U" "$CAPSA -v exec $WORK/img64.sif /bin/echo ok-$i" > "$WORK/c64.$i" 2>&1 &
done
wait
ok=0; started=0; joined=0
for i in $(seq 64); do
    grep -qx "ok-$i" "$WORK/c64.$i" && ok=$((ok + 1))
    grep -q "image server: started a shared server" "$WORK/c64.$i" && started=$((started + 1))
    grep -q "image server: joined the running server" "$WORK/c64.$i" && joined=$((joined + 1))
done
expect_eq "64 concurrent execs of one image: all succeed" 64 "$ok"
expect_eq "64 concurrent execs: one server started, 63 joined it" "1 63" "$started $joined"
sleep 0.3
no_leftover_mounts "64 concurrent execs: nothing left mounted"
wait_gone $(servers_of "$U" "$WORK/img64.sif")
expect_eq "64 concurrent execs: no server after the linger" "" "$(servers_of "$U" "$WORK/img64.sif")"

# --- encrypted images: one FUSE layer, shared only with the key ----------------------
LUKS=$(fixture_luks_set) && GC=$(fixture_gocryptfs_set)
cp "$LUKS/rsa2048-4096.sif" "$WORK/enc.sif" && cp "$LUKS/rsa2048.pem" "$WORK/enc.pem"
cp "$GC/rsa2048.sif" "$WORK/gc.sif" && cp "$GC/rsa2048.pem" "$WORK/gc.pem"
chmod 0644 "$WORK"/enc.* "$WORK"/gc.*
MARK=$(fixture_crypt_marker)
start_bg "$U" "$CAPSA exec --pem-path $WORK/enc.pem $WORK/enc.sif"; c2=$BG
run_user "$CAPSA -v exec --pem-path $WORK/enc.pem $WORK/enc.sif cat /marker"
expect_match "LUKS2: a second container of the encrypted image joins its server" "image server: joined the running server" "$OUT"
expect_nomatch "LUKS2: ... which opened the image already: no key derivation runs again" "key derivation" "$OUT"
expect_match "LUKS2: and reads the plaintext" "^$MARK$" "$OUT"
esrv=$(servers_of "$U" "$WORK/enc.sif")
expect_eq "LUKS2: one server, no capsa-cryptfuse or squashfuse_ll (one FUSE layer)" "1 " \
    "$(printf '%s\n' "$esrv" | grep -c .) $(pgrep -u "$U" -f 'cryptfuse|squashfuse_ll' | while read -r p; do ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$WORK/enc" && echo "$p"; done)"
for mode in "" --userns; do
    run_user "$CAPSA -v exec $mode --pem-path $WORK/gc.pem $WORK/gc.sif cat /marker"
    expect_match "gocryptfs ${mode:-setuid}: served by the image server" "image server: (started|joined)" "$OUT"
    expect_match "gocryptfs ${mode:-setuid}: the plaintext" "^$MARK$" "$OUT"
    if [ -z "$mode" ]; then
        expect_match "gocryptfs: the first container's server ran the key derivation (said with -v)" \
            "^VERBOSE: gocryptfs image unlocked: key derivation scrypt" "$OUT"
    else
        expect_nomatch "gocryptfs: the second one's did not run it again" "key derivation" "$OUT"
    fi
done
if [ -n "$esrv" ]; then
    off=$(tr '\0' '\n' < "/proc/$esrv/cmdline" | grep -A1 -x -- --offset | tail -1)
    size=$(tr '\0' '\n' < "/proc/$esrv/cmdline" | grep -A1 -x -- --size | tail -1)
    sock=$(rundir_of "$U")/$(servers "$U" | awk -v p="$esrv" '$1 == p { print $2 }')
    n0=$(stat_of "$U" "$esrv" connections_total)
    # The same user without the key: a record of the right shape, wrong key.
    printf 'CAPSAKEY\001\100%s' "$(head -c 64 /dev/zero | tr '\0' 'k')" > "$WORK/wrongkey"
    chmod 0644 "$WORK/wrongkey"
    run_user "$PY serve $sock $WORK/enc.sif $off $size $WORK/wrongkey"
    expect_match "attack: the image's user, with another data key, is refused by its server" "^Fthe key does not open" "$OUT"
    run_user "$PY serve $sock $WORK/enc.sif $off $size --passphrase wrong-passphrase"
    expect_eq "attack: ... and with a passphrase that opens no keyslot" "Fthe passphrase does not open the image" "$OUT"
    run_user "$PY serve $sock $WORK/img.sif $off $size $WORK/wrongkey"
    expect_eq "attack: another file offered to an image's server is refused" "I" "$OUT"
    run_user "$PY serve $sock $WORK/enc.sif $off $size"
    expect_eq "attack: no key at all is refused" "I" "$OUT"
    run_user "$PY garbage $sock"
    expect_eq "attack: a malformed request is refused" "E" "$OUT"
    expect_eq "attack: none of them got a connection" "$n0" "$(stat_of "$U" "$esrv" connections_total)"
    OUT=$(nsenter -t "$c2" -m cat /marker 2>&1)
    expect_eq "attack: the running container still reads its image afterwards" "$MARK" "$OUT"
fi
cleanup_bg
rm -f "$WORK/wrongkey"

# --- another user ---------------------------------------------------------------------
start_bg "$U" "$CAPSA exec $WORK/img.sif"; c3=$BG
srv=$(servers_of "$U" "$WORK/img.sif")
sock=$(rundir_of "$U")/$(servers "$U" | awk -v p="$srv" '$1 == p { print $2 }')
if [ -z "$srv" ] || [ -z "$c3" ]; then
    fail "attack setup: a running server of $U" "server '$srv', container '$c3'"
else
    n0=$(stat_of "$U" "$srv" connections_total)
    run_as "$U2" "$PY stats $sock"
    expect_match "attack: $U2 cannot connect to $U's server (its directory is $U's, 0700)" "^refused: 13$" "$OUT"
    run_as "$U2" "ls $(rundir_of "$U")"
    expect_match "attack: $U2 cannot list $U's runtime directory" "Permission denied" "$OUT"
    expect_eq "attack: $U's runtime directory: $U's, mode 0700; the socket 0600" "$UID1 700 $UID1 600" \
        "$(stat -c '%u %a' "$(rundir_of "$U")") $(stat -c '%u %a' "$sock")"
    # Even with the directory and socket opened to all (by root), the
    # server hears only its own user.
    chmod 0711 "$(rundir_of "$U")"; chmod 0666 "$sock"
    run_as "$U2" "$PY serve $sock $WORK/img.sif 32768 $(stat -c %s "$IMG_SQFS")"
    expect_eq "attack: with the socket open to all, $U2's request is dropped unanswered" "closed" "$OUT"
    run_as "$U2" "$PY stats $sock"
    expect_eq "attack: ... and $U2 gets no counters either" "closed" "$OUT"
    chmod 0700 "$(rundir_of "$U")"; chmod 0600 "$sock"
    expect_eq "attack: $U's server took no connection from $U2" "$n0" "$(stat_of "$U" "$srv" connections_total)"
fi
cleanup_bg
wait_gone $(servers_of "$U" "$WORK/img.sif")

# A socket of another user (here root's) at the very name of $U's server:
# the container's mount never goes to it.
if [ -n "$sock" ] && [ ! -e "$sock" ]; then
    python3 "$TOP/tests/helpers/imgsrv.py" listen "$sock" "$WORK/fake.log" &
    fake=$!
    BGPIDS+=("$fake")
    for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
    : >> "$WORK/fake.log"
    run_user "$CAPSA -v exec $WORK/img.sif /bin/echo not-given"
    expect_match "attack: a socket of root's in $U's directory: the container still runs" "^not-given$" "$OUT"
    expect_match "attack: ... on a server of its own, refusing that socket" "image server: not shared: its server refused" "$OUT"
    expect_eq "attack: ... and the foreign socket got nothing (no request, no descriptor)" "" \
        "$(grep -v '^connection: 0 bytes, 0 descriptors$' "$WORK/fake.log")"
    kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null
    rm -f "$sock"
else
    fail "attack setup: the name of $U's stopped server" "socket '$sock'"
fi

# A directory in /tmp squatted by another user: never used.
V=capsa-ifv
id "$V" > /dev/null 2>&1 || useradd -m -s /bin/sh "$V"
VUID=$(id -u "$V")
if [ -d "/run/user/$VUID" ]; then
    skip "attack: squatting /tmp/capsa-$VUID" "/run/user/$VUID exists: the victim does not use /tmp"
else
    for kind in dir symlink; do
        rm -rf "/tmp/capsa-$VUID" "$WORK/squat"
        mkdir -m 0777 "$WORK/squat" && chown "$U2" "$WORK/squat"
        if [ $kind = dir ]; then
            as_user "$U2" "mkdir -m 0777 /tmp/capsa-$VUID"
        else
            as_user "$U2" "ln -s $WORK/squat /tmp/capsa-$VUID"
        fi
        run_as "$V" "$CAPSA -v exec $WORK/img.sif /bin/echo victim-ran"
        expect_match "attack: /tmp/capsa-$VUID made by $U2 ($kind): the victim's container runs" "^victim-ran$" "$OUT"
        expect_match "attack: ... with a server of its own, saying why ($kind)" \
            "image server: not shared: the runtime directory .* cannot be used \((it belongs to another user|it is not a directory)\)" "$OUT"
        expect_eq "attack: ... and nothing of the victim's in the squatted place ($kind)" "" \
            "$(find "/tmp/capsa-$VUID/" "$WORK/squat" -mindepth 1 2>/dev/null)"
        expect_eq "attack: ... and its private server ended with it ($kind)" "" "$(servers_of "$V" "$WORK/img.sif")"
        rm -rf "/tmp/capsa-$VUID"
    done
fi

# What a user's server may serve: a setuid-root program and a device node
# in the user's image give nothing.
cp -a "$IMG_DIR" "$WORK/danger"
cp "$HELPERS/showid" "$WORK/danger/showid" && chown root:root "$WORK/danger/showid" && chmod 4755 "$WORK/danger/showid"
mknod "$WORK/danger/mem" c 1 1 && chmod 0666 "$WORK/danger/mem"
mksquashfs "$WORK/danger" "$WORK/danger.sqfs" -noappend -quiet -no-progress > /dev/null && chmod 0644 "$WORK/danger.sqfs"
rm -rf "$WORK/danger"
for mode in "" --userns; do
    run_user "$CAPSA -v exec $mode $WORK/danger.sqfs /showid"
    expect_match "attack: a setuid-root program in the user's image served by the image server runs as the user (${mode:-setuid})" \
        "^uid=$UID1 euid=$UID1$" "$OUT"
    expect_match "attack: (served by the image server, ${mode:-setuid})" "image server: (started|joined)" "$OUT"
    run_user "$CAPSA exec $mode $WORK/danger.sqfs sh -c 'head -c 1 /mem > /dev/null && echo read-mem'"
    expect_match "attack: a device node in the image cannot be opened (${mode:-setuid})" "Permission denied|Operation not permitted" "$OUT"
    expect_nomatch "attack: (nothing was read from it, ${mode:-setuid})" "read-mem" "$OUT"
done

# --- fallbacks -------------------------------------------------------------------------
mksquashfs "$IMG_DIR" "$WORK/lzo.sqfs" -comp lzo -noappend -quiet -no-progress > /dev/null && chmod 0644 "$WORK/lzo.sqfs"
run_user "$CAPSA -v exec $WORK/lzo.sqfs /bin/echo lzo-ran"
expect_match "fallback: an LZO image (libsquashfs reads none) runs" "^lzo-ran$" "$OUT"
expect_match "fallback: squashfuse_ll serves it, and capsa says why" \
    "^VERBOSE: image server: the squashfs is compressed with lzo, .*: squashfuse_ll serves" "$OUT"
set_conf "image server" squashfuse_ll
run_user "$CAPSA -v exec $WORK/img.sif /bin/echo sq-ran"
expect_match "fallback: 'image server = squashfuse_ll' runs the image" "^sq-ran$" "$OUT"
expect_match "fallback: ... with squashfuse_ll, saying so" "^VERBOSE: image server: 'image server = squashfuse_ll' in capsa.conf: squashfuse_ll serves" "$OUT"
set_conf "image server" capsa
chmod 0700 "$IMGFUSE"
run_user "$CAPSA -v exec $WORK/img.sif /bin/echo noexec-ran"
expect_match "fallback: an image server the user cannot run: the image still runs" "^noexec-ran$" "$OUT"
expect_match "fallback: ... with squashfuse_ll, saying why" "^VERBOSE: image server: .*imagefuse cannot be run: squashfuse_ll serves" "$OUT"
run_user "$CAPSA -v exec --pem-path $WORK/enc.pem $WORK/enc.sif cat /marker"
expect_match "fallback: an encrypted image without the image server runs" "^$MARK$" "$OUT"
expect_match "fallback: ... with capsa-cryptfuse and squashfuse_ll" "capsa-cryptfuse with squashfuse_ll serves the image" "$OUT"
chmod 0755 "$IMGFUSE"

sleep 0.3
no_leftover_mounts "image server: nothing left mounted"
wait_gone $(for u in "$U" "$U2" "$V" root; do servers "$u" | cut -d' ' -f1; done)
left=""
for u in "$U" "$U2" "$V" root; do
    for p in $(servers "$u" | cut -d' ' -f1); do ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$WORK" && left="$left $p"; done
done
expect_eq "image server: no server of this test's images after the linger" "" "$left"
