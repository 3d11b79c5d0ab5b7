# Issue 14, runtime part: Apptainer's container environment, the init under
# --pid, the umask, --contain --home, --cwd/--mount/--no-mount, shell
# --norc and the prompt, -c/--config.  Each in the three modes where it
# applies: root, a user through the setuid starter, a user with --userns.
# What is expected comes from Apptainer's code (internal/pkg/util/env,
# the action script, e2e/env/env.go), cited at each block.

U=$TUSER
UID_U=$(id -u "$U")
UHOME=$(getent passwd "$U" | cut -d: -f6)
CONF=$CAPSA_PREFIX/etc/capsa/capsa.conf
cp "$CONF" "$WORK/conf.orig"
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# An image with Apptainer's layout: the busybox tree plus env scripts that
# set variables and look at what they can see of the host.
IMG=$WORK/envimg
cp -a "$IMG_DIR" "$IMG"
cat > "$IMG/.singularity.d/env/50-capsa-test.sh" <<'EOF'
export SEEN_HOST="${HOSTVAR-unset}"
export IMGVAR=image
export EMPTIED=
EOF
chmod 0755 "$IMG/.singularity.d/env/50-capsa-test.sh"
# As in images Apptainer builds (build/sources/99-base.sh).
printf '%s\n' 'if [ -z "${PS1:-}" ]; then PS1="Apptainer> "; fi' 'export PS1' > "$IMG/.singularity.d/env/99-base.sh"
chmod -R a+rX "$IMG"
IMGPATH=/bin:/usr/bin:/sbin   # its 90-environment.sh

