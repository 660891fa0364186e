#!/usr/bin/env bash
# alexnet-export, alexnet-train --init.from and alexnet-predict end to end on a slice of real
# Fashion-MNIST (single process, no mpirun): a briefly trained alexnet-mini exported as ONNX with
# preprocessing (onnxruntime on raw pixels = alexnet-eval's logits) and as safetensors; a
# fine-tuning start from it with a fresh head; PNG and JPEG files classified as alexnet-eval
# classifies the same pixels; safetensors files (ours, and torchvision's AlexNet saved by the
# safetensors package) taken by every tool with torch's answers; exit status 2 and one line for
# damaged, foreign or mismatched input, safetensors files included.
# Usage: export_predict_e2e.sh BIN_DIR WORK_DIR VENV_PYTHON
set -euo pipefail
BIN=$1
WORK=$2
PY=$3
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
fresh_dir "$WORK"

import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.8
train() {  # a few steps of alexnet-mini at a constant learning rate; extra options follow
  "$BIN/alexnet-train" --model.arch alexnet-mini --data.train "$WORK/fm-train-00000.h5" \
    --data.workers 1 --train.batch_size 32 --train.log_every 10 "$@"
}
train --train.max_steps 25 --optim.lr 0.02 --run.dir "$WORK/run" > "$WORK/train.txt" 2>&1 \
  || fail_with_log "alexnet-train" "$WORK/train.txt"
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
  || fail_with_log "alexnet-train --init.from" "$WORK/tune.txt"
grep -q "tensors loaded, 2 left at fresh initialization" "$WORK/tune.txt" \
  || fail_with_log "init line" "$WORK/tune.txt"
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
[ "$(wc -l < "$WORK/text.txt")" = 3 ] || fail_with_log "text output" "$WORK/text.txt"
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

# safetensors in, every tool. (1) Our own export: alexnet-eval's logits and alexnet-predict's
# answers equal the HDF5 file's, bit for bit, and so do those of the same state_dict saved again
# by safetensors.torch.save_file without our metadata (arch and size found from the shapes).
"$PY" -c "import sys; from safetensors.torch import load_file, save_file
save_file(load_file(sys.argv[1]), sys.argv[2])" "$WORK/m.safetensors" "$WORK/plain.safetensors"
for f in m plain; do
  "$BIN/alexnet-eval" --weights "$WORK/$f.safetensors" --data "$WORK/fm-train-00000.h5" \
    --logits "$WORK/logits-$f.h5" > /dev/null || fail "alexnet-eval --weights $f.safetensors"
