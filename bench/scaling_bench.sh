#!/usr/bin/env bash
# Data-parallel scaling of the real job (build/bin/alexnet-train, alexnet-mini on Fashion-MNIST):
# images/s at 1 rank and at 2 ranks with the same global batch, and the step's exposed
# communication with the gradient all-reduce overlapped with backward or not.
#
# Run from anywhere after building alexnet-train and alexnet-data. WORK (default
# /tmp/alexnet-scaling-bench) holds the imported data, the run folders and the logs. As root,
# mpirun needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
#
# alexnet-mini's gradient is 7.1 MB: with the default 25 MB buckets it is one bucket, ready only
# when backward ends, so there is nothing to overlap it with; the 1 MB runs cut it in 6 buckets.
#
# Every run: 60 steps, a progress line every 20; the first window holds start-up and warm-up,
# so the figures are the mean over the windows ending at steps 40 and 60, from metrics.jsonl
# (from the progress lines on stdout for "comm wait" where metrics.jsonl lacks it). "comm wait" is
# the time the training thread spent blocked on the gradient all-reduce, per step.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/alexnet-scaling-bench}
mkdir -p "$WORK"

if [[ ! -f $WORK/fm-train-00000.h5 ]]; then
  build/bin/alexnet-data import-idx --quiet \
    --images /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
    --labels /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz \
    --class-names fashion-mnist --out "$WORK/fm-train"
fi
# The demo's recipe without its validation set (no evaluation inside the measured steps).
grep -v '^val *=' configs/fashion-mnist-mini.cfg > "$WORK/no-val.cfg"

# run NAME RANKS TRAINER-OPTIONS...: one training run, its stdout in $WORK/NAME.log.
run() {
  local name=$1 ranks=$2 launcher=()
  shift 2
  rm -rf "${WORK:?}/$name"
  if ((ranks > 1)); then launcher=(mpirun -np "$ranks"); fi
  "${launcher[@]}" build/bin/alexnet-train --config "$WORK/no-val.cfg" \
    --data.train "$WORK/fm-train-*.h5" --train.max_steps 60 --train.log_every 20 \
    --optim.warmup_steps 5 --checkpoint.every_minutes 0 --run.dir "$WORK/$name" "$@" \
    > "$WORK/$name.log"
}

echo "scaling-bench: alexnet-mini, Fashion-MNIST, global batch 128, 60 steps a run; logs in $WORK"
run one-rank 1 --train.batch_size 128
run two-ranks-overlap 2 --train.batch_size 64 --comm.overlap 1
run two-ranks-serial 2 --train.batch_size 64 --comm.overlap 0
run two-ranks-overlap-1mb 2 --train.batch_size 64 --comm.overlap 1 --comm.bucket_mb 1
run two-ranks-serial-1mb 2 --train.batch_size 64 --comm.overlap 0 --comm.bucket_mb 1

python3 - "$WORK" <<'PYTHON'
import json, re, sys
work = sys.argv[1]

def figures(name):
    """Means over the progress windows after step 20: img/s, img/s per rank, comm wait ms/step,
    forward + backward ms/step (None where metrics.jsonl does not have the breakdown)."""
    lines = [json.loads(line) for line in open(f"{work}/{name}/metrics.jsonl")]
    lines = [r for r in lines if r["split"] == "train" and r["step"] > 20]
    mean = lambda v: sum(v) / len(v)
    if all("seconds_comm_wait" in r for r in lines):
        waits = [1e3 * r["seconds_comm_wait"] for r in lines]
        compute = mean([1e3 * (r["seconds_forward"] + r["seconds_backward"]) for r in lines])
    else:  # older progress lines: "... | comm wait N ms/step | ..."
        log = open(f"{work}/{name}.log").read()
        waits = [float(m.group(2)) for m in re.finditer(r"\((\d+)/\d+\):.*comm wait (\d+)", log)
                 if int(m.group(1)) > 20]
        compute = None
    return (mean([r["images_per_sec"] for r in lines]),
            mean([r["images_per_sec_per_rank"] for r in lines]), mean(waits), compute)

# (label, run, the run with overlap off that it is compared with)
runs = [("1 rank x 128", "one-rank", None),
        ("2 ranks x 64, overlap on, 25 MB buckets", "two-ranks-overlap", "two-ranks-serial"),
        ("2 ranks x 64, overlap off, 25 MB buckets", "two-ranks-serial", None),
        ("2 ranks x 64, overlap on, 1 MB buckets", "two-ranks-overlap-1mb", "two-ranks-serial-1mb"),
        ("2 ranks x 64, overlap off, 1 MB buckets", "two-ranks-serial-1mb", None)]
f = {name: figures(name) for _, name, _ in runs}
print("\n| configuration | img/s total | img/s per rank | ms/step | vs 1 rank | fwd+bwd ms/step "
      "| comm wait ms/step | communication hidden |")
print("|---|---|---|---|---|---|---|---|")
for label, name, serial in runs:
    total, per_rank, wait, compute = f[name]
    hidden = f"{100 * (1 - wait / f[serial][2]):.0f}%" if serial and f[serial][2] > 0 else ""
    compute = "" if compute is None else f"{compute:.0f}"
    print(f"| {label} | {total:.1f} | {per_rank:.1f} | {1e3 * 128 / total:.0f} | "
          f"{total / f['one-rank'][0]:.2f}x | {compute} | {wait:.1f} | {hidden} |")
print("\nmeans over the progress windows ending at steps 40 and 60; ms/step = 128 / img/s total; "
      "fwd+bwd and comm wait: per rank, averaged over the ranks; "
      "communication hidden = 1 - wait(overlap on) / wait(overlap off, same buckets)")
PYTHON