for mode in root setuid userns; do
    case $mode in
    root) r () { run env "$@"; } ;;
    setuid) r () { run_user "$(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$(printf '%q ' "$@" | sed "s| exec | exec --userns |; s| shell | shell --userns |")"; } ;;
    esac

    # --- APPTAINERENV_, SINGULARITYENV_, CAPSAENV_ and their precedence
    #     (env/create.go: APPTAINERENV_ first, then SINGULARITYENV_; --env
    #     and --env-file become APPTAINERENV_ and win) ----------------------
    r APPTAINERENV_A=app SINGULARITYENV_B=sing CAPSAENV_C=capsa "$CAPSA" exec "$IMG" sh -c 'echo $A $B $C'
    expect_eq "$mode: APPTAINERENV_A, SINGULARITYENV_B, CAPSAENV_C set A, B, C" "app sing capsa" "$OUT"
    r SINGULARITYENV_X=sing APPTAINERENV_X=app "$CAPSA" exec "$IMG" sh -c 'echo $X'
    expect_match "$mode: APPTAINERENV_X wins over SINGULARITYENV_X" "^app$" "$(echo "$OUT" | tail -1)"
    expect_match "$mode: a different SINGULARITYENV_X is a warning naming it" "^WARNING: .*SINGULARITYENV_X=sing" "$OUT"
    r CAPSAENV_X=capsa APPTAINERENV_X=app "$CAPSA" exec "$IMG" sh -c 'echo $X'
    expect_eq "$mode: CAPSAENV_X wins over APPTAINERENV_X" "capsa" "$(echo "$OUT" | tail -1)"
    printf 'X=file\nY=file\n' > "$WORK/envfile-$mode" && chmod 0644 "$WORK/envfile-$mode"
    r APPTAINERENV_X=app APPTAINERENV_Y=app "$CAPSA" exec --env X=opt --env-file "$WORK/envfile-$mode" "$IMG" sh -c 'echo $X $Y'
    expect_eq "$mode: --env wins over --env-file, which wins over APPTAINERENV_" "opt file" "$(echo "$OUT" | tail -1)"
    r HOSTVAR=host APPTAINERENV_HOSTVAR=over "$CAPSA" exec "$IMG" sh -c 'echo $HOSTVAR'
    expect_eq "$mode: APPTAINERENV_X wins over the host's X" "over" "$OUT"
    r APPTAINERENV_HOME=/evil "$CAPSA" exec "$IMG" sh -c 'echo $HOME'
    expect_match "$mode: APPTAINERENV_HOME is refused with a warning" "^WARNING: overriding HOME with APPTAINERENV_HOME is not permitted" "$OUT"
    expect_nomatch "$mode: ... and HOME stays" "^/evil$" "$OUT"

    # --- evaluation after the image's env scripts, in the container
    #     (process_linux.go injectEnvHandler; e2e env.go apptainerEnvOption) ---
    r "$CAPSA" exec --env 'PATH=/opt/bin:$PATH' "$IMG" sh -c 'echo $PATH'
    expect_eq "$mode: --env 'PATH=/opt/bin:\$PATH' extends the image's PATH" "/opt/bin:$IMGPATH" "$OUT"
    r APPTAINERENV_PATH='$PATH:/foo' "$CAPSA" exec "$IMG" sh -c 'echo $PATH'
    expect_eq "$mode: APPTAINERENV_PATH='\$PATH:/foo' evaluated" "$IMGPATH:/foo" "$OUT"
    r "$CAPSA" exec --env PREPEND_PATH=/pre --env APPEND_PATH=/app "$IMG" sh -c 'echo $PATH'
    expect_eq "$mode: PREPEND_PATH and APPEND_PATH" "/pre:$IMGPATH:/app" "$OUT"
    r SINGULARITYENV_APPEND_PATH=/s "$CAPSA" exec "$IMG" sh -c 'echo $PATH'
    expect_eq "$mode: SINGULARITYENV_APPEND_PATH" "$IMGPATH:/s" "$OUT"
    r APPTAINERENV_WHO='$IMGVAR-$(echo sub)' APPTAINERENV_ESC='\$IMGVAR' "$CAPSA" exec "$IMG" sh -c 'echo $WHO $ESC'
    expect_eq "$mode: values are evaluated by the shell (\$VAR, \$(...), \\\$)" "image-sub \$IMGVAR" "$OUT"
    r APPTAINERENV_WHO='$IMGVAR-$(echo sub)' "$CAPSA" exec --no-eval --env 'P=$PATH' "$IMG" sh -c 'echo "$WHO $P $APPTAINER_NO_EVAL"'
    expect_eq "$mode: --no-eval: values taken literally" "\$IMGVAR-\$(echo sub) \$PATH 1" "$OUT"
    printf 'PATH="\\$PATH:/envfile"\nFROMHOST=$HOSTVAR\nexport Q="a b"\n' > "$WORK/envfile2-$mode"
    chmod 0644 "$WORK/envfile2-$mode"
    r HOSTVAR=hv "$CAPSA" exec --env-file "$WORK/envfile2-$mode" "$IMG" sh -c 'echo "$PATH|$FROMHOST|$Q"'
    expect_eq "$mode: --env-file: \\\$PATH for the container, \$HOSTVAR from the caller, quotes" "$IMGPATH:/envfile|hv|a b" "$OUT"
    printf 'A=1\nB=$(id -u)\n' > "$WORK/envfile3-$mode" && chmod 0644 "$WORK/envfile3-$mode"
    r "$CAPSA" exec --env-file "$WORK/envfile3-$mode" "$IMG" true
    expect_eq "$mode: --env-file with a command substitution: exit 255" "255" "$RC"
    expect_eq "$mode: ... one FATAL line naming file and line" "FATAL:   --env-file $WORK/envfile3-$mode: line 2: command substitution and arithmetic (\$(...)) are not allowed" "$OUT"

    # --- env scripts run with the host environment cleared, which comes
    #     back afterwards (action_script.sh clear_env/restore_env) ----------
    r HOSTVAR=host IMGVAR=host EMPTIED=host "$CAPSA" exec "$IMG" sh -c 'echo "$SEEN_HOST $HOSTVAR $IMGVAR [${EMPTIED-unset}]"'
    expect_eq "$mode: env scripts do not see the host; the image wins over it; a variable they empty is unset" "unset host image [unset]" "$OUT"
    r APPTAINERENV_IMGVAR=over "$CAPSA" exec "$IMG" sh -c 'echo $IMGVAR'
    expect_eq "$mode: APPTAINERENV_ wins over the image's env scripts" "over" "$OUT"

    # --- --cleanenv keeps TERM and the proxies, LANG=C (create.go) ---------
    r FOO=x LANG=fr_FR.UTF-8 http_proxy=http://proxy:3128 NO_PROXY=localhost "$CAPSA" exec --cleanenv "$IMG" sh -c 'echo "[${FOO-}] $LANG $http_proxy $NO_PROXY"'
    expect_eq "$mode: --cleanenv keeps the proxies, LANG=C, drops FOO" "[] C http://proxy:3128 localhost" "$OUT"
    r APPTAINERENV_LANG=de_DE "$CAPSA" exec --containall "$IMG" sh -c 'echo $LANG'
    expect_eq "$mode: --containall: APPTAINERENV_LANG overrides LANG=C" "de_DE" "$OUT"

    # --- the caller's umask (launcher setUmask; --no-umask gives 0022) -----
    case $mode in
    root) OUT=$( (umask 0027; "$CAPSA" exec "$IMG" sh -c umask) 2>&1) ;;
    *) OUT=$(as_user "$U" "umask 0027; $CAPSA exec $([ $mode = userns ] && echo --userns) $IMG sh -c umask" 2>&1) ;;
    esac
    expect_eq "$mode: the caller's umask is kept" "0027" "$OUT"
    case $mode in
    root) OUT=$( (umask 0077; "$CAPSA" exec --no-umask "$IMG" sh -c umask) 2>&1) ;;
    *) OUT=$(as_user "$U" "umask 0077; $CAPSA exec $([ $mode = userns ] && echo --userns) --no-umask $IMG sh -c umask" 2>&1) ;;
    esac
    expect_eq "$mode: --no-umask gives 0022" "0022" "$OUT"

    # --- --contain --home SRC:DST binds SRC (container_linux.go addHomeStagingDir)
    mkdir -p "$WORK/home-$mode" && echo inhome > "$WORK/home-$mode/f" && chmod -R a+rwX "$WORK/home-$mode"
    r "$CAPSA" exec --contain --home "$WORK/home-$mode:/myhome" "$IMG" sh -c 'echo $HOME; cat /myhome/f; echo w > /myhome/written'
    expect_eq "$mode: --contain --home SRC:DST: SRC is bound at DST" "/myhome
