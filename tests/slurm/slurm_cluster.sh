#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd started by hand
# (no systemd), everything they own under DIR, so that nothing in /etc is touched and two clusters
# in two folders do not meet (their own munge socket and key, their own ports).
#   slurm_cluster.sh up DIR     start the daemons; waits until sinfo shows the node idle
#   slurm_cluster.sh down DIR   cancel the jobs, stop every daemon this script started (by the
#                               PIDs saved in DIR/pids), wait for the job steps to end
# Client commands need the configuration: export SLURM_CONF=DIR/slurm.conf (up prints it).
# Needs root (slurmd runs the jobs as their users; SlurmUser=root) and the Debian packages
# slurmctld slurmd slurm-client munge (launch/install-deps.sh). Exit status: 0 up (or down), 1 a
# failure, 77 not possible here (not root, packages missing): the reason on the last line.
# SLURM_CLUSTER_PORT (default 16817): slurmctld's port; slurmd gets the next one. Not the usual
# 6817/6818, so that a cluster started by ../shared/recipes/slurm-local/ may run beside it.
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
ACTION=$1
DIR=$2
case $ACTION in up | down) ;; *) usage ;; esac
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)  # absolute: the daemons and the jobs run elsewhere
CONF=$DIR/slurm.conf
PIDS=$DIR/pids
# munged's key and socket: a folder of its own under /run, named for DIR. munged refuses a socket
# whose path others cannot traverse (a build under /root, mode 0700 on a fresh Debian) or may
# write to, so not under DIR.
MUNGE=/run/alexnet-munge-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)
export SLURM_CONF=$CONF
log() { echo "[slurm_cluster $ACTION] $*"; }
cannot() { echo "cannot run Slurm here: $*"; exit 77; }

