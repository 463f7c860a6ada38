"""Reference for `astroclip data bench`: random-row reads of an AstroCLIP-layout HDF5 file with
h5py, one thread, the same arrays per object as astroclip's reader (image, spectrum, ivar when
present). Prints `RESULT h5py_rows_per_sec=…`.

Usage: python bench/h5py_read.py FILE N_ROWS [SEED]
"""
import sys
import time

import h5py
import numpy as np

path, n = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
with h5py.File(path, "r") as f:
    groups = [g for g in f if isinstance(f[g], h5py.Group) and "images" in f[g]]
    sizes = [f[g]["images"].shape[0] for g in groups]
    starts = np.cumsum([0] + sizes)
    total = int(starts[-1])
    order = np.random.default_rng(seed).integers(0, total, n)
    dsets = [(f[g]["images"], f[g]["spectra"], f[g]["ivar"] if "ivar" in f[g] else None) for g in groups]
    t = time.perf_counter()
    acc = 0.0
    for i in order:
        k = int(np.searchsorted(starts, i, side="right") - 1)
        r = int(i - starts[k])
        img, spec, ivar = dsets[k]
        a = img[r]
        b = spec[r]
        acc += float(a[0, 0, 0]) + float(b[0, 0])
        if ivar is not None:
            c = ivar[r]
    dt = time.perf_counter() - t
print(f"RESULT h5py_rows_per_sec={n / dt:.1f}")
