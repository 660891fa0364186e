#!/usr/bin/env bash
# alexnet-data on malformed input: every case must exit 2 with one line on stderr naming the file
# or option, within a memory bound (sizes read from files are checked before allocating), and
# leave no output behind.
#   data_tool.sh BIN_DIR WORK_DIR
set -u
BIN=$1
WORK=$2
# shellcheck source=tests/malformed/lib.sh
source "$(dirname "$0")/lib.sh"
fresh_dir "$WORK"
DATA="$BIN/alexnet-data"
PY=/usr/bin/python3
F="$WORK/files"
OUT="$WORK/out"
mkdir -p "$F" "$OUT"

# ---- Crafted inputs, all small -----------------------------------------------------------------
"$PY" - "$F" <<'EOF' || fail "could not make the crafted files"
import gzip, io, struct, sys, zlib
import h5py, numpy as np
from PIL import Image

d = sys.argv[1]

def put(name, data):
    with open(f"{d}/{name}", "wb") as f:
        f.write(data)

# IDX: labels magic 0x00000801 [n], images 0x00000803 [n, h, w].
def labels(n, values):
    return struct.pack(">4BI", 0, 0, 8, 1, n) + bytes(values)
def images(n, h, w, pixels):
    return struct.pack(">4BIII", 0, 0, 8, 3, n, h, w) + bytes(pixels)

