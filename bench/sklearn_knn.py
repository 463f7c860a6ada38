"""scikit-learn reference for the zero-shot k-NN probe timed by `astroclip bench perf`.

AstroCLIP's zero-shot evaluation (`astroclip/downstream_tasks/property_estimation`):
`StandardScaler` on the training embeddings, then `KNeighborsRegressor(n_neighbors=64,
weights="distance")`. The Rust probe (`plugins/builtin/src/knn.rs`) ports exactly this; the
bench feeds both the same embeddings and compares predictions as well as times.

Usage: sklearn_knn.py <dir> <n_train> <n_test> <dim> <k> <reps>
  <dir> holds train_x.f32, train_y.f32, test_x.f32 (little-endian float32, row-major);
  writes sklearn_pred.f32 there and prints one JSON object on stdout.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler


def main():
    d = Path(sys.argv[1])
    n_train, n_test, dim, k, reps = (int(v) for v in sys.argv[2:7])
    xtr = np.fromfile(d / "train_x.f32", dtype="<f4").reshape(n_train, dim)
    ytr = np.fromfile(d / "train_y.f32", dtype="<f4")
    xte = np.fromfile(d / "test_x.f32", dtype="<f4").reshape(n_test, dim)

    def probe():
        scaler = StandardScaler().fit(xtr)
        knn = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(scaler.transform(xtr), ytr)
        return knn.predict(scaler.transform(xte))

    times = []
    for _ in range(reps):
        t = time.perf_counter()
        pred = probe()
        times.append(time.perf_counter() - t)
    pred.astype("<f4").tofile(d / "sklearn_pred.f32")
    print(json.dumps({"sklearn": sklearn.__version__, "seconds_median": statistics.median(times)}))


if __name__ == "__main__":
    main()
