# Capabilities under the administrator's control (issue: "Linux capabilities
# under admin control").  Image: $IMG_PING, iputils ping without file
# capabilities.  Users: pinger (direct grants), capsa-u3 (member of group
# capsa-pingers), capsa-u1 (not a member).
GRANTS=$CAPSA_PREFIX/etc/capsa/capability.json
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
P=$IMG_PING
PING="ping -c 1 -W 2 127.0.0.1"
printf '{"users":{},"groups":{}}\n' > "$GRANTS"; chmod 0644 "$GRANTS"

# 1. The documented example.
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P $PING" 2>&1); RC=$?
expect_match "ungranted: the warning" "^WARNING: not authorized to add capability: CAP_NET_RAW$" "$OUT"
expect_match "ungranted: ping fails with Operation not permitted" "Operation not permitted" "$OUT"
expect_eq "ungranted: ping's exit status" "2" "$RC"
run "$CAPSA" capability add --user pinger CAP_NET_RAW
expect_eq "capability add: exit 0" "0" "$RC"
expect_match "capability add to a user warns about escalation and shows the undo" "escalate privilege.*capsa capability drop --user pinger CAP_NET_RAW" "$OUT"
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P $PING" 2>&1); RC=$?
expect_match "granted: ping works" "1 packets transmitted, 1 received" "$OUT"
expect_nomatch "granted: no warning" "WARNING" "$OUT"
run "$CAPSA" capability add --user pinger CAP_NET_RAW
expect_match "adding again says so" "already has CAP_NET_RAW" "$OUT"
run "$CAPSA" capability list pinger
expect_eq "capability list NAME" "pinger [user]: CAP_NET_RAW" "$OUT"
run_user "$CAPSA capability list"
expect_eq "capability list works for any user" "pinger [user]: CAP_NET_RAW" "$OUT"
run "$CAPSA" capability drop --user pinger CAP_NET_RAW
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P $PING" 2>&1)
expect_match "dropped: warning again" "^WARNING: not authorized to add capability: CAP_NET_RAW$" "$OUT"
expect_match "dropped: ping fails again" "Operation not permitted" "$OUT"
run "$CAPSA" capability drop --user pinger CAP_NET_RAW
expect_match "dropping what is not there says so" "does not have CAP_NET_RAW" "$OUT"

# 2. Group grants.
run "$CAPSA" capability add --group capsa-pingers net_raw
expect_eq "grant to a group" "0" "$RC"
OUT=$(as_user capsa-u3 "$CAPSA exec --add-caps CAP_NET_RAW $P $PING" 2>&1)
expect_match "group grant works for a member" "1 packets transmitted, 1 received" "$OUT"
OUT=$(as_user "$TUSER" "$CAPSA exec --add-caps CAP_NET_RAW $P $PING" 2>&1)
expect_match "group grant does not work for a non-member" "^WARNING: not authorized to add capability: CAP_NET_RAW$" "$OUT"
expect_match "non-member: ping fails" "Operation not permitted" "$OUT"
run "$CAPSA" capability list
expect_eq "list shows the group" "capsa-pingers [group]: CAP_NET_RAW" "$OUT"
run "$CAPSA" capability drop --group capsa-pingers CAP_NET_RAW

# 3. Root with the default configuration.
run "$CAPSA" exec "$P" $PING
expect_match "root: ping works with no flags" "1 packets transmitted, 1 received" "$OUT"
run "$CAPSA" exec --drop-caps CAP_NET_RAW "$P" $PING
expect_match "root --drop-caps CAP_NET_RAW: Operation not permitted" "Operation not permitted" "$OUT"
run "$CAPSA" exec --drop-caps all "$P" grep CapEff /proc/self/status
expect_eq "root --drop-caps all: CapEff zero" "CapEff:	0000000000000000" "$OUT"
run "$CAPSA" exec --no-privs "$P" grep -E '^Cap' /proc/self/status
expect_eq "root --no-privs: five masks zero" "$(printf 'CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000')" "$OUT"
run "$CAPSA" exec --keep-privs --no-privs "$P" grep CapEff /proc/self/status
expect_eq "root --no-privs wins over --keep-privs" "CapEff:	0000000000000000" "$OUT"
run "$CAPSA" exec --keep-privs "$P" grep CapEff /proc/self/status
expect_eq "root --keep-privs: CapEff equals root's own" "$(grep CapEff /proc/self/status)" "$OUT"

