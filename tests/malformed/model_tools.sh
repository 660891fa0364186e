#!/usr/bin/env bash
# alexnet-train, alexnet-eval, alexnet-export and alexnet-predict on malformed input: weights
# files with forged sizes, truncated and foreign files, bad and non-finite options, validation
# data that does not fit the model, a folder as --config, huge --resize. Each must exit with
# status 2 and one line naming the file or option, within a memory bound (the tools load CUDA
# and oneDNN: about 240 MB before any work), and leave the run's checkpoints bitwise unchanged.
# Usage: model_tools.sh BIN_DIR WORK_DIR
set -uo pipefail
BIN=$1
WORK=$2
PY=/usr/bin/python3
# shellcheck source=tests/malformed/lib.sh
source "$(dirname "$0")/lib.sh"
fresh_dir "$WORK"
MB=600  # peak RSS bound of a refused run (a size allocated unchecked would take gigabytes)

# ---- inputs: small datasets, a real run with checkpoints and weights ------------------------
synth() { "$BIN/alexnet-data" synthetic --quiet "$@" > /dev/null || fail "setup: alexnet-data $*"; }
synth --out "$WORK/d28" --size 28 --channels 1 --num-classes 10 --count 128 --val-fraction 0.25
synth --out "$WORK/d32" --size 32 --channels 1 --num-classes 10 --count 64
synth --out "$WORK/rgb28" --size 28 --channels 3 --num-classes 10 --count 64
synth --out "$WORK/d8" --size 8 --channels 1 --num-classes 10 --count 64
synth --out "$WORK/c7" --size 28 --channels 1 --num-classes 7 --count 64
synth --out "$WORK/k224" --size 224 --channels 3 --num-classes 10 --count 4
TRAIN_H5=$WORK/d28-train-00000.h5
VAL_H5=$WORK/d28-val-00000.h5
RUN=$WORK/run
TRAIN=("$BIN/alexnet-train" --model.arch alexnet-mini --data.train "$TRAIN_H5" --data.workers 1
  --run.threads 2 --checkpoint.every_minutes 0 --train.log_every 1 --run.dir "$RUN")
"${TRAIN[@]}" --data.val "$VAL_H5" --train.batch_size 16 --train.max_steps 2 \
  > "$WORK/train.txt" 2>&1 || fail_with_log "setup: alexnet-train" "$WORK/train.txt"
W=$RUN/weights.h5
CKPT=$(ls "$RUN"/checkpoints/step-*.h5 | tail -n 1)
[ -f "$W" ] && [ -f "$CKPT" ] || fail "setup: no weights or checkpoint"
BEFORE=$(tree_sums "$RUN/checkpoints"; sha256sum "$W")

# Forged /model attributes (@name=value on another group), re-signed as a v1 file, whose CRC
# covers the arrays only: the reader passes it and the tools meet the forged sizes themselves.
forge() {
  "$PY" - "$@" << 'PY' || fail "setup: forge $*"
import shutil, struct, sys, zlib
import h5py, numpy as np
src, dst = sys.argv[1], sys.argv[2]
shutil.copyfile(src, dst)
with h5py.File(dst, "r+") as f:
    for kv in sys.argv[3:]:
        k, v = kv.split("=", 1)
        obj, name = k.rsplit("@", 1) if "@" in k else ("model", k)
        f[obj].attrs[name] = np.int64(int(v)) if v.lstrip("-").isdigit() else v
    names = []
    f.visititems(lambda n, o: names.append("/" + n) if isinstance(o, h5py.Dataset) else None)
    records = {}
    for n in names:  # io/array_file.cc, v1_entry_crc and combine
        d = f[n]
        shape = b"".join(struct.pack("<q", s) for s in d.shape)
        crc = zlib.crc32(shape, zlib.crc32(n.encode())) if d.shape else 0
        records[n] = zlib.crc32(np.ascontiguousarray(d[()]).tobytes(), crc)
    total = 0
    for n in sorted(records):
        total = zlib.crc32(struct.pack("<I", records[n]), total)
    f.attrs["format"] = "alexnet-checkpoint-v1"
    f.attrs["checksum_crc32"] = np.int64(total)
PY
}
forge "$W" "$WORK/resigned.h5"
"$BIN/alexnet-export" --checkpoint "$WORK/resigned.h5" --format safetensors \
  --out "$WORK/resigned.st" > /dev/null 2>&1 || fail "setup: a re-signed, unforged file is refused"