inhome" "$OUT"
    expect_eq "$mode: ... writes reach SRC" "w" "$(cat "$WORK/home-$mode/written" 2>&1)"

    # --- APPTAINER_CONTAINER is absolute for a relative path ---------------
    case $mode in
    root) OUT=$(cd "$WORK" && "$CAPSA" exec ./envimg/../envimg sh -c 'echo $APPTAINER_CONTAINER $SINGULARITY_CONTAINER $CAPSA_CONTAINER $APPTAINER_NAME' 2>&1) ;;
    *) OUT=$(as_user "$U" "cd $WORK && $CAPSA exec $([ $mode = userns ] && echo --userns) ./envimg/../envimg sh -c 'echo \$APPTAINER_CONTAINER \$SINGULARITY_CONTAINER \$CAPSA_CONTAINER \$APPTAINER_NAME'" 2>&1) ;;
    esac
    expect_eq "$mode: APPTAINER_CONTAINER (and the others) absolute for a relative image path" "$IMG $IMG $IMG envimg" "$OUT"

    # --- the init under --pid (process_linux.go: the shim) -----------------
    r "$CAPSA" exec --pid "$IMG" sh -c 'cat /proc/1/comm; echo $PPID'
    expect_eq "$mode: --pid: PID 1 is the init, the command its child" "appinit
1" "$OUT"
    r "$CAPSA" exec --pid --no-init "$IMG" sh -c 'echo $$'
    expect_eq "$mode: --pid --no-init: the command is PID 1" "1" "$OUT"
    r "$CAPSA" exec --pid "$IMG" sh -c 'exit 7'
    expect_eq "$mode: --pid: the command's exit status" "7" "$RC"
    r "$CAPSA" exec --pid "$IMG" sh -c 'kill -KILL $$'
    expect_eq "$mode: --pid: killed by signal 9 gives 137" "137" "$RC"
    r "$CAPSA" exec --containall "$IMG" cat /proc/1/comm
    expect_eq "$mode: --containall has the init too" "appinit" "$OUT"
done
no_leftover_mounts "no capsa mount left after the environment runs"