# 4. root default capabilities = no | file.
cp "$CONF" "$WORK/conf.orig"
sed -i 's/^root default capabilities = full/root default capabilities = no/' "$CONF"
run "$CAPSA" exec "$P" grep CapEff /proc/self/status
expect_eq "root default = no: CapEff zero" "CapEff:	0000000000000000" "$OUT"
run "$CAPSA" exec --add-caps CAP_NET_RAW "$P" grep CapEff /proc/self/status
expect_eq "root default = no, --add-caps CAP_NET_RAW: exactly bit 13" "CapEff:	0000000000002000" "$OUT"
sed -i 's/^root default capabilities = no/root default capabilities = file/' "$CONF"
run "$CAPSA" capability add --user root CAP_NET_RAW,CAP_CHOWN
run "$CAPSA" exec "$P" grep CapEff /proc/self/status
expect_eq "root default = file: exactly root's grants" "CapEff:	0000000000002001" "$OUT"
run "$CAPSA" capability drop --user root CAP_NET_RAW,CAP_CHOWN
cp "$WORK/conf.orig" "$CONF"

# 5. One grant, --add-caps all: all five masks are that bit, in a child too.
run "$CAPSA" capability add --user pinger CAP_NET_RAW
OUT=$(as_user pinger "$CAPSA exec --add-caps all $P sh -c 'grep -E ^Cap /proc/self/status'" 2>&1)
expect_match "add-caps all: warning lists the others" "^WARNING: not authorized to add capability: CAP_CHOWN,CAP_DAC_OVERRIDE,.*CAP_SYS_ADMIN" "$OUT"
expect_nomatch "add-caps all: the granted one is not refused" "WARNING: .*CAP_NET_RAW" "$OUT"
expect_eq "add-caps all: five masks = bit 13 in a child process" "$(printf 'CapInh:\t0000000000002000\nCapPrm:\t0000000000002000\nCapEff:\t0000000000002000\nCapBnd:\t0000000000002000\nCapAmb:\t0000000000002000')" "$(printf '%s\n' "$OUT" | grep ^Cap)"
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P grep NoNewPrivs /proc/self/status" 2>&1)
expect_eq "granted capabilities come with no_new_privs" "NoNewPrivs:	1" "$OUT"
OUT=$(as_user pinger "CAPSA_ADD_CAPS=CAP_NET_RAW $CAPSA exec $P $PING" 2>&1)
expect_match "CAPSA_ADD_CAPS works like --add-caps" "1 packets transmitted, 1 received" "$OUT"
OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW --drop-caps net_raw $P grep CapEff /proc/self/status" 2>&1)
expect_eq "--drop-caps wins for a user" "CapEff:	0000000000000000" "$OUT"
OUT=$(as_user pinger "$CAPSA -v exec --userns --add-caps CAP_NET_RAW $P grep CapEff /proc/self/status" 2>&1)
expect_match "userns: capabilities inside the namespace only, said with -v" "inside the user namespace only" "$OUT"
expect_match "userns: the requested capability is there" "CapEff:	0000000000002000" "$OUT"

# 6. Names.
for spelling in net_raw " Cap_Net_Raw " NET_RAW; do
    run "$CAPSA" exec --no-privs --add-caps "$spelling" "$P" true
    run "$CAPSA" capability add --user pinger "$spelling"
    expect_match "name '$spelling' accepted" "already has CAP_NET_RAW" "$OUT"
done
run "$CAPSA" capability add --user pinger CAP_BOGUS,CAP_SYS_TIME
expect_match "CAP_BOGUS reported" "unknown capability 'CAP_BOGUS', skipped" "$OUT"
run "$CAPSA" capability list pinger
expect_eq "and skipped; the rest added" "pinger [user]: CAP_NET_RAW,CAP_SYS_TIME" "$OUT"
before=$(md5sum < "$GRANTS")
run_user "$CAPSA capability add --user $TUSER CAP_NET_RAW"
expect_eq "capability add as non-root: 255" "255" "$RC"
expect_match "capability add as non-root: message" "^FATAL: .*only root" "$OUT"
run "$CAPSA" capability add CAP_NET_RAW
expect_eq "capability add without --user/--group: 255" "255" "$RC"
run "$CAPSA" capability add --user no-such-user-xyz CAP_NET_RAW
expect_eq "capability add for a missing user: 255" "255" "$RC"
expect_eq "capability add for a missing user: message" "FATAL:   user 'no-such-user-xyz' does not exist" "$OUT"
run "$CAPSA" capability add --user pinger CAP_BOGUS
expect_eq "only unknown names: 255" "255" "$RC"
expect_eq "failed changes leave the file unchanged" "$before" "$(md5sum < "$GRANTS")"
run "$CAPSA" capability avail NET_RAW
expect_match "avail describes a capability" "^CAP_NET_RAW +.*raw" "$OUT"
run "$CAPSA" caps avail
expect_eq "avail lists every capability the kernel knows" "$(( $(cat /proc/sys/kernel/cap_last_cap) + 1 ))" "$(printf '%s\n' "$OUT" | grep -c ^CAP_)"
run "$CAPSA" capability drop --user pinger CAP_SYS_TIME