forge "$W" "$WORK/classes.h5" num_classes=1000000000000
forge "$W" "$WORK/height.h5" input_height=1000000
forge "$W" "$WORK/width.h5" input_width=100000000
forge "$W" "$WORK/channels.h5" in_channels=1000000
forge "$W" "$WORK/negative.h5" num_classes=-3
forge "$CKPT" "$WORK/ckpt-classes.h5" num_classes=4000000000
head -c 3000 "$W" > "$WORK/truncated.h5"
printf 'not a model\n' > "$WORK/text.h5"
# A 28 x 28 gray PNG under a name that is not UTF-8, for predict --json.
IMG=$WORK/$'\xff\xfeimage.png'
"$PY" -c "import sys; from PIL import Image; Image.new('L', (28, 28), 128).save(sys.argv[1])" \
  "$IMG" || fail "setup: png"
mkdir -p "$WORK/config-dir"
printf '[train]\nbatch_size 16\n\x01\x02\x03\n' > "$WORK/malformed.cfg"
printf '[train]\nbatch_sise = 16\n' > "$WORK/unknown-key.cfg"

# ---- alexnet-train ---------------------------------------------------------------------------
# Against the run's folder: its checkpoints must stay as they are after each refused run.
BASE=("$BIN/alexnet-train" --data.workers 1 --run.threads 2 --checkpoint.every_minutes 0)
T=("${BASE[@]}" --model.arch alexnet-mini --data.train "$TRAIN_H5" --run.dir "$RUN"
  --train.max_steps 1)
T16=("${T[@]}" --train.batch_size 16)
expect_error 2 "optim.lr nan" $MB -- "${T16[@]}" --optim.lr nan
expect_error 2 "optim.momentum inf" $MB -- "${T16[@]}" --optim.momentum inf
expect_error 2 "augment.lighting -?nan" $MB -- "${T16[@]}" --augment.lighting -nan
expect_error 2 "train.batch_size 0" $MB -- "${T[@]}" --train.batch_size 0
expect_error 2 "train.batch_size 1000000000" $MB -- "${T[@]}" --train.batch_size 1000000000
expect_error 2 "train.batch_size 60000: .*GiB" $MB -- "${T[@]}" --train.batch_size 60000
expect_error 2 "seed '-1'" $MB -- "${T16[@]}" --seed -1
expect_error 2 "train.epochs -2" $MB -- "${T16[@]}" --train.epochs -2
expect_error 2 "comm.bucket_mb 0" $MB -- "${T16[@]}" --comm.bucket_mb 0
expect_error 2 "profile.steps 1000000000" $MB -- "${T16[@]}" --profile.steps 1000000000
expect_error 2 "model.arch.*alexnet-huge" $MB -- "${BASE[@]}" --model.arch alexnet-huge \
  --data.train "$TRAIN_H5" --run.dir "$RUN"
expect_error 2 "optim.schedule.*warmup" $MB -- "${T16[@]}" --optim.schedule cosine \
  --optim.warmup_steps 100
expect_error 2 "init.skip '\(\('" $MB -- "${T16[@]}" --init.skip '(('
expect_error 2 "config '.*config-dir': is a directory" $MB -- "${T16[@]}" --config "$WORK/config-dir"
expect_error 2 "config '.*malformed.cfg'" $MB -- "${T16[@]}" --config "$WORK/malformed.cfg"
expect_error 2 "config '.*unknown-key.cfg'.*batch_sise" $MB -- "${T16[@]}" \
  --config "$WORK/unknown-key.cfg"