# --- signals reach a command that traps them, through the monitor or the
#     container's PID 1 (kill from outside, as Slurm does) ------------------
# Starts the command in the background; sets BG (the runuser/capsa pid),
# INIT (the container's PID 1 as the host sees it) and MON (its parent,
# the monitor).
start_trap () {
    local mode=$1 sig=$2; shift 2
    local flag=""; [ "$mode" = userns ] && flag=--userns
    local cmd="$CAPSA exec $flag $* $IMG sh -c 'trap \"echo got-$sig; exit 42\" $sig; echo ready; while :; do sleep 0.1; done'"
    rm -f "$WORK/trap.out"
    # A background job of a script starts with SIGINT and SIGQUIT ignored,
    # and a shell cannot trap what it was started ignoring: give the
    # command the default disposition, as from a terminal or Slurm.
    if [ "$mode" = root ]; then
        env --default-signal=INT,QUIT sh -c "exec $cmd" > "$WORK/trap.out" 2>&1 &
    else
        env --default-signal=INT,QUIT runuser -u "$U" -- env -i PATH=/usr/bin:/bin HOME="$UHOME" sh -c "cd ~ && exec $cmd" > "$WORK/trap.out" 2>&1 &
    fi
    BG=$!
    INIT=""
    for _ in $(seq 100); do
        grep -q ready "$WORK/trap.out" 2>/dev/null && INIT=$(pgrep -n -x appinit) && [ -n "$INIT" ] && break
        sleep 0.1
    done
    MON=$(ps -o ppid= -p "$INIT" 2>/dev/null | tr -d ' ')
}
for mode in root setuid userns; do
    for sig in TERM INT HUP USR1 USR2; do
        start_trap $mode $sig --pid
        kill -$sig "$MON"
        ( sleep 20; kill -KILL "$INIT" 2>/dev/null ) & guard=$!
        wait "$BG"; rc=$?
        kill "$guard" 2>/dev/null
        expect_eq "$mode: --pid: SIG$sig to the monitor runs the command's trap (exit status 42)" "42:ready
got-$sig" "$rc:$(cat "$WORK/trap.out")"
    done
    start_trap $mode TERM --pid
    kill -TERM "$INIT"
    ( sleep 20; kill -KILL "$INIT" 2>/dev/null ) & guard=$!
    wait "$BG"; rc=$?
    kill "$guard" 2>/dev/null
    expect_eq "$mode: --pid: SIGTERM to the container's PID 1 from outside runs the trap" "42:ready
got-TERM" "$rc:$(cat "$WORK/trap.out")"
done

# --- an orphan is reaped by the init; without it, it stays a zombie -------
# The command makes an orphan and then becomes a program that never waits
# (exec sleep); the host looks at the children of the container's PID 1.
zombies_of_pid1 () {
    local mode=$1 flag=""; shift
    [ "$mode" = userns ] && flag=--userns
    ZTAG=$((ZTAG + 1))
    local cmd="$CAPSA exec $flag $* $IMG sh -c '(sleep 0.$ZTAG &); exec sleep 9.$ZTAG'"
    if [ "$mode" = root ]; then sh -c "exec $cmd" > /dev/null 2>&1 & else as_user "$U" "exec $cmd" > /dev/null 2>&1 & fi
    local bg=$! s="" pid1="" o
    for _ in $(seq 100); do
        s=$(pgrep -n -f "^sleep 9\.$ZTAG\$") && [ -n "$s" ] && break
        sleep 0.1
    done
    # Without the init the command (now sleep) is PID 1; with it, its parent.
    case " $* " in *" --no-init "*) pid1=$s ;; *) pid1=$(ps -o ppid= -p "$s" | tr -d ' ') ;; esac
    # Until the orphan has ended (a zombie, or gone because reaped): the
    # machine may be busy, so poll rather than sleep a fixed time.
    for _ in $(seq 80); do
        o=$(ps -o stat=,args= --ppid "$pid1" 2>/dev/null | grep "sleep 0\.$ZTAG\$")
        case $o in Z*|"") break ;; esac
        sleep 0.1
    done
    Z=$(ps -o stat= --ppid "$pid1" 2>/dev/null | grep -c Z)
    kill "$s" 2>/dev/null
    wait "$bg"
}
ZTAG=0
for mode in root setuid userns; do
    zombies_of_pid1 $mode --pid --no-init
    expect_eq "$mode: control: without the init an orphan stays a zombie" "1" "$Z"
    zombies_of_pid1 $mode --pid
    expect_eq "$mode: the init reaps an orphan" "0" "$Z"
done
no_leftover_mounts "no capsa mount left after the init runs"