# 7. Twenty concurrent adds, and a reader that never sees a partial file.
for i in $(seq 1 20); do id "capsa-c$i" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "capsa-c$i"; done
( end=$((SECONDS + 30)); bad=0
  while [ ! -e "$WORK/adds-done" ] && [ $SECONDS -lt $end ]; do
      python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$GRANTS" 2>/dev/null || bad=$((bad + 1))
  done; echo "$bad" > "$WORK/reader-bad" ) &
reader=$!
pids=()
for i in $(seq 1 20); do "$CAPSA" -q capability add --user "capsa-c$i" CAP_NET_RAW & pids+=($!); done
fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
touch "$WORK/adds-done"; wait "$reader"
expect_eq "20 concurrent adds all succeed" "0" "$fails"
expect_eq "20 concurrent adds all land in the file" "20" "$("$CAPSA" capability list | grep -c '^capsa-c[0-9]* \[user\]: CAP_NET_RAW$')"
expect_eq "a concurrent reader never failed to parse" "0" "$(cat "$WORK/reader-bad")"
for i in $(seq 1 20); do "$CAPSA" -q capability drop --user "capsa-c$i" CAP_NET_RAW; done

# 8. An untrustworthy capability.json stops setuid runs; root repairs it.
for bad in groupwrite userowned symlink; do
    cp "$GRANTS" "$WORK/grants.good"
    case $bad in
    groupwrite) chmod 0664 "$GRANTS" ;;
    userowned) chown "$TUSER" "$GRANTS" ;;
    symlink) mv "$GRANTS" "$WORK/grants.real" && chmod 0644 "$WORK/grants.real" && ln -s "$WORK/grants.real" "$GRANTS" ;;
    esac
    OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P true" 2>&1); RC=$?
    expect_eq "capability.json $bad: setuid run refused (255)" "255" "$RC"
    expect_match "capability.json $bad: message names the file" "^FATAL: .*capability.json" "$OUT"
    run "$CAPSA" capability add --user pinger CAP_NET_RAW
    expect_eq "capability.json $bad: root can still fix it" "0" "$RC"
    OUT=$(as_user pinger "$CAPSA exec --add-caps CAP_NET_RAW $P true" 2>&1); RC=$?
    expect_eq "capability.json $bad: fixed file accepted" "0" "$RC"
    expect_eq "capability.json $bad: fixed file is root's regular 0644 file" "root 644 regular file" "$(stat -c '%U %a %F' "$GRANTS")"
done

# 9. A setuid-root ping in the image gives pinger nothing.
suid=$WORK/suid-image
cp -a "$P" "$suid" && chown root:root "$suid/usr/bin/ping" && chmod 4755 "$suid/usr/bin/ping"
run "$CAPSA" capability drop --user pinger CAP_NET_RAW
OUT=$(as_user pinger "$CAPSA exec $suid $PING" 2>&1)
expect_match "setuid-root ping in the image: no privilege for pinger" "Operation not permitted" "$OUT"
cp "$HELPERS/showid" "$suid/usr/bin/showid" && chmod 4755 "$suid/usr/bin/showid"
OUT=$(as_user pinger "$CAPSA exec $suid /usr/bin/showid" 2>&1)
expect_eq "setuid-root helper in the image: euid stays pinger's" "uid=$(id -u pinger) euid=$(id -u pinger)" "$OUT"

# --keep-privs / --allow-setuid are root's.
for flag in --keep-privs --allow-setuid; do
    run_user "$CAPSA exec $flag $P true"
    expect_eq "$flag as a user: 255" "255" "$RC"
    expect_match "$flag as a user: message" "^FATAL: .*for root only" "$OUT"
done
printf '{"users":{},"groups":{}}\n' > "$GRANTS"; chmod 0644 "$GRANTS"
no_leftover_mounts "no mount left after the capability runs"
