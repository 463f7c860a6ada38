"""Reference values for astroclip's golden tests, computed with the published formulas.

    python3 tests/golden/reference.py          # recompute and compare with reference.json
    python3 tests/golden/reference.py --write  # regenerate reference.json

Needs numpy and scikit-learn. Every value (inputs and expected outputs) goes into
tests/golden/reference.json, which the Rust test named beside each block reads
(`include_str!`), so no number is pasted by hand. `scripts/test.sh` runs the check in CI:
a reference that no longer gives the committed values fails the test command.
"""
import json
import math
import pathlib
import sys

import numpy as np

OUT = pathlib.Path(__file__).with_name("reference.json")
ref = {}


# --- ToRGB: AstroCLIP astroclip/astrodino/data/augmentations.py::ToRGB (verbatim logic) -----
# -> plugins/builtin/tests/golden.rs::to_rgb_matches_astroclip
def to_rgb(imgs, bands=("g", "r", "z"), m=0.03, Q=20):
    rgb_scales = {"u": (2, 1.5), "g": (2, 6.0), "r": (1, 3.4), "i": (0, 1.0), "z": (0, 2.2)}
    if imgs.shape[0] != len(bands):
        imgs = np.transpose(imgs, (2, 0, 1))
    I = 0
    for img, band in zip(imgs, bands):
        plane, scale = rgb_scales[band]
        img = np.maximum(0, img * scale + m)
        I = I + img
    I /= len(bands)
    fI = np.arcsinh(Q * I) / np.sqrt(Q)
    I += (I == 0.0) * 1e-6
    H, W = I.shape
    rgb = np.zeros((H, W, 3), np.float32)
    for img, band in zip(imgs, bands):
        plane, scale = rgb_scales[band]
        rgb[:, :, plane] = (img * scale + m) * fI / I
    return np.clip(rgb, 0, 1)


img = np.array(
    [[[0.0, 0.0, 0.0], [0.01, 0.02, 0.05], [0.2, 0.5, 1.0]],
     [[-0.01, -0.02, -0.03], [1.5, 2.0, 3.0], [0.05, -0.004, 0.3]]],
    dtype=np.float32,
)  # (H=2, W=3, bands g,r,z)
ref["to_rgb"] = {"input_hwc": img.ravel().tolist(), "height": 2, "width": 3,
                 "rgb_hwc": to_rgb(img.copy()).ravel().tolist()}


# --- SpecFormer preprocess: astroclip/models/specformer.py (torch ops in numpy) ---------------
# -> plugins/builtin/tests/golden.rs::specformer_tokens_match_astroclip
def specformer_preprocess(x, section=20, overlap=10):
    x = x[None, :, None].astype(np.float64)  # (B=1, L, 1)
    std = np.clip(x.std(1, keepdims=True, ddof=1), 0.2, None)  # torch.std is unbiased
    mean = x.mean(1, keepdims=True)
    x = (x - mean) / std
    starts = np.arange(0, x.shape[1] - overlap, section - overlap)
    sections = [x[:, s:s + section].transpose(0, 2, 1) for s in starts]
    if sections[-1].shape[-1] < section:
        sections.pop(-1)
    x = np.concatenate(sections, 1)
    x = np.pad(x, ((0, 0), (1, 0), (2, 0)))
    x[:, 0, 0] = (mean.squeeze() - 2) / 2
    x[:, 0, 1] = (std.squeeze() - 2) / 8
    return x[0]


spec = (np.sin(np.arange(45) * 0.7) * 3.0 + np.arange(45) * 0.1 + 1.0).astype(np.float32)
tok = specformer_preprocess(spec)
flat = np.full(45, 5.0, np.float32)
ref["specformer"] = {"spectrum": spec.tolist(), "shape": list(tok.shape), "tokens": tok.ravel().tolist(),
                     "flat_value": 5.0, "flat_stats": specformer_preprocess(flat)[0, :2].tolist()}


# --- InfoNCE: astroclip/models/astroclip.py::CLIPLoss, float64 ------------------------------
# -> plugins/builtin/tests/golden.rs::infonce_value_and_gradient
def clip_loss(a, b, scale=15.5, eps=1e-3):
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), eps)
    L = scale * an @ bn.T
    def ce(logits):
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        return np.mean(lse - np.diag(logits))
    return (ce(L) + ce(L.T)) / 2


a = np.array([[1.0, 0.5, -0.3, 0.2], [0.1, -1.0, 0.4, 0.0], [0.3, 0.3, 0.9, -0.5]])
b = np.array([[0.2, -0.4, 0.5, 0.3], [0.6, 0.1, -0.2, 0.4], [-0.3, 0.5, 0.1, 0.6]])
loss = clip_loss(a, b)
h = 1e-6
grad = np.zeros_like(a)
for i in range(a.shape[0]):
    for j in range(a.shape[1]):
        ap, am = a.copy(), a.copy()
        ap[i, j] += h
        am[i, j] -= h
        grad[i, j] = (clip_loss(ap, b) - clip_loss(am, b)) / (2 * h)
ref["infonce"] = {"a": a.ravel().tolist(), "b": b.ravel().tolist(), "n": 3, "d": 4, "logit_scale": 15.5,
                  "loss": loss, "grad_a": grad.ravel().tolist()}


