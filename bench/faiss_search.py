"""faiss reference for the exact search timed by `astroclip bench search`.

faiss-cpu's `IndexFlatIP` (exact inner-product search: BLAS matrix products between query and
database blocks, a heap per query) over the same unit rows and queries the Rust kernel
(`plugins/builtin/src/topk.rs`) searched; all cores (faiss's OpenMP default).

Usage: faiss_search.py <dir> <n> <n_queries> <dim> <k>
  <dir> holds db.f32 and queries.f32 (little-endian float32, row-major); writes
  faiss_ids.i64 (n_queries × k, little-endian int64) there and prints one JSON object.
"""

import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np


def main():
    d = Path(sys.argv[1])
    n, nq, dim, k = (int(v) for v in sys.argv[2:6])
    db = np.fromfile(d / "db.f32", dtype="<f4").reshape(n, dim)
    queries = np.fromfile(d / "queries.f32", dtype="<f4").reshape(nq, dim)
    t = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    index.add(db)
    add_seconds = time.perf_counter() - t
    del db
    t = time.perf_counter()
    _, ids = index.search(queries, k)
    search_seconds = time.perf_counter() - t
    ids.astype("<i8").tofile(d / "faiss_ids.i64")
    print(json.dumps({
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "add_seconds": add_seconds,
        "search_seconds": search_seconds,
    }))


if __name__ == "__main__":
    main()
