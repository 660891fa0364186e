#!/usr/bin/env python3
# Writes the io tests' pattern dataset with h5py, the way a Python user would, for test_h5py_compat.
"""Write the test pattern (tests/io/test_util.h) as one HDF5 file with h5py.

The pixels and labels follow pattern_pixel / pattern_label in tests/io/test_util.h exactly, so
the C++ test can compare them byte for byte with a file written by ShardWriter. Everything else
(chunking, filters, label type, attribute types) deliberately differs from what ShardWriter
writes, to check that the reader accepts what h5py users naturally produce.
"""

import argparse
import sys

import h5py
import numpy as np


def pattern(n, h, w, c, classes):
    """Images uint8 [n, h, w, c] and labels int64 [n] as in tests/io/test_util.h."""
    i = np.arange(n, dtype=np.int64).reshape(n, 1, 1, 1)
    y = np.arange(h, dtype=np.int64).reshape(1, h, 1, 1)
    x = np.arange(w, dtype=np.int64).reshape(1, 1, w, 1)
    k = np.arange(c, dtype=np.int64).reshape(1, 1, 1, c)
    images = ((i * 7 + y * 3 + x * 5 + k * 11 + (i >> 8)) & 0xFF).astype(np.uint8)
    labels = (np.arange(n, dtype=np.int64) * 3) % classes
    return images, labels


def parse_chunks(text, shape):
    if text == "none":
        return None
    chunks = tuple(int(v) for v in text.split(","))
    if len(chunks) != len(shape):
        sys.exit(f"--chunks needs {len(shape)} values, got {text!r}")
    return chunks


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="output .h5 file")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--chunks", default="none", help="N,H,W,C chunk shape of images, or none")
    parser.add_argument("--gzip", action="store_true", help="gzip level 4 with the shuffle filter")
    parser.add_argument("--label-dtype", default="int64")
    parser.add_argument("--attrs", action="store_true",
                        help="write num_classes, class_names, mean and std (else no attributes)")
    args = parser.parse_args()

    images, labels = pattern(args.n, args.height, args.width, args.channels, args.classes)
    filters = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if args.gzip else {}
    with h5py.File(args.out, "w") as f:
        f.create_dataset("images", data=images, chunks=parse_chunks(args.chunks, images.shape),
                         **filters)
        # Labels chunked like the images when those are, so both have the same row blocking.
        label_chunks = None if args.chunks == "none" else (int(args.chunks.split(",")[0]),)
        f.create_dataset("labels", data=labels.astype(args.label_dtype), chunks=label_chunks,
                         **filters)
        if args.attrs:
            # The types a Python user gets without thinking about it: a numpy integer scalar,
            # a list of str (variable-length UTF-8), float32 arrays.
            f.attrs["num_classes"] = np.int32(args.classes)
            f.attrs["class_names"] = [f"class{k}" for k in range(args.classes)]
            f.attrs["mean"] = images.mean(axis=(0, 1, 2)).astype(np.float32)
            f.attrs["std"] = images.std(axis=(0, 1, 2)).astype(np.float32)


if __name__ == "__main__":
    main()