# --- --cwd, --mount, --no-mount, image binds ------------------------------
mkdir -p "$WORK/mnt" && echo mounted > "$WORK/mnt/f" && chmod -R a+rwX "$WORK/mnt"
echo "bind path = $WORK/mnt:/bp" >> "$CONF"
touch /tmp/capsa-nomount-marker
for mode in root setuid userns; do
    case $mode in
    root) r () { run "$CAPSA" exec "$@"; } ;;
    setuid) r () { run_user "$CAPSA exec $(printf '%q ' "$@")"; } ;;
    userns) r () { run_user "$CAPSA exec --userns $(printf '%q ' "$@")"; } ;;
    esac
    r --cwd /etc "$IMG" pwd
    expect_eq "$mode: --cwd is --pwd" "/etc" "$OUT"
    r --mount "type=bind,source=$WORK/mnt,destination=/m,ro" "$IMG" sh -c 'cat /m/f; touch /m/x 2>&1'
    expect_eq "$mode: --mount type=bind,source,destination,ro" "mounted
touch: /m/x: Read-only file system" "$OUT"
    r --mount "src=$WORK/mnt,dst=/m2" "$IMG" sh -c 'echo w > /m2/w-'$mode' && cat /m2/f'
    expect_eq "$mode: --mount src=,dst= (read-write)" "mounted" "$OUT"
    r --mount "type=volume,src=$WORK/mnt,dst=/m" "$IMG" true
    expect_match "$mode: --mount type=volume refused" "^FATAL: .*unsupported mount type 'volume'" "$OUT"
    r -B "$WORK/mnt:/m:ro,image-src=/" "$IMG" true
    expect_eq "$mode: -B ...:image-src= refused: 255" "255" "$RC"
    expect_match "$mode: ... with the reason" "^FATAL: .*binding a path from inside an image file is not supported" "$OUT"
    r "$IMG" sh -c 'cat /bp/f; ls /tmp/capsa-nomount-marker'
    expect_eq "$mode: control: the bind path and the host's /tmp are there" "mounted
/tmp/capsa-nomount-marker" "$OUT"
    r --no-mount tmp,/bp "$IMG" sh -c 'test -e /bp/f || echo no-bp; test -e /tmp/capsa-nomount-marker || echo no-tmp; test -e /etc/localtime && echo localtime'
    expect_eq "$mode: --no-mount tmp,/bp: neither the host's /tmp nor that bind path, the others stay" "no-bp
no-tmp
localtime" "$OUT"
    r --no-mount bind-paths "$IMG" sh -c 'test -e /bp/f || echo no-bp; test -e /etc/localtime || echo no-localtime'
    expect_eq "$mode: --no-mount bind-paths: no bind path at all" "no-bp
no-localtime" "$OUT"
    r --no-mount proc,sys "$IMG" sh -c 'ls /proc | wc -l; ls /sys | wc -l'
    expect_eq "$mode: --no-mount proc,sys" "0
0" "$OUT"
    r --no-mount dev "$IMG" sh -c 'test -c /dev/null && echo has-null || echo no-null'
    expect_eq "$mode: --no-mount dev: no /dev" "no-null" "$OUT"
    r --no-mount devpts "$IMG" sh -c 'ls /dev/pts | wc -l; test -e /dev/ptmx && echo ptmx'
    expect_eq "$mode: --no-mount devpts: empty /dev/pts, no ptmx" "0" "$OUT"
    r --no-mount nonsense "$IMG" true
    expect_eq "$mode: --no-mount of an unknown name: a warning (as Apptainer)" "0:WARNING: ignoring unknown mount type 'nonsense' in --no-mount" "$RC:$OUT"
done
OUT=$(cd "$WORK/mnt" && "$CAPSA" exec --no-mount tmp "$IMG" sh -c 'pwd' 2>&1)
expect_eq "root: control: the current directory is bound and entered" "$WORK/mnt" "$OUT"
OUT=$(cd "$WORK/mnt" && "$CAPSA" exec --no-mount cwd,tmp "$IMG" sh -c 'pwd' 2>&1)
expect_match "root: --no-mount cwd: the current directory is not bound (start in \$HOME)" "^WARNING: cannot enter $WORK/mnt" "$OUT"
rm -f /tmp/capsa-nomount-marker
cp "$WORK/conf.orig" "$CONF"