expect_error 2 "config '.*no-such.cfg': no such file" $MB -- "${T16[@]}" \
  --config "$WORK/no-such.cfg"
# Validation data that does not fit: refused before step 1, naming the file.
expect_error 2 "d32-00000.h5' \(data.val\): 32 x 32" $MB -- "${T16[@]}" \
  --data.val "$WORK/d32-00000.h5"
expect_error 2 "rgb28-00000.h5' \(data.val\): 3-channel" $MB -- "${T16[@]}" \
  --data.val "$WORK/rgb28-00000.h5"
expect_error 2 "c7-00000.h5' \(data.val\).*7 classes" $MB -- "${T16[@]}" \
  --data.val "$WORK/c7-00000.h5"
expect_error 2 "d8-00000.h5'.*do not fit alexnet-mini" $MB -- "${BASE[@]}" \
  --data.train "$WORK/d8-00000.h5" --train.batch_size 4 --run.dir "$WORK/run-d8"
expect_error 2 "d28-train-00000.h5' \(data.train\): crop 224x224" $MB -- "${BASE[@]}" \
  --model.arch alexnet-torchvision --data.train "$TRAIN_H5" --train.batch_size 16 --run.dir "$RUN"
expect_error 2 "truncated.h5" $MB -- "${T16[@]}" --resume "$WORK/truncated.h5"
expect_error 2 "train-00000.h5" $MB -- "${T16[@]}" --resume "$TRAIN_H5"
expect_error 2 "text.h5" $MB -- "${BASE[@]}" --data.train "$TRAIN_H5" --train.batch_size 16 \
  --run.dir "$WORK/run-init" --init.from "$WORK/text.h5"
# alexnet-keras' last batch norm sees 1 x 1 positions: one value per channel at batch 1.
expect_error 2 "train.batch_size 1: alexnet-keras's batch norm" $MB -- "${BASE[@]}" \
  --model.arch alexnet-keras --data.train "$WORK/k224-00000.h5" --train.batch_size 1 \
  --run.dir "$WORK/run-keras"
expect_error 2 "run.dir '/etc/passwd'" $MB -- "${BASE[@]}" --data.train "$TRAIN_H5" \
  --train.batch_size 16 --run.dir /etc/passwd
AFTER=$(tree_sums "$RUN/checkpoints"; sha256sum "$W")
CASES=$((CASES + 1))
if [ "$BEFORE" = "$AFTER" ]; then
  echo "ok   case $CASES: the run's checkpoints and weights are bitwise unchanged"
else
  case_failed "case $CASES: refused runs changed $RUN: $(diff <(echo "$BEFORE") <(echo "$AFTER") | tr '\n' ' ')"
fi

# ---- alexnet-eval ----------------------------------------------------------------------------
E=("$BIN/alexnet-eval")
expect_error 2 "truncated.h5" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$WORK/truncated.h5"
expect_error 2 "text.h5" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$WORK/text.h5"
expect_error 2 "batch 0" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$W" --batch 0
expect_error 2 "workers 100000" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$W" --workers 100000
expect_error 2 "'--batch' is invalid" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$W" --batch nan
expect_error 2 "logits '.*no-such-folder/l.h5'" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$W" \
  --logits "$WORK/no-such-folder/l.h5"
# Data of another model: the weights' tensors do not fit it.
expect_error 2 "weights.h5': (/model/)?classifier.0.weight has shape" $MB -- "${E[@]}" --weights "$W" \
  --data "$WORK/d32-00000.h5"
expect_error 2 "weights.h5': (/model/)?features.0.weight" $MB -- "${E[@]}" --weights "$W" \
  --data "$WORK/rgb28-00000.h5"