done
"$BIN/alexnet-predict" --checkpoint "$WORK/m.safetensors" --json "$WORK"/img/a/*.png \
  > "$WORK/png-st.jsonl" || fail "predict from safetensors"
cmp -s "$WORK/png.jsonl" "$WORK/png-st.jsonl" || fail "predict: safetensors vs HDF5 answers"
"$BIN/alexnet-export" --checkpoint "$WORK/plain.safetensors" --format onnx --mean 72.9 \
  --std 90.0 --out "$WORK/plain.onnx" > /dev/null || fail "export onnx from plain safetensors"
"$PY" - "$WORK" <<'PY' || fail "safetensors vs HDF5 logits"
import sys, h5py, numpy as np
w = sys.argv[1]
ours = h5py.File(w + "/logits.h5")["logits"][()]
for f in ("m", "plain"):
    theirs = h5py.File(f"{w}/logits-{f}.h5")["logits"][()]
    assert np.array_equal(ours, theirs), (f, np.abs(ours - theirs).max())
PY

# (2) A PyTorch user's file: torchvision's own AlexNet (seed 0, 4 classes) saved with
# safetensors.torch.save_file, and 224 px RGB images of 4 classes. alexnet-eval's logits,
# alexnet-predict's probabilities (images and --data) and the ONNX export's logits in onnxruntime
# all equal torch's forward on the same normalized pixels (1e-4 of the largest logit; 1e-5 in
# probability); alexnet-export --format safetensors gives torch's tensors back exactly.
"$PY" - "$WORK" <<'PY' || fail "torchvision model and images"
import sys, os, numpy as np, torch, torchvision
from PIL import Image
from safetensors.torch import save_file
w = sys.argv[1]
torch.manual_seed(0)
model = torchvision.models.alexnet(weights=None, num_classes=4)
save_file(model.state_dict(), w + "/tv.safetensors")
rng = np.random.default_rng(0)
for c in range(4):
    os.makedirs(f"{w}/tvimg/c{c}")
    for i in range(2):  # smooth patterns plus noise, one colour cast per class
        y, x = np.mgrid[0:224, 0:224]
        base = 128 + 80 * np.sin((x * (c + 1) + y * (i + 2)) / 17.0)
        px = np.stack([base + 30 * (k - c % 3) for k in range(3)], -1) + rng.normal(0, 20, (224, 224, 3))
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(f"{w}/tvimg/c{c}/{i}.png")
PY
"$BIN/alexnet-data" import-folder --quiet --root "$WORK/tvimg" --size 224 --out "$WORK/tv" \
  > /dev/null || fail "import-folder 224"
stats=$("$PY" -c "import sys, h5py; f = h5py.File(sys.argv[1])
print(','.join('%.9g' % v for v in f.attrs['mean']), ','.join('%.9g' % v for v in f.attrs['std']))" \
  "$WORK/tv-00000.h5")
tv_mean=${stats% *}
tv_std=${stats#* }
"$BIN/alexnet-eval" --weights "$WORK/tv.safetensors" --data "$WORK/tv-00000.h5" \
  --logits "$WORK/tv-logits.h5" > /dev/null || fail "alexnet-eval --weights tv.safetensors"
"$BIN/alexnet-predict" --checkpoint "$WORK/tv.safetensors" --json --top 4 --resize 224 \
  --mean "$tv_mean" --std "$tv_std" "$WORK"/tvimg/c*/*.png > "$WORK/tv-png.jsonl" \
  || fail "predict images from tv.safetensors"
"$BIN/alexnet-predict" --checkpoint "$WORK/tv.safetensors" --json --top 4 \
  --data "$WORK/tv-00000.h5" > "$WORK/tv-data.jsonl" || fail "predict --data from tv.safetensors"
"$BIN/alexnet-export" --checkpoint "$WORK/tv.safetensors" --format onnx --out "$WORK/tv.onnx" \
  > /dev/null || fail "export onnx from tv.safetensors"
"$BIN/alexnet-export" --checkpoint "$WORK/tv.safetensors" --format safetensors \
  --out "$WORK/tv-again.safetensors" > /dev/null || fail "export safetensors from tv.safetensors"
