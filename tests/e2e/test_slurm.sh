# capsa under Slurm (issue 9, acceptance 1).  Brings up a real one-node
# cluster from Debian's packages on this machine: munged, slurmctld and
# slurmd, loopback only, each with private files under $WORK and ports of
# their own, so an installed system Slurm (if any) is neither used nor
# disturbed.  No cgroups (proctrack/linuxproc, task/none).  Everything
# started here is stopped on the way out, on failure too.

IMG=$FIXTURES/sif/busybox_amd64.sif
S=$WORK/slurm
SLURM_PIDS=()

slurm_stop () {
    local pid i
    # Jobs first, so that their slurmstepd processes end through slurmd.
    if [ -f "$S/slurm.conf" ] && [ ${#SLURM_PIDS[@]} -gt 0 ]; then
        SLURM_CONF=$S/slurm.conf timeout 10 scancel --quiet --full --partition=capsa 2>/dev/null
    fi
    for ((i = ${#SLURM_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SLURM_PIDS[i]}
        kill "$pid" 2>/dev/null || continue
        timeout 15 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    SLURM_PIDS=()
}
trap slurm_stop EXIT
trap 'slurm_stop; exit 130' INT TERM

# A TCP port nobody listens on, from BASE upwards.
free_port () {
    local p=$1
    while ss -Htln "sport = :$p" | grep -q .; do p=$((p + 1)); done
    echo "$p"
}

slurm_start () {
    local h port_ctld port_d i state
    for c in munged mungekey slurmctld slurmd srun sinfo scancel setpriv; do
        command -v "$c" > /dev/null || { echo "missing $c (bash scripts/deps.sh)"; return 1; }
    done
    h=$(hostname -s)
    mkdir -p "$S"/{munge,state,spool,log} || return 1
    chmod 0755 "$S" && chown munge:munge "$S/munge" && chmod 0755 "$S/munge" || return 1

    # munge: a key of its own, a socket of its own (users' srun reach it).
    setpriv --reuid=munge --regid=munge --clear-groups mungekey -c -k "$S/munge/munge.key" || return 1
    setpriv --reuid=munge --regid=munge --clear-groups munged -F -S "$S/munge/socket" \
        --key-file="$S/munge/munge.key" --log-file="$S/munge/munged.log" \
        --pid-file="$S/munge/munged.pid" --seed-file="$S/munge/seed" > "$S/log/munged.out" 2>&1 &
    SLURM_PIDS+=($!)

    port_ctld=$(free_port 16817)
    port_d=$(free_port $((port_ctld + 1)))
    cat > "$S/slurm.conf" <<EOF || return 1
ClusterName=capsatest
SlurmctldHost=$h(127.0.0.1)
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/socket
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
NodeName=$h NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=capsa Nodes=$h Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 0644 "$S/slurm.conf"
    export SLURM_CONF=$S/slurm.conf

    for i in $(seq 50); do [ -S "$S/munge/socket" ] && break; sleep 0.1; done
    slurmctld -D -c -i > "$S/log/slurmctld.out" 2>&1 &
    SLURM_PIDS+=($!)
    slurmd -D > "$S/log/slurmd.out" 2>&1 &
    SLURM_PIDS+=($!)
    for i in $(seq 60); do
        state=$(timeout 5 sinfo -h -N -o %T 2>/dev/null)
        [ "$state" = idle ] && return 0
        sleep 0.5
    done
    echo "node not idle after 30s: [$state]"
    tail -5 "$S/log/munged.out" "$S/log/slurmctld.out" "$S/log/slurmd.out" "$S/log/slurmctld.log" "$S/log/slurmd.log" 2>/dev/null
    return 1
}

if ! slurm_start > "$WORK/slurm-start.log" 2>&1; then
    fail "slurm: one-node cluster up" "$(cat "$WORK/slurm-start.log")"
    slurm_stop
    return 0
fi
pass "slurm: one-node cluster up (munged, slurmctld, slurmd)"

# ------------------------------------------------------------------ root

# Four tasks, each a container, each seeing its own SLURM_PROCID.
run srun -N1 -n4 "$CAPSA" exec "$IMG" sh -c 'echo $SLURM_PROCID'
expect_eq "slurm: root: srun -n4 exec prints SLURM_PROCID 0..3" "0 1 2 3 rc=0" \
    "$(printf '%s\n' "$OUT" | grep -E '^[0-9]+$' | sort -n | paste -sd' ') rc=$RC"

# The issue's example: four tasks of hostname.
run srun -N1 -n4 "$CAPSA" exec "$IMG" hostname
expect_eq "slurm: root: srun -n4 exec hostname runs four tasks" "4 rc=0" \
    "$(printf '%s\n' "$OUT" | grep -c -x "$(hostname)") rc=$RC"

# The variables Slurm sets reach the container.
run srun -N1 -n2 "$CAPSA" exec "$IMG" sh -c 'echo "$SLURM_CLUSTER_NAME $SLURM_NTASKS $SLURM_JOB_ID $SLURM_STEP_ID $SLURM_LOCALID"'
expect_match "slurm: root: SLURM_* variables reach the container" \
    '^capsatest 2 [0-9]+ [0-9]+ [01]$' "$OUT"

# Exit codes reach srun.
run srun -N1 -n1 "$CAPSA" exec "$IMG" sh -c 'exit 3'
expect_eq "slurm: root: a command exiting 3 makes srun exit 3" 3 "$RC"
run srun -N1 -n2 "$CAPSA" exec "$IMG" sh -c '[ "$SLURM_PROCID" = 1 ] && exit 5; exit 0'
expect_eq "slurm: root: one task of two exiting 5 makes srun exit 5" 5 "$RC"
run srun -N1 -n1 "$CAPSA" exec "$IMG" /no/such/command
expect_eq "slurm: root: capsa's own status (127, not found) reaches srun" 127 "$RC"

# A batch job: sbatch, then srun inside the allocation.
printf '%s\n' '#!/bin/sh' "srun -n 2 $CAPSA exec $IMG sh -c 'echo batch \$SLURM_PROCID'" > "$WORK/job.sh"
chmod 0755 "$WORK/job.sh"
run sbatch --wait -n 2 -o "$WORK/job.out" "$WORK/job.sh"
expect_eq "slurm: root: sbatch --wait job running srun capsa exec" "batch 0 batch 1 rc=0" \
    "$(grep '^batch' "$WORK/job.out" 2>/dev/null | sort | paste -sd' ') rc=$RC"

# ------------------------------------------- a user, through the setuid install

UID1=$(id -u "$TUSER")
run_user "SLURM_CONF=$SLURM_CONF srun -N1 -n4 $CAPSA -v exec $IMG sh -c 'echo \$SLURM_PROCID \$(id -u)'"
expect_eq "slurm: user: srun -n4 exec prints SLURM_PROCID 0..3 as the user" \
    "0 $UID1 1 $UID1 2 $UID1 3 $UID1 rc=0" \
    "$(printf '%s\n' "$OUT" | grep -E '^[0-9]+ [0-9]+$' | sort -n | paste -sd' ') rc=$RC"
expect_eq "slurm: user: every task ran through the setuid starter" 4 \
    "$(printf '%s\n' "$OUT" | grep -c 'setuid mode')"

run_user "SLURM_CONF=$SLURM_CONF srun -N1 -n1 $CAPSA exec $IMG sh -c 'exit 3'"
expect_eq "slurm: user: a command exiting 3 makes srun exit 3" 3 "$RC"

run_user "SLURM_CONF=$SLURM_CONF srun -N1 -n1 $CAPSA exec $IMG grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"
expect_match "slurm: user: a task has no capabilities and no_new_privs" \
    'CapEff:[[:space:]]+0+ NoNewPrivs:[[:space:]]+1' "$(printf '%s\n' "$OUT" | paste -sd' ')"

slurm_stop
trap - EXIT INT TERM
expect_eq "slurm: daemons stopped" "" \
    "$(for f in "$S"/slurmctld.pid "$S"/slurmd.pid "$S"/munge/munged.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && echo "$f"; done)"
no_leftover_mounts "slurm: no mounts left"