# --- k-NN R²: scikit-learn StandardScaler + KNeighborsRegressor(weights="distance") ----------
# -> plugins/builtin/tests/golden.rs::knn_r2_matches_scikit_learn
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import r2_score

rng = np.random.default_rng(0)
Xtr = rng.normal(size=(40, 3)) * np.array([1.0, 5.0, 0.2])
ytr = Xtr[:, 0] * 2 + np.sin(Xtr[:, 1]) + 10 * Xtr[:, 2]
Xte = rng.normal(size=(8, 3)) * np.array([1.0, 5.0, 0.2])
Xte[0] = Xtr[3]  # an exact match: distance 0
yte = Xte[:, 0] * 2 + np.sin(Xte[:, 1]) + 10 * Xte[:, 2]
sc = StandardScaler().fit(Xtr)
knn = KNeighborsRegressor(n_neighbors=5, weights="distance").fit(sc.transform(Xtr), ytr)
pred = knn.predict(sc.transform(Xte))
import sklearn

ref["knn"] = {"sklearn": sklearn.__version__, "k": 5, "d": 3,
              "xtr": Xtr.astype(np.float32).ravel().tolist(), "ytr": ytr.astype(np.float32).tolist(),
              "xte": Xte.astype(np.float32).ravel().tolist(), "yte": yte.astype(np.float32).tolist(),
              "pred": pred.tolist(), "r2": float(r2_score(yte, pred))}


# --- Embedding diagnostics: Roy & Vetterli effective rank (RankMe's formula without its 1e-7),
# Wang & Isola align_loss / uniform_loss (alpha 2, t 2), scikit-learn PCA variance ratios,
# NumPy eigvalsh -> plugins/builtin/tests/golden.rs::embedding_diagnostics_match_numpy
from sklearn.decomposition import PCA

rng = np.random.default_rng(7)
n, d = 60, 12
lat = rng.normal(size=(n, 3))
img = lat @ rng.normal(size=(3, d)) + 0.3 * rng.normal(size=(n, d))
spec = img + 0.5 * rng.normal(size=(n, d))
img = (img / np.linalg.norm(img, axis=1, keepdims=True)).astype(np.float32)
spec = (spec / np.linalg.norm(spec, axis=1, keepdims=True)).astype(np.float32)
x64, y64 = img.astype(np.float64), spec.astype(np.float64)


def effective_rank(x):
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def uniformity(x, t=2.0):
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(x), k=1)
    return float(np.log(np.exp(-t * sq[iu]).mean()))


sym = rng.normal(size=(20, 20))
sym = sym + sym.T
wide = img[:5]  # fewer rows than columns: the rank comes from the row Gram matrix
ref["diagnostics"] = {
    "n": n, "d": d, "image": img.ravel().tolist(), "spectrum": spec.ravel().tolist(),
    "effective_rank_image": effective_rank(x64), "effective_rank_spectrum": effective_rank(y64),
    "effective_rank_wide": effective_rank(wide.astype(np.float64)),
    "uniformity_image": uniformity(x64), "uniformity_spectrum": uniformity(y64),
    "alignment": float((np.linalg.norm(x64 - y64, axis=1) ** 2).mean()),
    "pca_variance_image": PCA().fit(x64).explained_variance_ratio_[:10].tolist(),
    "symmetric": sym.ravel().tolist(), "eigenvalues": np.linalg.eigvalsh(sym).tolist(),
}


# --- write or compare ---------------------------------------------------------------------
def differences(want, got, path="$"):
    """Where two reference trees differ: structure exactly, numbers to 1e-12 relative."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}.{k}: missing" for k in want.keys() - got.keys()]
        out += [f"{path}.{k}: not in the committed file" for k in got.keys() - want.keys()]
        for k in want.keys() & got.keys():
            out += differences(want[k], got[k], f"{path}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: length {len(got)}, committed {len(want)}"]
        return [d for i, (w, g) in enumerate(zip(want, got)) for d in differences(w, g, f"{path}[{i}]")]
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        ok = math.isclose(want, got, rel_tol=1e-12, abs_tol=1e-15)
        return [] if ok else [f"{path}: computed {got!r}, committed {want!r}"]
    return [] if want == got else [f"{path}: computed {got!r}, committed {want!r}"]


if "--write" in sys.argv[1:]:
    OUT.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {OUT}")
else:
    committed = json.loads(OUT.read_text())
    # The scikit-learn version is recorded, not compared: the values must hold across versions.
    committed["knn"].pop("sklearn", None), ref["knn"].pop("sklearn", None)
    diff = differences(committed, ref)
    if diff:
        print(f"{OUT} is not what the reference formulas give ({len(diff)} values):", file=sys.stderr)
        print("\n".join(diff[:20]), file=sys.stderr)
        print("fix the reference or the committed values: python3 tests/golden/reference.py --write", file=sys.stderr)
        sys.exit(1)
    n = sum(len(v) if isinstance(v, list) else 1 for block in ref.values() for v in block.values())
    print(f"golden references: {len(ref)} blocks, {n} values equal to {OUT.name}")
