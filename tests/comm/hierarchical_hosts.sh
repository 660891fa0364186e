#!/usr/bin/env bash
# The hierarchical all-reduce over a real network: 2 emulated hosts x 2 ranks (network namespaces
# hier1, hier2 on their own bridge hierbr0, 10.79.0.0/24, through tests/faults/hosts.sh), so that
# MPI itself sees 2 nodes of 2 ranks. One case per CTest test:
#   comm   test_comm_mpi's hierarchical suites over the hosts: MPI sees 2 nodes (RealNodes, with
#          ALEXNET_TEST_EXPECT_NODES=2), auto takes hierarchical, every wire type against the exact
#          sum, replicas bitwise identical, the same values as the flat ring
#   train  alexnet-train (alexnet-mini, Fashion-MNIST's t10k, 4 steps) with comm.algorithm ring and
#          hierarchical: each log names its all-reduce, the losses agree within fp32 rounding (4
#          steps: the first steps of training amplify a rounding difference about 10x a step,
#          measured); auto gives hierarchical's bits; an unknown algorithm is one line, status 2
# Usage: hierarchical_hosts.sh BIN_DIR SOURCE_DIR WORK_DIR CASE
#        hierarchical_hosts.sh up | down   (the hosts alone: CTest's fixture)
# Needs root and ip netns: without them it says why and exits 77 (CTest's skip).
set -euo pipefail
# Our own set of emulated hosts (never the fault tests' fault*, nor the recipe's node*).
export EMU_HOSTS_PREFIX=hier EMU_HOSTS_BRIDGE=hierbr0 EMU_HOSTS_VETH=hrv EMU_HOSTS_NET=10.79.0
HOSTS_SH=$(cd "$(dirname "$0")/.." && pwd)/faults/hosts.sh
case ${1:-} in
  up) exec bash "$HOSTS_SH" up 2 ;;
  down) exec bash "$HOSTS_SH" down ;;
esac
BIN=$1
SRC_DIR=$2
WORK=$3
CASE=$4
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
# shellcheck disable=SC2034  # read by fail (test_lib.sh)
TEST_CASE=$CASE

emulated_hosts_up "$HOSTS_SH" 2
allow_mpirun_as_root
fresh_dir "$WORK"
# shellcheck disable=SC2054  # the commas are in the values
MPIRUN=(timeout -s KILL 120 mpirun --mca plm_rsh_agent "$SRC_DIR/tests/faults/rsh-agent"
  --host hier1:2,hier2:2 -np 4 --mca oob_tcp_if_include 10.79.0.0/24
  --mca btl_tcp_if_include 10.79.0.0/24 --mca btl tcp,vader,self -x OMP_NUM_THREADS=1)

case $CASE in
  comm)
    "${MPIRUN[@]}" -x ALEXNET_TEST_EXPECT_NODES=2 "$BIN/test_comm_mpi" \
      --gtest_filter='*HierarchicalAllReduce*:*HierarchicalAgainstRing*:*AllReduceChoice*:*AllReduceStaging*:RealNodes*' \
      > "$WORK/comm.log" 2>&1 || fail_with_log "test_comm_mpi over 2 hosts x 2 ranks" "$WORK/comm.log"
    grep -q "all-reduce: hierarchical (2 nodes x 2 ranks)" "$WORK/comm.log" ||
      fail_with_log "RealNodes did not run or saw other nodes" "$WORK/comm.log"
    grep -q "SKIPPED" "$WORK/comm.log" && fail_with_log "a suite skipped over the hosts" "$WORK/comm.log"
    passed "$WORK" "hierarchical all-reduce over 2 hosts x 2 ranks: $(grep -o '[0-9]* tests from [0-9]* test suites ran' "$WORK/comm.log")"
    ;;
  train)
    import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2 > /dev/null
    TRAIN=(--config "$SRC_DIR/configs/fashion-mnist-mini.cfg"
      --data.train "$WORK/fm-train-00000.h5" --data.val "$WORK/fm-val-00000.h5"
      --train.batch_size 32 --train.max_steps 4 --train.log_every 1 --train.val_every 0
      --optim.warmup_steps 2 --checkpoint.every_minutes 0 --checkpoint.every_steps 0
      --data.workers 1 --train.dropout 0)
    for algorithm in ring hierarchical auto; do
      "${MPIRUN[@]}" "$BIN/alexnet-train" "${TRAIN[@]}" --comm.algorithm "$algorithm" \
        --run.dir "$WORK/run-$algorithm" > "$WORK/$algorithm.log" 2>&1 ||
        fail_with_log "alexnet-train --comm.algorithm $algorithm over 2 hosts x 2 ranks" \
          "$WORK/$algorithm.log"
    done
    grep -q "all-reduce: ring (4 ranks: 2 nodes x 2 ranks)" "$WORK/ring.log" ||
      fail_with_log "the ring run does not name its all-reduce" "$WORK/ring.log"
    for algorithm in hierarchical auto; do
      grep -q "all-reduce: hierarchical (2 nodes x 2 ranks)" "$WORK/$algorithm.log" ||
        fail_with_log "the $algorithm run does not name the hierarchical all-reduce" \
          "$WORK/$algorithm.log"
    done
    # The same steps' losses: the sums are taken in another order, nothing else differs.
    /usr/bin/python3 - "$WORK/run-ring/metrics.jsonl" "$WORK/run-hierarchical/metrics.jsonl" \
      "$WORK/run-auto/metrics.jsonl" <<'PY' || fail "losses of ring and hierarchical differ"
import json, sys
def losses(path):
    rows = [json.loads(line) for line in open(path)]
    return {r["step"]: r["loss"] for r in rows if "loss" in r and "step" in r}
ring, hier, auto = (losses(p) for p in sys.argv[1:])
assert sorted(ring) == [1, 2, 3, 4] and ring.keys() == hier.keys(), (ring, hier)
assert hier == auto, (hier, auto)  # the same algorithm: the same bits
# Step 1's loss comes before any all-reduce: the same bits. Then the sums' other order: fp32
# rounding (measured 2e-7, 7e-8, 3e-6 relative at steps 2-4), growing about 10x a step; a wrong
# sum (a node or a shard left out) is 1e-2 and more from step 2 on.
for step in sorted(ring):
    a, b = ring[step], hier[step]
    bound = 0.0 if step == 1 else 1e-6 * 10 ** (step - 2)
    print(f"step {step}: ring {a:.8f} hierarchical {b:.8f} (bound {bound:g})")
    assert abs(a - b) <= bound * abs(a), (step, a, b)
PY
    rc=0
    "${MPIRUN[@]}" "$BIN/alexnet-train" "${TRAIN[@]}" --comm.algorithm tree \
      --run.dir "$WORK/run-tree" > "$WORK/tree.log" 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail_with_log "comm.algorithm tree: status $rc, not 2" "$WORK/tree.log"
    grep -q "comm.algorithm 'tree': expected ring, hierarchical or auto" "$WORK/tree.log" ||
      fail_with_log "comm.algorithm tree: no one-line refusal" "$WORK/tree.log"
    passed "$WORK" "alexnet-train over 2 hosts x 2 ranks: ring and hierarchical agree within rounding"
    ;;
  *) fail "case '$CASE': want comm or train" ;;
esac