alive() { [ -s "$PIDS/$1" ] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

# Stops one daemon by its saved PID: TERM, then KILL after 15 s.
stop() {
  local name=$1 pid
  if ! alive "$name"; then rm -f "$PIDS/$name"; return 0; fi
  pid=$(cat "$PIDS/$name")
  kill -TERM "$pid"
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { log "$name (pid $pid) stopped"; rm -f "$PIDS/$name"; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) still there after 15 s: KILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDS/$name"
}

down() {
  if alive slurmctld; then
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
      # shellcheck disable=SC2086  # one argument per job id
      scancel --full $jobs 2>/dev/null || true
      for _ in $(seq 150); do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.2
      done
    fi
  fi
  # slurmd before slurmctld (it reports to it), munged last (both authenticate through it).
  stop slurmd
  stop slurmctld
  stop munged
  rm -rf "$MUNGE"
  # slurmstepd (one per job step, started by slurmd) ends with its step; give it time, then say
  # so rather than kill what this script did not start.
  local left=""
  for _ in $(seq 100); do
    left=$(pgrep -f "slurmstepd.*$DIR" || true)
    [ -z "$left" ] && break
    sleep 0.1
  done
  [ -z "$left" ] || log "WARNING: slurmstepd still running: $left"
  return 0
}

if [ "$ACTION" = down ]; then
  down
  exit 0
fi

# --- up ------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || cannot "not root (slurmd must run as root)"
for c in munged mungekey slurmctld slurmd sinfo sbatch srun scontrol; do
  command -v "$c" > /dev/null || cannot "$c not installed (packages slurmctld slurmd slurm-client munge)"
done
HOST=$(hostname -s)
getent hosts "$HOST" > /dev/null || cannot "this host's name $HOST does not resolve (add it to /etc/hosts)"
CTLD_PORT=${SLURM_CLUSTER_PORT:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
CPUS=$(nproc)

# A cluster of ours already up in DIR: a clean start is simpler than reusing half of one.
if alive munged || alive slurmctld || alive slurmd; then
  log "daemons from an earlier run in $DIR: stopping them first"
  down
fi
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    echo "port $port is taken (another Slurm?); set SLURM_CLUSTER_PORT" >&2
    exit 1
  fi
done
rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$MUNGE"
# 0755 and owned by root: munged refuses a socket or key in a folder others may write to.
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$MUNGE" "$PIDS"
chmod 0755 "$DIR" "$DIR/state" "$DIR/spool" "$DIR/log" "$MUNGE" "$PIDS"

# munge: a key of our own and a socket of our own, so the system's munged (if any) is not used.
mungekey --create --keyfile="$MUNGE/munge.key" > /dev/null
chmod 0400 "$MUNGE/munge.key"
# -F: in the foreground, so $! is the daemon's PID (saved for down).
munged -F --key-file="$MUNGE/munge.key" --socket="$MUNGE/munge.socket.2" \
  --pid-file="$MUNGE/munged.pid" --log-file="$DIR/log/munged.log" \
  --seed-file="$MUNGE/munged.seed" < /dev/null > "$DIR/log/munged.out" 2>&1 &
echo $! > "$PIDS/munged"
for _ in $(seq 100); do [ -S "$MUNGE/munge.socket.2" ] && break; sleep 0.1; done
munge --socket="$MUNGE/munge.socket.2" -n | unmunge --socket="$MUNGE/munge.socket.2" > /dev/null \
  || { cat "$DIR/log/munged.out" "$DIR/log/munged.log" 2>/dev/null; log "munge does not work"; down; exit 1; }

# PMIx for srun --mpi=pmix where Slurm has the plugin (Debian's slurm-wlm-basic-plugins does).
MPI_DEFAULT=none
for plugin in /usr/lib/*/slurm-wlm/mpi_pmix.so /usr/lib*/slurm/mpi_pmix.so; do
  if [ -e "$plugin" ]; then MPI_DEFAULT=pmix; fi
done

cat > "$CONF" <<EOF
# One node on localhost for the tests (tests/slurm/slurm_cluster.sh); generated, not edited.
ClusterName=alexnet-test
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
# Our munged: its socket, for the daemons, the job steps and the client commands alike.
# cred_expire: a requeued job waits this + 1 s before it may start again (its old credential must
# expire first): 10 s rather than the default 120, to keep the tests short.
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket.2,cred_expire=10
CredType=cred/munge
MpiDefault=$MPI_DEFAULT
# No cgroups here (containers, no systemd): track processes by parentage, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# CPUs are the unit handed out: 2 tasks x 1 CPU fill the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# A job may be put back in the queue (scontrol requeue, as launch/alexnet.sbatch does).
JobRequeue=1
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No slurmdbd: no sacct. Finished jobs stay visible to scontrol for MinJobAge seconds, and every
# end of a job (a requeue included) is a line in the job completion log.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=600
InactiveLimit=0
KillWait=30
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# -D: in the foreground (PIDs for down); the state folder is new, so no old jobs come back.
slurmctld -D -f "$CONF" < /dev/null > "$DIR/log/slurmctld.out" 2>&1 &
echo $! > "$PIDS/slurmctld"
for _ in $(seq 100); do scontrol ping 2> /dev/null | grep -q UP && break; sleep 0.1; done
slurmd -D -f "$CONF" < /dev/null > "$DIR/log/slurmd.out" 2>&1 &
echo $! > "$PIDS/slurmd"

state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n "$HOST" -o %T 2> /dev/null || true)
  [ "$state" = idle ] && break
  if ! alive slurmctld || ! alive slurmd; then break; fi
  sleep 0.2
done
if [ "$state" != idle ]; then
  log "node $HOST not idle (state '$state'); logs in $DIR/log:"
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$DIR/log/"*.out 2> /dev/null || true
  down
  exit 1
fi
log "cluster up: node $HOST, $CPUS CPUs, partition test, MpiDefault=$MPI_DEFAULT (pids in $PIDS)"
log "export SLURM_CONF=$CONF"
