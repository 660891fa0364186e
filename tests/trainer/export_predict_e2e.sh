#!/usr/bin/env bash
# alexnet-export, alexnet-train --init.from and alexnet-predict end to end on a slice of real
# Fashion-MNIST (single process, no mpirun): a briefly trained alexnet-mini exported as ONNX with
# preprocessing (onnxruntime on raw pixels = alexnet-eval's logits) and as safetensors; a
# fine-tuning start from it with a fresh head; PNG and JPEG files classified as alexnet-eval
# classifies the same pixels; exit status 2 and one line for damaged, foreign or mismatched input.
# Usage: export_predict_e2e.sh BIN_DIR WORK_DIR VENV_PYTHON
set -euo pipefail
BIN=$1
WORK=$2
PY=$3
SRC=/usr/share/datasets/fashion-mnist
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*"; exit 1; }

"$BIN/alexnet-data" import-idx --quiet --images "$SRC/t10k-images-idx3-ubyte.gz" \
  --labels "$SRC/t10k-labels-idx1-ubyte.gz" --class-names fashion-mnist --val-fraction 0.8 \
  --out "$WORK/fm"
train() {  # a few steps of alexnet-mini at a constant learning rate; extra options follow
  "$BIN/alexnet-train" --model.arch alexnet-mini --data.train "$WORK/fm-train-00000.h5" \
    --data.workers 1 --train.batch_size 32 --train.log_every 10 "$@"
}
train --train.max_steps 25 --optim.lr 0.02 --run.dir "$WORK/run" > "$WORK/train.txt" 2>&1 \
  || { cat "$WORK/train.txt"; fail "alexnet-train"; }
W=$WORK/run/weights.h5

# Exports: the training data's statistics and class names come from the file's config.
"$BIN/alexnet-export" --checkpoint "$W" --format onnx --with-preprocessing --out "$WORK/m.onnx" \
  > /dev/null || fail "export onnx"
"$BIN/alexnet-export" --checkpoint "$W" --format safetensors --out "$WORK/m.safetensors" \
  > /dev/null || fail "export safetensors"
"$BIN/alexnet-eval" --weights "$W" --data "$WORK/fm-train-00000.h5" --logits "$WORK/logits.h5" \
  > /dev/null || fail "alexnet-eval"
"$PY" - "$WORK" <<'PY' || fail "onnxruntime with preprocessing"
import sys, h5py, numpy as np, onnx, onnxruntime as ort
w = sys.argv[1]
model = onnx.load(w + "/m.onnx")
onnx.checker.check_model(model)
meta = {p.key: p.value for p in model.metadata_props}
assert meta["class_names"].split(",")[9] == "Ankle boot", meta
pixels = h5py.File(w + "/fm-train-00000.h5")["images"][:64].astype(np.float32).transpose(0, 3, 1, 2)
ours = h5py.File(w + "/logits.h5")["logits"][:64]
theirs = ort.InferenceSession(w + "/m.onnx", providers=["CPUExecutionProvider"]).run(
    ["logits"], {"input": pixels})[0]
err = np.abs(theirs - ours).max() / np.abs(ours).max()
assert err < 1e-4, err
PY

# Fine-tuning start: every parameter from the safetensors but the head. One step at a tiny
# learning rate: the trainable parameters stay within 1e-5 of the source (bitwise equality at
# step 0 is test_trainer_export's InitFrom case), the fresh head does not.
train --train.max_steps 1 --optim.lr 1e-7 --init.from "$WORK/m.safetensors" \
  --init.skip classifier.6 --run.dir "$WORK/tune" > "$WORK/tune.txt" 2>&1 \
  || { cat "$WORK/tune.txt"; fail "alexnet-train --init.from"; }
grep -q "tensors loaded, 2 left at fresh initialization" "$WORK/tune.txt" \
  || { cat "$WORK/tune.txt"; fail "init line"; }
"$PY" - "$WORK" <<'PY' || fail "fine-tuning start"
import sys, h5py, numpy as np
w = sys.argv[1]
src, new = h5py.File(w + "/run/weights.h5")["model"], h5py.File(w + "/tune/weights.h5")["model"]
for k in src:
    if "running" in k or "num_batches" in k:
        continue  # batch norm statistics move in the training forward pass
    d = np.abs(src[k][()] - new[k][()]).max()
    assert (d > 1e-3) if k.startswith("classifier.6.") else (d < 1e-5), (k, d)
PY

# Images: PNG (gray and RGB) and JPEG files of the first training samples.
"$PY" - "$WORK" <<'PY' || fail "writing images"
import sys, os, h5py
from PIL import Image
w = sys.argv[1]
x = h5py.File(w + "/fm-train-00000.h5")["images"][:12, :, :, 0]
os.makedirs(w + "/img/a"); os.makedirs(w + "/img/b")
for i in range(12):
    im = Image.fromarray(x[i], "L")
    (im.convert("RGB") if i % 3 == 0 else im).save(f"{w}/img/a/{i:02d}.png")
    if i < 4:  # a JPEG, and its pixels as PIL decodes them (the same libjpeg-turbo) in a PNG
        im.convert("RGB").save(f"{w}/img/b/{i:02d}.jpg", quality=90)
        Image.open(f"{w}/img/b/{i:02d}.jpg").save(f"{w}/img/b/{i:02d}-decoded.png")