"$PY" - "$WORK" "$tv_mean" "$tv_std" <<'PY' || fail "tools vs torch on torchvision's AlexNet"
import sys, glob, json, h5py, numpy as np, torch, torchvision, onnxruntime as ort
from PIL import Image
from safetensors.torch import load_file
w = sys.argv[1]
mean = np.array([float(v) for v in sys.argv[2].split(",")], np.float32)
std = np.array([float(v) for v in sys.argv[3].split(",")], np.float32)
state = load_file(w + "/tv.safetensors")
model = torchvision.models.alexnet(num_classes=4)
model.load_state_dict(state)
model.eval()
def err(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())
def torch_logits(pixels):  # [N, H, W, 3] uint8
    x = ((pixels.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy(), x
# alexnet-eval on the dataset (its samples in file order, labels with them)
ds = h5py.File(w + "/tv-00000.h5")
ref, x = torch_logits(ds["images"][()])
assert np.abs(ref).max() > 1e-3 and np.ptp(ref, axis=0).max() > 1e-4 * np.abs(ref).max(), ref
ours = h5py.File(w + "/tv-logits.h5")["logits"][()]
assert err(ours, ref) < 1e-4, ("eval", err(ours, ref))
# alexnet-predict --data: probabilities of every class
prob = torch.softmax(torch.from_numpy(ref).double(), 1).numpy()
def probabilities(line):
    p = np.zeros(4)
    for t in json.loads(line)["top"]:
        p[t["class"]] = t["probability"]
    return p
data = np.array([probabilities(l) for l in open(w + "/tv-data.jsonl")])
assert np.abs(data - prob).max() < 1e-5, ("predict --data", np.abs(data - prob).max())
# alexnet-predict on the PNG files, in the order given (c0/0, c0/1, c1/0, ...)
files = sorted(glob.glob(w + "/tvimg/c*/*.png"))
pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
ref_png, _ = torch_logits(pixels)
prob_png = torch.softmax(torch.from_numpy(ref_png).double(), 1).numpy()
png = np.array([probabilities(l) for l in open(w + "/tv-png.jsonl")])
assert np.abs(png - prob_png).max() < 1e-5, ("predict images", np.abs(png - prob_png).max())
# the ONNX export in onnxruntime
onnx_out = ort.InferenceSession(w + "/tv.onnx", providers=["CPUExecutionProvider"]).run(
    ["logits"], {"input": x})[0]
assert err(onnx_out, ref) < 1e-4, ("onnx", err(onnx_out, ref))
# the safetensors export: torch's own tensors, exactly
again = load_file(w + "/tv-again.safetensors")
assert again.keys() == state.keys() and all(torch.equal(again[k], state[k]) for k in state)
print("torchvision AlexNet: eval %.2g, onnx %.2g, predict %.2g / %.2g" % (
    err(ours, ref), err(onnx_out, ref), np.abs(data - prob).max(), np.abs(png - prob_png).max()))
PY

# (3) Bad safetensors files, each refused by every tool with status 2 and one line naming it:
# wrong names, a wrong shape, truncated, a header length beyond the file, data offsets past the
# end.
"$PY" - "$WORK" <<'PY' || fail "writing bad safetensors files"
import sys, json, struct
from safetensors.torch import load_file, save_file
w = sys.argv[1]
t = load_file(w + "/m.safetensors")
save_file({("conv1.weight" if k == "features.0.weight" else k): v for k, v in t.items()},
          w + "/bad-names.safetensors")
bad = dict(t)
bad["features.0.weight"] = bad["features.0.weight"].reshape(64, 1, 9).contiguous()
save_file(bad, w + "/bad-shape.safetensors")
raw = open(w + "/m.safetensors", "rb").read()
open(w + "/bad-truncated.safetensors", "wb").write(raw[: len(raw) // 2])
open(w + "/bad-header.safetensors", "wb").write(struct.pack("<Q", 1 << 40) + raw[8:])
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8 : 8 + n])
last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
header[last]["data_offsets"][1] += 4096
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(w + "/bad-offsets.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n :])
PY
set +e
for b in names shape truncated header offsets; do
  f="$WORK/bad-$b.safetensors"
  "$BIN/alexnet-eval" --weights "$f" --data "$WORK/fm-train-00000.h5" > /dev/null \
    2> "$WORK/bad-$b-eval.txt"
  echo $? > "$WORK/bad-$b-eval.rc"
  "$BIN/alexnet-export" --checkpoint "$f" --format onnx --out "$WORK/bad.onnx" > /dev/null \
    2> "$WORK/bad-$b-export.txt"
  echo $? > "$WORK/bad-$b-export.rc"
  "$BIN/alexnet-predict" --checkpoint "$f" "$WORK/img/a/00.png" > /dev/null \
    2> "$WORK/bad-$b-predict.txt"
  echo $? > "$WORK/bad-$b-predict.rc"
done
set -e
for b in names shape truncated header offsets; do
  for tool in eval export predict; do
    e="$WORK/bad-$b-$tool.txt"
    [ "$(cat "$WORK/bad-$b-$tool.rc")" = 2 ] || fail_with_log "$tool, bad $b: status not 2" "$e"
    [ "$(wc -l < "$e")" = 1 ] || fail_with_log "$tool, bad $b: not one line" "$e"
    grep -q "bad-$b.safetensors" "$e" || fail "$tool, bad $b: file not named: $(cat "$e")"
  done
done
grep -q "features.0.weight" "$WORK/bad-names-eval.txt" || fail "names: $(cat "$WORK/bad-names-eval.txt")"
grep -q "features.0.weight has shape \[64, 1, 9\]" "$WORK/bad-shape-export.txt" \
  || fail "shape: $(cat "$WORK/bad-shape-export.txt")"
grep -q "header length" "$WORK/bad-header-predict.txt" \
  || fail "header: $(cat "$WORK/bad-header-predict.txt")"
grep -q "data_offsets" "$WORK/bad-offsets-eval.txt" \
  || fail "offsets: $(cat "$WORK/bad-offsets-eval.txt")"
[ ! -e "$WORK/bad.onnx" ] || fail "an ONNX file appeared after an error"

# Bad input: exit status 2 and one line naming the problem.
cp "$W" "$WORK/damaged.h5"
"$PY" - "$WORK/damaged.h5" <<'PY'
import sys, os
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    f.seek(size // 2); b = f.read(1); f.seek(size // 2); f.write(bytes([b[0] ^ 0x5A]))
PY
# An arch we do not know, named by the file's metadata (an HDF5 file's attributes are under its
# checksum, so editing /model@arch reads as damage instead).
"$PY" -c "import sys; from safetensors.torch import load_file, save_file
save_file(load_file(sys.argv[1]), sys.argv[2], metadata={'arch': 'alexnet-huge'})" \
  "$WORK/m.safetensors" "$WORK/foreign.safetensors"
"$BIN/alexnet-data" import-folder --quiet --root "$WORK/img" --size 28 --out "$WORK/rgb" > /dev/null
set +e
"$BIN/alexnet-export" --checkpoint "$WORK/damaged.h5" --format onnx --out "$WORK/x.onnx" \
  2> "$WORK/err1.txt"; rc1=$?
"$BIN/alexnet-export" --checkpoint "$WORK/foreign.safetensors" --format safetensors \
  --out "$WORK/x.st" \
  2> "$WORK/err2.txt"; rc2=$?
"$BIN/alexnet-train" --data.train "$WORK/rgb-00000.h5" --train.batch_size 2 \
  --init.from "$WORK/m.safetensors" --run.dir "$WORK/bad" > /dev/null 2> "$WORK/err3.txt"; rc3=$?
"$BIN/alexnet-predict" --checkpoint "$WORK/damaged.h5" "$WORK/img/a/00.png" 2> "$WORK/err4.txt"
rc4=$?
"$BIN/alexnet-export" --checkpoint "$W" --format tflite --out "$WORK/x" 2> "$WORK/err5.txt"; rc5=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4 $rc5" = "2 2 2 2 2" ] || fail "exit codes $rc1 $rc2 $rc3 $rc4 $rc5 (want 2)"
for f in err1 err2 err3 err4 err5; do
  [ "$(wc -l < "$WORK/$f.txt")" = 1 ] || fail_with_log "$f is not one line" "$WORK/$f.txt"
done
grep -q "damaged.h5" "$WORK/err1.txt" || fail "damaged file not named: $(cat "$WORK/err1.txt")"
grep -q "alexnet-huge" "$WORK/err2.txt" || fail "unknown arch not named: $(cat "$WORK/err2.txt")"
grep -q "features.0.weight has shape \[64, 1, 3, 3\]" "$WORK/err3.txt" \
  || fail "mismatch not named: $(cat "$WORK/err3.txt")"
[ ! -e "$WORK/x.onnx" ] && [ ! -e "$WORK/x.st" ] || fail "an output appeared after an error"
passed "$WORK" "export/predict e2e: OK"