# --- shell: bash --norc, the image's prompt (action_script.sh shell and
#     PS1/PROMPT_COMMAND); through a terminal (script(1)) so bash is
#     interactive and would read a .bashrc -----------------------------------
BIMG=$WORK/bashimg
cp -a "$IMG" "$BIMG"
rm -f "$BIMG/bin/bash"
cp /bin/bash "$BIMG/bin/bash"
for lib in $(ldd /bin/bash | grep -o '/[^ ]*'); do mkdir -p "$BIMG$(dirname "$lib")"; cp -L "$lib" "$BIMG$lib"; done
chmod -R a+rX "$BIMG"
mkdir -p "$WORK/bhome" && echo 'echo BASHRC-RAN; PS1="from-bashrc> "' > "$WORK/bhome/.bashrc" && chmod -R a+rwX "$WORK/bhome"
for mode in root setuid userns; do
    flag=""; [ $mode = userns ] && flag=--userns
    cmd="$CAPSA shell $flag --home $WORK/bhome $BIMG"
    if [ $mode = root ]; then
        OUT=$(printf 'echo in:$SHELL\nexit\n' | script -qec "$cmd" /dev/null 2>&1 | tr -d '\r')
    else
        OUT=$(printf 'echo in:$SHELL\nexit\n' | as_user "$U" "script -qec '$cmd' /dev/null" 2>&1 | tr -d '\r')
    fi
    expect_nomatch "$mode: shell: bash started with --norc (the .bashrc of \$HOME not read)" "BASHRC-RAN" "$OUT"
    expect_match "$mode: shell: the image's prompt, SHELL=/bin/bash" "^Apptainer> echo in:.SHELL$" "$OUT"
    expect_match "$mode: shell: SHELL=/bin/bash" "^in:/bin/bash$" "$OUT"
    cmd="$CAPSA shell $flag --shell /bin/bash --home $WORK/bhome $BIMG"
    if [ $mode = root ]; then
        OUT=$(printf 'exit\n' | script -qec "$cmd" /dev/null 2>&1 | tr -d '\r')
    else
        OUT=$(printf 'exit\n' | as_user "$U" "script -qec '$cmd' /dev/null" 2>&1 | tr -d '\r')
    fi
    expect_match "$mode: control: --shell /bin/bash reads the .bashrc" "BASHRC-RAN" "$OUT"
    expect_match "$mode: ... and PROMPT_COMMAND still gives the image's prompt" "^Apptainer> exit$" "$OUT"
done
OUT=$(printf 'exit\n' | script -qec "$CAPSA shell $IMG_DIR" /dev/null 2>&1 | tr -d '\r')
expect_match "an image without a prompt of its own: 'Capsa> '" "^Capsa> exit$" "$OUT"

# --- -c/--config: root and user namespaces only (Apptainer: "--config
#     requires to be root or an unprivileged installation") --------------------
printf 'mount proc = no\nconfig passwd = no\n' > "$WORK/my.conf" && chmod 0644 "$WORK/my.conf"
run "$CAPSA" -c "$WORK/my.conf" exec "$IMG" sh -c 'ls /proc | wc -l'
expect_eq "root: -c FILE applies FILE" "0" "$OUT"
run "$CAPSA" --config="$WORK/my.conf" exec "$IMG" sh -c 'ls /proc | wc -l'
expect_eq "root: --config=FILE" "0" "$OUT"
run_user "$CAPSA --config $WORK/my.conf exec --userns $IMG sh -c 'ls /proc | wc -l; grep -c ^$U: /etc/passwd'"
expect_eq "userns: --config FILE applies FILE" "0
0" "$OUT"
run_user "$CAPSA -c $WORK/my.conf exec $IMG true"
expect_eq "setuid: -c FILE refused: 255" "255" "$RC"
expect_match "setuid: ... the starter never reads a user's config with privilege" "^FATAL: .*--config $WORK/my.conf: a configuration file of your choice is used only by root and in user-namespace mode" "$OUT"
printf 'allow user ns = yes\n' > "$WORK/userns.conf" && chmod 0644 "$WORK/userns.conf"
sed -i 's/^allow user ns = yes/allow user ns = no/' "$CONF"
run_user "$CAPSA -c $WORK/userns.conf exec --userns $IMG true"
expect_match "attack: a user's --config cannot allow what the administrator's capsa.conf forbids" "^FATAL: .*user namespaces are disabled by the administrator" "$OUT"
cp "$WORK/conf.orig" "$CONF"
run_user "$CAPSA -c /nonexistent.conf exec --userns $IMG true"
expect_match "--config of a missing file: one FATAL line" "^FATAL: .*cannot open /nonexistent.conf" "$OUT"
no_leftover_mounts "no capsa mount left"