put("labels-10.idx", labels(10, range(10)))
put("images-10.idx", images(10, 4, 4, [7] * 160))
put("images-12.idx", images(12, 4, 4, [7] * 192))
put("labels-4g.idx", labels(0xFFFFFFFF, [1] * 32))              # 40 bytes claiming 4G labels
put("labels-4g.idx.gz", gzip.compress(labels(0xFFFFFFFF, [1] * 32)))
put("labels-2g.idx", labels(2000000000, [1] * 32))              # within the limit, not the file
put("labels-2g.idx.gz", gzip.compress(labels(2000000000, [1] * 32)))
put("images-1g.idx", images(1000000000, 28, 28, [0] * 784))
put("images-huge-side.idx", images(1, 60000, 60000, [0] * 64))
put("images-4g.idx", images(0xFFFFFFFF, 28, 28, [0] * 784))
put("labels-bad-magic.idx", b"hello, this is not an IDX file\n")
put("labels-3d.idx", struct.pack(">4BIII", 0, 0, 8, 3, 1, 1, 1) + b"\0")
put("labels-extra.idx", labels(10, range(10)) + b"extra")
put("labels-big.idx", labels(10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 200]))
gz = gzip.compress(labels(100000, [i % 10 for i in range(100000)]))
put("labels-cut.idx.gz", gz[: len(gz) // 2])
bad = bytearray(gzip.compress(images(10, 4, 4, list(range(160)))))
for i in range(12, len(bad) - 8):
    bad[i] ^= 0x5A
put("images-corrupt.idx.gz", bytes(bad))
put("empty", b"")

# CIFAR-10 records: label byte, 3072 pixel bytes.
put("cifar-odd.bin", b"\0" * 3073 * 2 + b"\0" * 100)
put("cifar-label.bin", b"\3" + b"\0" * 3072 + b"\x0c" + b"\0" * 3072)
put("cifar100-coarse.bin", b"\x15\x05" + b"\0" * 3072)  # coarse label 21 of 20

# HDF5 shards: a valid one to break in one way each.
def shard(name, n=4, h=5, w=6, c=3, image_dtype="u1", label_dtype="i4", chunks=None,
          write=True, labels_data=None, attrs=None, labels_shape=None):
    with h5py.File(f"{d}/{name}", "w") as f:
        kw = dict(chunks=chunks) if chunks else {}
        img = f.create_dataset("images", shape=(n, h, w, c), dtype=image_dtype, **kw)
        if write:
            img[...] = 9
        if labels_shape is None:
            lab = labels_data if labels_data is not None else np.arange(n) % 2
            f.create_dataset("labels", data=np.asarray(lab).astype(label_dtype))
        else:
            f.create_dataset("labels", shape=labels_shape, dtype=label_dtype,
                             chunks=(min(1024, labels_shape[0]),))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v

shard("good.h5")
shard("samples-2e40.h5", n=2 ** 40, chunks=(1, 5, 6, 3), write=False, labels_shape=(2 ** 40,))
shard("samples-2e30.h5", n=2 ** 30, chunks=(1024, 5, 6, 3), write=False, labels_shape=(2 ** 30,))
shard("side-60000.h5", n=1, h=60000, w=60000, c=1, chunks=(1, 64, 64, 1), write=False)
shard("channels-4.h5", c=4)
shard("other-shape.h5", h=6, w=5)
shard("num-classes-string.h5", attrs={"num_classes": "ten"})
with h5py.File(f"{d}/images-group.h5", "w") as f:
    f.create_group("images")
    f.create_dataset("labels", data=np.zeros(4, "i4"))
with h5py.File(f"{d}/string-images.h5", "w") as f:
    f.create_dataset("images", data=np.array([b"abc"] * 4 * 5 * 6 * 3).reshape(4, 5, 6, 3))
    f.create_dataset("labels", data=np.zeros(4, "i4"))
shard("float-images.h5", image_dtype="f4")
shard("float-labels.h5", label_dtype="f4")
shard("labels-short.h5", labels_data=[0, 1, 0])
shard("zero-samples.h5", n=0, labels_data=[])
shard("num-classes-huge.h5", attrs={"num_classes": 10 ** 9})
shard("class-names-count.h5", attrs={"num_classes": 2, "class_names": ["a", "b", "c"]})
shard("class-name-long.h5", attrs={"class_names": ["x" * 5000, "y"]})
shard("negative-label.h5", labels_data=[0, -1, 1, 0])
shard("label-range.h5", labels_data=[0, 1, 5, 0], attrs={"num_classes": 2})
shard("std-zero.h5", attrs={"mean": [1.0, 2.0, 3.0], "std": [1.0, 0.0, 1.0]})
shard("mean-nan.h5", attrs={"mean": [1.0, float("nan"), 3.0], "std": [1.0, 1.0, 1.0]})
shard("labels-unwritten.h5", n=5000, h=2, w=2, c=1, labels_shape=(5000,))
with h5py.File(f"{d}/huge-chunk.h5", "w") as f:
    f.create_dataset("images", shape=(4, 5, 6, 3), maxshape=(None, 5, 6, 3),
                     chunks=(1 << 24, 5, 6, 3), dtype="u1")
    f.create_dataset("labels", data=np.zeros(4, "i4"))
layout = h5py.VirtualLayout(shape=(4, 5, 6, 3), dtype="u1")
layout[:] = h5py.VirtualSource(f"{d}/good.h5", "images", shape=(4, 5, 6, 3))
with h5py.File(f"{d}/virtual.h5", "w") as f:
    f.create_virtual_dataset("images", layout)
    f.create_dataset("labels", data=np.zeros(4, "i4"))
with h5py.File(f"{d}/no-labels.h5", "w") as f:
    f.create_dataset("images", data=np.zeros((4, 5, 6, 3), "u1"))
with h5py.File(f"{d}/labels-group.h5", "w") as f:
    f.create_dataset("images", data=np.zeros((4, 5, 6, 3), "u1"))
    f.create_group("labels")
shard("contiguous.h5", n=200, h=16, w=16, c=3)
whole = open(f"{d}/contiguous.h5", "rb").read()
put("truncated.h5", whole[: len(whole) // 2])

# Images for import-folder: a valid JPEG and PNG whose headers then lie about their size.
def encode(fmt, size=(16, 16)):
    b = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(b, fmt)
    return bytearray(b.getvalue())

def png_with_size(w, h):
    p = encode("PNG")
    ihdr = p[12:29]  # "IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", w, h)
    p[12:29] = ihdr
    p[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(p)

def jpeg_with_size(w, h):
    j = encode("JPEG")
    sof = j.find(b"\xff\xc0")
    j[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(j)

for name, data in [("png-lie", png_with_size(16000, 16000)),
                   ("png-wide", png_with_size(70000, 16)),
                   ("jpeg-lie", jpeg_with_size(65000, 65000)),
                   ("jpeg-lie-small", jpeg_with_size(4000, 4000)),
                   ("jpeg-cut", bytes(encode("JPEG", (64, 64))[:300])),
                   ("not-image", b"GIF89a not supported\n")]:
    ext = "png" if name.startswith("png") else "jpg"
    import os
    os.makedirs(f"{d}/tree-{name}/cat", exist_ok=True)
    os.makedirs(f"{d}/tree-{name}/dog", exist_ok=True)
    put(f"tree-{name}/cat/a.{ext}", data)
    put(f"tree-{name}/dog/b.png", bytes(encode("PNG")))
EOF
mkdir -p "$F/a-folder" "$F/tree-empty/cat"
# A FIFO where a file is expected must be refused, not block; a sparse 1.1 GB "image" must be
# refused before it is read.
# (Outside $F, whose files are checksummed.)
S="$WORK/special"
mkdir -p "$S/tree-fifo/cat" "$S/tree-big/cat"
mkfifo "$S/fifo.h5" "$S/tree-fifo/cat/a.jpg"
truncate -s 1100M "$S/tree-big/cat/a.jpg"
before=$(tree_sums "$F")

# (Arrays, not functions: expect_error runs its command under timeout.)
IDX=("$DATA" import-idx --quiet --out "$OUT/idx")
CIFAR=("$DATA" import-cifar --quiet --out "$OUT/cifar")
FOLDER=("$DATA" import-folder --quiet --threads 2 --out "$OUT/folder")
INSPECT=("$DATA" inspect)

# ---- import-idx --------------------------------------------------------------------------------
expect_error 2 "labels-4g.idx.*4294967295.*limit" 100 -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-4g.idx"
expect_error 2 "labels-2g.idx.*truncated.*2000000000 labels" 100 -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-2g.idx"
expect_error 2 "labels-2g.idx.gz.*truncated.*gzip file" 100 -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-2g.idx.gz"
expect_error 2 "images-1g.idx.*truncated" 100 -- "${IDX[@]}" --images "$F/images-1g.idx" --labels "$F/labels-10.idx"
expect_error 2 "images-huge-side.idx.*60000x60000.*limit" 100 -- "${IDX[@]}" --images "$F/images-huge-side.idx" --labels "$F/labels-10.idx"
expect_error 2 "images-4g.idx.*limit" 100 -- "${IDX[@]}" --images "$F/images-4g.idx" --labels "$F/labels-10.idx"
expect_error 2 "labels-10.idx.*10 labels for 12 images" -- "${IDX[@]}" --images "$F/images-12.idx" --labels "$F/labels-10.idx"
expect_error 2 "empty.*empty file" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/empty"
expect_error 2 "a-folder.*folder" -- "${IDX[@]}" --images "$F/a-folder" --labels "$F/labels-10.idx"
expect_error 2 "nowhere.idx.*no such file" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/nowhere.idx"
expect_error 2 "labels-bad-magic.idx.*magic" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-bad-magic.idx"
expect_error 2 "labels-3d.idx.*3 dimensions" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-3d.idx"
expect_error 2 "labels-extra.idx.*extra bytes" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-extra.idx"
expect_error 2 "labels-cut.idx.gz.*truncated" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-cut.idx.gz"
expect_error 2 "images-corrupt.idx.gz.*(corrupt|truncated)" -- "${IDX[@]}" --images "$F/images-corrupt.idx.gz" --labels "$F/labels-10.idx"
expect_error 2 "labels-big.idx.*label 200.*out of range" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-big.idx" --num-classes 10
expect_error 2 "a-folder.*class names" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --class-names "@$F/a-folder"
expect_error 2 "num-classes" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --num-classes 1000000
expect_error 2 "bad option: --class-names gives 2 names for --num-classes 10" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --class-names a,b --num-classes 10
expect_error 2 "gzip-level" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --gzip-level 12
expect_error 2 "val-fraction" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --val-fraction 1.5
expect_error 2 "compression" -- "${IDX[@]}" --images "$F/images-10.idx" --labels "$F/labels-10.idx" --compression lz4

# ---- import-cifar ------------------------------------------------------------------------------
expect_error 2 "cifar-odd.bin.*records" -- "${CIFAR[@]}" --batches "$F/cifar-odd.bin"
expect_error 2 "cifar-label.bin.*label 12.*out of range" -- "${CIFAR[@]}" --batches "$F/cifar-label.bin"
expect_error 2 "cifar100-coarse.bin.*label 21.*\[0, 20\)" -- "${CIFAR[@]}" --batches "$F/cifar100-coarse.bin" --labels coarse
expect_error 2 "a-folder.*folder" -- "${CIFAR[@]}" --batches "$F/a-folder"
expect_error 2 "empty.*size 0" -- "${CIFAR[@]}" --batches "$F/empty"
expect_error 2 "--labels" -- "${CIFAR[@]}" --batches "$F/cifar-label.bin" --labels medium

# ---- inspect (HDF5 shards) ---------------------------------------------------------------------
expect_error 2 "labels-bad-magic.idx.*not an HDF5 file" -- "${INSPECT[@]}" "$F/labels-bad-magic.idx"
expect_error 2 "empty.*not an HDF5 file" -- "${INSPECT[@]}" "$F/empty"
expect_error 2 "a-folder.*directory" -- "${INSPECT[@]}" "$F/a-folder"
expect_error 2 "samples-2e40.h5.*images.*1099511627776 samples.*limit" 100 -- "${INSPECT[@]}" "$F/samples-2e40.h5"
expect_error 2 "samples-2e30.h5.*images.*stores only 0" 100 -- "${INSPECT[@]}" "$F/samples-2e30.h5"
expect_error 2 "side-60000.h5.*60000x60000.*limit" 100 -- "${INSPECT[@]}" "$F/side-60000.h5"
expect_error 2 "channels-4.h5.*4 channels" -- "${INSPECT[@]}" "$F/channels-4.h5"
expect_error 2 "other-shape.h5.*image shape.*disagrees.*good.h5" -- "${INSPECT[@]}" "$F/good.h5" "$F/other-shape.h5"
expect_error 2 "num-classes-string.h5.*num_classes.*one integer" -- "${INSPECT[@]}" "$F/num-classes-string.h5"
expect_error 2 "images-group.h5.*'images' is not a dataset" -- "${INSPECT[@]}" "$F/images-group.h5"
expect_error 2 "string-images.h5.*uint8.*string" -- "${INSPECT[@]}" "$F/string-images.h5"
expect_error 2 "float-images.h5.*uint8.*float32" -- "${INSPECT[@]}" "$F/float-images.h5"
expect_error 2 "float-labels.h5.*integer.*float32" -- "${INSPECT[@]}" "$F/float-labels.h5"
expect_error 2 "labels-short.h5.*shape \[4\]" -- "${INSPECT[@]}" "$F/labels-short.h5"
expect_error 2 "zero-samples.h5.*no samples" -- "${INSPECT[@]}" "$F/zero-samples.h5"
expect_error 2 "num-classes-huge.h5.*num_classes" -- "${INSPECT[@]}" "$F/num-classes-huge.h5"
expect_error 2 "class-names-count.h5.*class_names.*3 names for 2 classes" -- "${INSPECT[@]}" "$F/class-names-count.h5"
expect_error 2 "class-name-long.h5.*class_names.*limit" -- "${INSPECT[@]}" "$F/class-name-long.h5"
expect_error 2 "negative-label.h5.*label -1.*out of range" -- "${INSPECT[@]}" "$F/negative-label.h5"
expect_error 2 "label-range.h5.*label 5.*\[0, 2\)" -- "${INSPECT[@]}" "$F/label-range.h5"
expect_error 2 "std-zero.h5.*std" -- "${INSPECT[@]}" "$F/std-zero.h5"
expect_error 2 "mean-nan.h5.*mean" -- "${INSPECT[@]}" "$F/mean-nan.h5"
expect_error 2 "labels-unwritten.h5.*labels.*stores only" -- "${INSPECT[@]}" "$F/labels-unwritten.h5"
expect_error 2 "huge-chunk.h5.*chunks" -- "${INSPECT[@]}" "$F/huge-chunk.h5"
expect_error 2 "virtual.h5.*virtual dataset" -- "${INSPECT[@]}" "$F/virtual.h5"
expect_error 2 "no-labels.h5.*no dataset 'labels'" -- "${INSPECT[@]}" "$F/no-labels.h5"
expect_error 2 "labels-group.h5.*not a dataset" -- "${INSPECT[@]}" "$F/labels-group.h5"
expect_error 2 "truncated.h5" -- "${INSPECT[@]}" "$F/truncated.h5"
expect_error 2 "good.h5.*listed twice" -- "${INSPECT[@]}" "$F/good.h5" "$F/good.h5"
expect_error 2 "fifo.h5.*not a regular file" -- "${INSPECT[@]}" "$S/fifo.h5"
expect_error 2 "nothing-\*.h5.*no file matches" -- "${INSPECT[@]}" "$F/nothing-*.h5"

# ---- import-folder -----------------------------------------------------------------------------
expect_error 2 "a.png.*16000 x 16000.*can hold" 100 -- "${FOLDER[@]}" --size 32 --root "$F/tree-png-lie"
expect_error 2 "a.png.*bad PNG" 100 -- "${FOLDER[@]}" --size 32 --root "$F/tree-png-wide"
expect_error 2 "a.jpg.*65000 x 65000.*limit" 100 -- "${FOLDER[@]}" --size 32 --root "$F/tree-jpeg-lie"
expect_error 2 "a.jpg.*bad JPEG" 150 -- "${FOLDER[@]}" --size 32 --root "$F/tree-jpeg-lie-small"
expect_error 2 "a.jpg.*bad JPEG" -- "${FOLDER[@]}" --size 32 --root "$F/tree-jpeg-cut"
expect_error 2 "a.jpg.*not a JPEG or PNG" -- "${FOLDER[@]}" --size 32 --root "$F/tree-not-image"
expect_error 2 "a.jpg.*not a regular file" -- "${FOLDER[@]}" --size 32 --root "$S/tree-fifo"
expect_error 2 "a.jpg.*1153433600 bytes.*limit" 100 -- "${FOLDER[@]}" --size 32 --root "$S/tree-big"
expect_error 2 "tree-empty/cat.*no .jpg" -- "${FOLDER[@]}" --size 32 --root "$F/tree-empty"
expect_error 2 "good.h5.*not a folder" -- "${FOLDER[@]}" --size 32 --root "$F/good.h5"
expect_error 2 "--size" -- "${FOLDER[@]}" --root "$F/tree-not-image" --size 100000

# ---- commands and options ----------------------------------------------------------------------
expect_error 2 "unknown command 'frobnicate'" -- "$DATA" frobnicate
expect_error 2 "bad option" -- "$DATA" inspect --no-such-option "$F/good.h5"
expect_error 2 "--channels" -- "$DATA" synthetic --quiet --out "$OUT/syn" --channels 4

# A valid file passes, so the cases above fail for the reason they name.
if ! "$DATA" inspect "$F/good.h5" >"$WORK/good.out" 2>&1; then
  case_failed "inspect of a valid shard failed: $(cat "$WORK/good.out")"
fi
# Failed runs leave no output and change no input.
leftovers=$(find "$OUT" -type f | head -5)
[ -z "$leftovers" ] || case_failed "failed imports left files behind: $leftovers"
[ "$(tree_sums "$F")" = "$before" ] || case_failed "a failed run changed an input file"
finish
