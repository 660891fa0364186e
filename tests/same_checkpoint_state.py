#!/usr/bin/env python3
"""Two checkpoint files hold the same state, bit for bit: every array and the step attribute.

Usage: same_checkpoint_state.py A.h5 B.h5   (exit status 1 naming the first difference)
"""
import sys

import h5py
import numpy as np

a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
assert names, "no arrays"
for n in names:
    x, y = a[n][...], b[n][...]
    if x.shape != y.shape or not np.array_equal(x, y):
        d = np.abs(x.astype(np.float64) - y).max() if x.shape == y.shape else "shape"
        sys.exit(f"{n} differs ({d})")
assert a.attrs["step"] == b.attrs["step"], (a.attrs["step"], b.attrs["step"])
print(f"{len(names)} arrays identical")