PY
"$BIN/alexnet-predict" --checkpoint "$W" --json "$WORK"/img/a/*.png > "$WORK/png.jsonl" \
  || fail "predict png"
"$BIN/alexnet-predict" --checkpoint "$W" --json --top 1 "$WORK"/img/b/*.jpg > "$WORK/jpg.jsonl" \
  || fail "predict jpg"
"$BIN/alexnet-predict" --checkpoint "$W" --json --top 1 "$WORK"/img/b/*-decoded.png \
  > "$WORK/decoded.jsonl" || fail "predict decoded"
"$BIN/alexnet-predict" --checkpoint "$W" --top 2 "$WORK/img/a/00.png" > "$WORK/text.txt" \
  || fail "predict text"
[ "$(wc -l < "$WORK/text.txt")" = 3 ] || { cat "$WORK/text.txt"; fail "text output"; }
"$BIN/alexnet-predict" --checkpoint "$W" --json --top 1 --data "$WORK/fm-train-00000.h5" \
  > "$WORK/data.jsonl" || fail "predict --data"
"$PY" - "$WORK" <<'PY' || fail "predict vs eval"
import sys, json, h5py, numpy as np
w = sys.argv[1]
top1 = h5py.File(w + "/logits.h5")["logits"][()].argmax(1)
png = [json.loads(l) for l in open(w + "/png.jsonl")]
assert len(png) == 12 and all(len(p["top"]) == 5 for p in png), png[0]
assert [p["top"][0]["class"] for p in png] == list(top1[:12]), (png, top1[:12])
jpg = [json.loads(l)["top"][0] for l in open(w + "/jpg.jsonl")]
dec = [json.loads(l)["top"][0] for l in open(w + "/decoded.jsonl")]
assert [j["class"] for j in jpg] == [d["class"] for d in dec], (jpg, dec)
assert max(abs(j["probability"] - d["probability"]) for j, d in zip(jpg, dec)) < 1e-5
data = [json.loads(l) for l in open(w + "/data.jsonl")]
assert [d["top"][0]["class"] for d in data] == list(top1), "predict --data vs eval"
assert data[0]["top"][0]["name"] and "label" in data[0]["sample"]
PY

# Bad input: exit status 2 and one line naming the problem.
cp "$W" "$WORK/damaged.h5"
"$PY" - "$WORK/damaged.h5" <<'PY'
import sys, os
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    f.seek(size // 2); b = f.read(1); f.seek(size // 2); f.write(bytes([b[0] ^ 0x5A]))
PY
cp "$W" "$WORK/foreign.h5"
"$PY" -c "import h5py, sys; h5py.File(sys.argv[1], 'r+')['model'].attrs['arch'] = 'alexnet-huge'" \
  "$WORK/foreign.h5"
"$BIN/alexnet-data" import-folder --quiet --root "$WORK/img" --size 28 --out "$WORK/rgb" > /dev/null
set +e
"$BIN/alexnet-export" --checkpoint "$WORK/damaged.h5" --format onnx --out "$WORK/x.onnx" \
  2> "$WORK/err1.txt"; rc1=$?
"$BIN/alexnet-export" --checkpoint "$WORK/foreign.h5" --format safetensors --out "$WORK/x.st" \
  2> "$WORK/err2.txt"; rc2=$?
"$BIN/alexnet-train" --data.train "$WORK/rgb-00000.h5" --train.batch_size 2 \
  --init.from "$WORK/m.safetensors" --run.dir "$WORK/bad" > /dev/null 2> "$WORK/err3.txt"; rc3=$?
"$BIN/alexnet-predict" --checkpoint "$WORK/damaged.h5" "$WORK/img/a/00.png" 2> "$WORK/err4.txt"
rc4=$?
"$BIN/alexnet-export" --checkpoint "$W" --format tflite --out "$WORK/x" 2> "$WORK/err5.txt"; rc5=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4 $rc5" = "2 2 2 2 2" ] || fail "exit codes $rc1 $rc2 $rc3 $rc4 $rc5 (want 2)"
for f in err1 err2 err3 err4 err5; do
  [ "$(wc -l < "$WORK/$f.txt")" = 1 ] || { cat "$WORK/$f.txt"; fail "$f is not one line"; }
done
grep -q "damaged.h5" "$WORK/err1.txt" || fail "damaged file not named: $(cat "$WORK/err1.txt")"
grep -q "alexnet-huge" "$WORK/err2.txt" || fail "unknown arch not named: $(cat "$WORK/err2.txt")"
grep -q "features.0.weight has shape \[64, 1, 3, 3\]" "$WORK/err3.txt" \
  || fail "mismatch not named: $(cat "$WORK/err3.txt")"
[ ! -e "$WORK/x.onnx" ] && [ ! -e "$WORK/x.st" ] || fail "an output appeared after an error"
echo "export/predict e2e: OK"
rm -rf "$WORK"
