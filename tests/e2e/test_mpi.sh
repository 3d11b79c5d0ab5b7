# Open MPI, the hybrid model (issue 9, acceptance 2; docs/hpc.md): the
# host's mpirun starts one `capsa exec` per rank; the Open MPI library inside
# the image (same Debian version as the host's) connects back to mpirun
# through PMIx and to the other ranks through shared memory or TCP.
# The image is cached (tests/fixtures.sh, fixture_mpi_sif).

MPI_TIMEOUT=120

if ! command -v mpirun > /dev/null; then
    fail "mpi: host Open MPI" "mpirun missing (bash scripts/deps.sh installs openmpi-bin)"
    return 0
fi
if ! MPI_IMG=$(fixture_mpi_sif); then
    fail "mpi: image with Open MPI" "fixture_mpi_sif failed (see the log above)"
    return 0
fi

# The hybrid model needs the same Open MPI inside and outside.
host_v=$(dpkg-query -W -f '${Version} ' libopenmpi3 libpmix2 2>&1)
run "$CAPSA" exec "$MPI_IMG" dpkg-query -W -f '${Version} ' libopenmpi3 libpmix2
expect_eq "mpi: image and host have the same Open MPI and PMIx" "$host_v" "$OUT"

# ranks_of OUTPUT: the "rank R of N" lines, sorted, on one line.
ranks_of () { printf '%s\n' "$1" | grep -oE '^rank [0-9]+ of [0-9]+' | sort | paste -sd, -; }
BOTH="rank 0 of 2,rank 1 of 2"
SHM_WARN='system call failed during shared memory|ORTE_ERROR_LOG|Segmentation'

# ------------------------------------------------------------------ root

# The acceptance command as it is.  Open MPI's default shared-memory
# segment lives in /dev/shm, private to each container, so Open MPI may
# warn and use another transport; the ranks must still all report.
run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 "$CAPSA" exec "$MPI_IMG" /opt/hello_mpi
expect_eq "mpi: root: mpirun -n 2 capsa exec IMG /opt/hello_mpi prints both ranks" "$BOTH rc=0" \
    "$(ranks_of "$OUT") rc=$RC"
expect_match "mpi: root: the ranks exchanged messages (ring and allreduce)" \
    '^rank 0 of 2 on .* \(from 1, sum 1\)' "$OUT"

# Shared memory across containers, as docs/hpc.md recommends: the backing
# files in /tmp, which every container shares with the host.
run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 --mca btl vader,self \
    --mca btl_vader_backing_directory /tmp "$CAPSA" exec "$MPI_IMG" /opt/hello_mpi
expect_eq "mpi: root: shared-memory transport only (vader in /tmp)" "$BOTH rc=0" "$(ranks_of "$OUT") rc=$RC"
expect_nomatch "mpi: root: no shared-memory warning with the backing directory in /tmp" "$SHM_WARN" "$OUT"

run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 --mca btl tcp,self "$CAPSA" exec "$MPI_IMG" /opt/hello_mpi
expect_eq "mpi: root: TCP transport only" "$BOTH rc=0" "$(ranks_of "$OUT") rc=$RC"

# --pid: the ranks cannot see each other's processes; TCP works.
run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 --mca btl tcp,self "$CAPSA" exec --pid "$MPI_IMG" /opt/hello_mpi
expect_eq "mpi: root: --pid with the TCP transport" "$BOTH rc=0" "$(ranks_of "$OUT") rc=$RC"

# Open MPI's variables reach each container.
run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 "$CAPSA" exec "$MPI_IMG" \
    sh -c 'echo "env $OMPI_COMM_WORLD_RANK $OMPI_COMM_WORLD_SIZE"'
expect_eq "mpi: root: OMPI_COMM_WORLD_* reach the container" "env 0 2,env 1 2" \
    "$(printf '%s\n' "$OUT" | grep '^env' | sort | paste -sd, -)"

# A failing rank fails the job.
run timeout $MPI_TIMEOUT mpirun --allow-run-as-root -n 2 "$CAPSA" exec "$MPI_IMG" \
    sh -c '[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exit 4; exit 0'
expect_eq "mpi: root: a rank exiting 4 makes mpirun exit 4" 4 "$RC"

# ------------------------------------------- a user, through the setuid install

run_user "timeout $MPI_TIMEOUT mpirun -n 2 $CAPSA -v exec $MPI_IMG /opt/hello_mpi"
expect_eq "mpi: user: mpirun -n 2 capsa exec IMG /opt/hello_mpi prints both ranks" "$BOTH rc=0" \
    "$(ranks_of "$OUT") rc=$RC"
expect_eq "mpi: user: both ranks ran through the setuid starter" 2 \
    "$(printf '%s\n' "$OUT" | grep -c 'setuid mode')"

run_user "timeout $MPI_TIMEOUT mpirun -n 2 --mca btl vader,self --mca btl_vader_backing_directory /tmp $CAPSA exec $MPI_IMG /opt/hello_mpi"
expect_eq "mpi: user: shared-memory transport only (vader in /tmp)" "$BOTH rc=0" "$(ranks_of "$OUT") rc=$RC"
expect_nomatch "mpi: user: no shared-memory warning with the backing directory in /tmp" "$SHM_WARN" "$OUT"

run_user "timeout $MPI_TIMEOUT mpirun -n 2 --mca btl vader,self $CAPSA exec -B /dev/shm $MPI_IMG /opt/hello_mpi"
expect_eq "mpi: user: shared-memory transport only (host /dev/shm bound)" "$BOTH rc=0" "$(ranks_of "$OUT") rc=$RC"
expect_nomatch "mpi: user: no shared-memory warning with -B /dev/shm" "$SHM_WARN" "$OUT"

run_user "timeout $MPI_TIMEOUT mpirun -n 2 --mca btl vader,self --mca btl_vader_backing_directory /tmp $CAPSA -v exec --userns $MPI_IMG /opt/hello_mpi"
expect_eq "mpi: user: in user namespaces (--userns), shared memory in /tmp" "$BOTH rc=0 2" \
    "$(ranks_of "$OUT") rc=$RC $(printf '%s\n' "$OUT" | grep -c 'user namespace mode')"

run_user "timeout $MPI_TIMEOUT mpirun -n 2 --mca btl tcp,self $CAPSA exec $MPI_IMG sh -c 'echo \"id \$OMPI_COMM_WORLD_RANK \$(id -u)\"'"
UID1=$(id -u "$TUSER")
expect_eq "mpi: user: each rank runs as the user" "id 0 $UID1,id 1 $UID1" \
    "$(printf '%s\n' "$OUT" | grep '^id' | sort | paste -sd, -)"

expect_eq "mpi: no rank left running" "" "$(pgrep -x hello_mpi)"
no_leftover_mounts "mpi: no mounts left"