expect_error 2 "weights.h5': (/model/)?classifier.6.weight" $MB -- "${E[@]}" --weights "$W" \
  --data "$WORK/c7-00000.h5"
expect_error 2 "model.arch.*alexnet-huge" $MB -- "${E[@]}" --data "$VAL_H5" --weights "$W" --model.arch alexnet-huge
expect_error 2 "input \[1 x 8 x 8\].*too small" $MB -- "${E[@]}" --weights "$W" \
  --data "$WORK/d8-00000.h5"

# ---- alexnet-export --------------------------------------------------------------------------
X=("$BIN/alexnet-export" --out "$WORK/out.onnx")
expect_error 2 "classes.h5'.*1000000000000" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/classes.h5"
expect_error 2 "height.h5'.*1000000" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/height.h5"
expect_error 2 "width.h5'.*100000000" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/width.h5"
expect_error 2 "channels.h5'.*1000000" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/channels.h5"
expect_error 2 "negative.h5'" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/negative.h5"
expect_error 2 "ckpt-classes.h5'.*4000000000" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/ckpt-classes.h5"
expect_error 2 "truncated.h5" $MB -- "${X[@]}" --format onnx --checkpoint "$WORK/truncated.h5"
expect_error 2 "batch-dim '0'" $MB -- "${X[@]}" --format onnx --checkpoint "$W" --batch-dim 0
expect_error 2 "batch-dim '99999999999'" $MB -- "${X[@]}" --format onnx --checkpoint "$W" --batch-dim 99999999999
expect_error 2 "mean 'nan'" $MB -- "${X[@]}" --format onnx --checkpoint "$W" --mean nan
expect_error 2 "std 'inf'" $MB -- "${X[@]}" --format onnx --checkpoint "$W" --std inf
expect_error 2 "format 'tflite'" $MB -- "${X[@]}" --checkpoint "$W" --format tflite
[ ! -e "$WORK/out.onnx" ] || case_failed "an ONNX file appeared after refused exports"

# ---- alexnet-predict -------------------------------------------------------------------------
P=("$BIN/alexnet-predict" --checkpoint "$W")
expect_error 2 "resize 100000" $MB -- "${P[@]}" --resize 100000 "$IMG"
expect_error 2 "resize 10 is smaller" $MB -- "${P[@]}" --resize 10 "$IMG"
expect_error 2 "top 0" $MB -- "${P[@]}" --top 0 "$IMG"
expect_error 2 "batch -1" $MB -- "${P[@]}" --batch -1 "$IMG"
expect_error 2 "mean '-inf'" $MB -- "${P[@]}" --mean -inf "$IMG"
expect_error 2 "classes.h5'.*1000000000000" $MB -- "$BIN/alexnet-predict" \
  --checkpoint "$WORK/classes.h5" --data "$VAL_H5"
expect_error 2 "height.h5'.*1000000" $MB -- "$BIN/alexnet-predict" --checkpoint "$WORK/height.h5" \
  --data "$VAL_H5"
expect_error 2 "d8-00000.h5" $MB -- "${P[@]}" --data "$WORK/d8-00000.h5"
expect_error 2 "text.h5" $MB -- "${P[@]}" "$WORK/text.h5"
# A file name that is not UTF-8 is no error: --json replaces its invalid bytes.
CASES=$((CASES + 1))
if "${P[@]}" --json "$IMG" > "$WORK/predict.json" 2> "$WORK/predict.err" &&
  "$PY" -c "import json, sys; d = json.loads(open(sys.argv[1]).read()); \
assert d['image'].endswith('image.png') and '\ufffd' in d['image'], d" "$WORK/predict.json"; then
  echo "ok   case $CASES: predict --json on a non-UTF-8 file name: $(cat "$WORK/predict.json")"
else
  case_failed "case $CASES: predict --json on a non-UTF-8 name: $(cat "$WORK/predict.err")"
fi

finish
