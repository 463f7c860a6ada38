//! Golden tests: the first-party components against values computed by the reference
//! formulas of the published method. `tests/golden/reference.py` (numpy ports of AstroCLIP's
//! code, scikit-learn for the probe) writes every input and expected value into
//! `tests/golden/reference.json`, which these tests read; `scripts/test.sh` reruns the script
//! and fails when its values differ from the committed file (`--write` regenerates it).

use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_builtin::knn::{KnnRegressor, r2_score};
use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::{LegacySurveyRgb, to_rgb};
use astroclip_plugin_api::{ContrastiveLoss, ImageView, Observation, Probe, ProbeInput, SpectrumView, Tokenizer};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// The reference values, one block per test.
fn reference(block: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_str(include_str!("../../../tests/golden/reference.json"))
        .expect("tests/golden/reference.json is JSON (regenerate: python3 tests/golden/reference.py --write)");
    all.get(block).unwrap_or_else(|| panic!("reference.json has no block {block:?}")).clone()
}

fn f64s(v: &serde_json::Value, key: &str) -> Vec<f64> {
    let a = v[key].as_array().unwrap_or_else(|| panic!("reference value {key:?} is not a list"));
    a.iter().map(|x| x.as_f64().unwrap_or_else(|| panic!("{key}: {x} is not a number"))).collect()
}

fn f32s(v: &serde_json::Value, key: &str) -> Vec<f32> {
    f64s(v, key).into_iter().map(|x| x as f32).collect()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("reference value {key:?} is not a number"))
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(err <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, reference {w}");
    }
}

/// AstroCLIP `ToRGB` (g,r,z; scales 6.0, 3.4, 2.2; m = 0.03; Q = 20) on a 2×3 image covering
/// zero flux, negative flux (clipped to 0), faint, bright (saturating) pixels.
#[test]
fn to_rgb_matches_astroclip() {
    let r = reference("to_rgb");
    let img = f32s(&r, "input_hwc");
    let (h, w) = (num(&r, "height") as usize, num(&r, "width") as usize);
    let bands: Vec<String> = ["g", "r", "z"].map(String::from).to_vec();
    assert_close(&to_rgb(&img, h, w, &bands, 0.03, 20.0), &f64s(&r, "rgb_hwc"), 1e-6, "rgb");
}

/// The tokenizer crops the centre and returns CHW (z, r, g): on a 4×4 image with crop 2 it
/// must equal ToRGB of the central 2×2 pixels, transposed.
#[test]
fn to_rgb_tokenizer_crops_centre_into_chw() {
    let img: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
    let bands: Vec<String> = ["g", "r", "z"].map(String::from).to_vec();
    let tok = LegacySurveyRgb::new(2, 1);
    let mut out = vec![0f32; 12];
    let view = ImageView { object_id: "t", height: 4, width: 4, bands: &bands, flux: &img, pixel_scale: 0.262 };
    tok.tokenize(&Observation::Image(view), &mut out).unwrap();
    let mut centre = Vec::new();
    for y in 1..3 {
        centre.extend_from_slice(&img[(y * 4 + 1) * 3..(y * 4 + 3) * 3]);
    }
    let rgb = to_rgb(&centre, 2, 2, &bands, 0.03, 20.0);
    for c in 0..3 {
        for p in 0..4 {
            assert_eq!(out[c * 4 + p], rgb[p * 3 + c]);
        }
    }
}

/// AstroCLIP `SpecFormer.preprocess` on 45 bins: unbiased std, 20-bin sections with overlap
/// 10 (starts 0, 10, 20; the short section at 30 dropped), 2 leading zeros per token and the
/// stats token ((mean − 2)/2, (std − 2)/8).
#[test]
fn specformer_tokens_match_astroclip() {
    let r = reference("specformer");
    let spec = f32s(&r, "spectrum");
    assert_eq!(spec.len(), 45);
    let tok = SpecformerTokens::new(45, 1);
    let shape: Vec<usize> = f64s(&r, "shape").into_iter().map(|x| x as usize).collect();
    assert_eq!(tok.output_shape(), shape);
    let mut out = vec![0f32; shape.iter().product()];
    let wl: Vec<f32> = (0..45).map(|i| 3600.0 + i as f32).collect();
    let iv = vec![1f32; 45];
    let view = SpectrumView { object_id: "s", wavelength: &wl, flux: &spec, ivar: &iv };
    tok.tokenize(&Observation::Spectrum(view), &mut out).unwrap();
    assert_close(&out, &f64s(&r, "tokens"), 1e-5, "tokens");
    // A flat spectrum has std 0, floored at 0.2.
    let mut flat_out = vec![0f32; out.len()];
    tok.tokens_from(&[num(&r, "flat_value") as f32; 45], &mut flat_out);
    assert_close(&flat_out[..2], &f64s(&r, "flat_stats"), 1e-6, "flat stats");
}

#[test]
fn specformer_tokens_reject_nan_naming_the_object() {
    let mut spec = vec![1f32; 45];
    spec[7] = f32::NAN;
    let wl: Vec<f32> = (0..45).map(|i| 3600.0 + i as f32).collect();
    let view = SpectrumView { object_id: "desi-39627", wavelength: &wl, flux: &spec, ivar: &spec };
    let err = SpecformerTokens::new(45, 1).tokenize(&Observation::Spectrum(view), &mut [0.0; 88]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("desi-39627") && msg.contains("bin 7"), "{msg}");
}

/// AstroCLIP `CLIPLoss` with logit scale 15.5 on 3 pairs of 4-d embeddings: value, and the
/// gradient with respect to the image embeddings against central finite differences (h = 1e-6,
/// float64) of the reference loss.
#[test]
fn infonce_value_and_gradient() {
    let r = reference("infonce");
    let device = Device::flex().autodiff();
    let (n, d) = (num(&r, "n") as usize, num(&r, "d") as usize);
    let loss_fn = InfoNceConfig::new().init(&device);
    assert!((loss_fn.logit_scale() as f64 - num(&r, "logit_scale")).abs() < 1e-4);
    let ta = Tensor::<2>::from_data(TensorData::new(f32s(&r, "a"), [n, d]), &device).require_grad();
    let tb = Tensor::<2>::from_data(TensorData::new(f32s(&r, "b"), [n, d]), &device);
    let loss = loss_fn.loss(ta.clone(), tb);
    let value: f32 = loss.clone().into_scalar();
    assert!((value as f64 - num(&r, "loss")).abs() < 1e-4, "loss {value}");
    let grads = loss.backward();
    let g = ta.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
    assert_close(&g, &f64s(&r, "grad_a"), 2e-4, "dL/da");
    // Fixed scale: not a trainable parameter.
    assert_eq!(loss_fn.num_params(), 1);
    assert!((loss_fn.logit_scale() - 15.5).abs() < 1e-4);
}

/// StandardScaler + `KNeighborsRegressor(n_neighbors=5, weights="distance")` + `r2_score`
/// from scikit-learn (its version is recorded in reference.json); the first query duplicates a
/// training point (distance 0).
#[test]
fn knn_r2_matches_scikit_learn() {
    let r = reference("knn");
    let (k, d) = (num(&r, "k") as usize, num(&r, "d") as usize);
    let (xtr, ytr, xte, yte) = (f32s(&r, "xtr"), f32s(&r, "ytr"), f32s(&r, "xte"), f32s(&r, "yte"));
    let mut knn = KnnRegressor::new(k, true);
    knn.fit(ProbeInput::new(&xtr, ytr.len(), d).unwrap(), &ytr).unwrap();
    let pred = knn.predict(ProbeInput::new(&xte, yte.len(), d).unwrap()).unwrap();
    assert_close(&pred, &f64s(&r, "pred"), 1e-5, "pred");
    assert!((r2_score(&yte, &pred) - num(&r, "r2")).abs() < 1e-5);
}

/// The probe finds neighbours with one matrix product per block of 256 queries and re-measures
/// the nearest k + 16 exactly; this must equal a plain brute-force search in f64 (the
/// definition scikit-learn implements), across block boundaries, with exact duplicates of
/// training rows among the queries (distance 0: only those count) and with standardisation.
#[test]
fn knn_blocked_search_equals_brute_force() {
    let (n, d, m, k) = (700usize, 24usize, 600usize, 64usize);
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut r = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let xtr: Vec<f32> = (0..n * d).map(|i| (r() * (1.0 + (i % d) as f64) + 3.0) as f32).collect();
    let ytr: Vec<f32> = (0..n).map(|_| r() as f32).collect();
    let mut xte: Vec<f32> = (0..m * d).map(|i| (r() * (1.0 + (i % d) as f64) + 3.0) as f32).collect();
    // Queries 10 and 300 (second block) are copies of training rows 5 and 6.
    xte[10 * d..11 * d].copy_from_slice(&xtr[5 * d..6 * d]);
    xte[300 * d..301 * d].copy_from_slice(&xtr[6 * d..7 * d]);
    let mut knn = KnnRegressor::new(k, true);
    knn.fit(ProbeInput::new(&xtr, n, d).unwrap(), &ytr).unwrap();
    let got = knn.predict(ProbeInput::new(&xte, m, d).unwrap()).unwrap();

    // Reference: population-std standardisation, f64 distances, full sort.
    let mean: Vec<f64> = (0..d).map(|c| (0..n).map(|j| xtr[j * d + c] as f64).sum::<f64>() / n as f64).collect();
    let sd: Vec<f64> = (0..d)
        .map(|c| ((0..n).map(|j| (xtr[j * d + c] as f64 - mean[c]).powi(2)).sum::<f64>() / n as f64).sqrt())
        .collect();
    let z = |v: &[f32], i: usize, c: usize| ((v[i * d + c] as f64 - mean[c]) / sd[c]) as f32 as f64;
    for i in 0..m {
        let mut dist: Vec<(f64, usize)> =
            (0..n).map(|j| ((0..d).map(|c| (z(&xte, i, c) - z(&xtr, j, c)).powi(2)).sum::<f64>(), j)).collect();
        dist.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want = if dist[0].0 == 0.0 {
            let zero: Vec<_> = dist.iter().take_while(|p| p.0 == 0.0).collect();
            zero.iter().map(|p| ytr[p.1] as f64).sum::<f64>() / zero.len() as f64
        } else {
            let (mut num, mut den) = (0.0, 0.0);
            for &(d2, j) in &dist[..k] {
                num += ytr[j] as f64 / d2.sqrt();
                den += 1.0 / d2.sqrt();
            }
            num / den
        };
        assert!((got[i] as f64 - want).abs() < 1e-5, "query {i}: {} vs brute force {want}", got[i]);
    }
    assert_eq!(got[10], ytr[5]);
    assert_eq!(got[300], ytr[6]);
}

/// Effective rank, uniformity, alignment and PCA variance fractions of a fixed pair of
/// embedding sets equal NumPy's SVD, Wang & Isola's formulas and scikit-learn's
/// `PCA.explained_variance_ratio_`; the eigenvalue solver equals `numpy.linalg.eigvalsh`.
#[test]
fn embedding_diagnostics_match_numpy() {
    use astroclip_builtin::diagnostics::{alignment, effective_rank, pca_variance, symmetric_eigenvalues, uniformity};
    let r = reference("diagnostics");
    let (n, d) = (num(&r, "n") as usize, num(&r, "d") as usize);
    let (img, spec) = (f32s(&r, "image"), f32s(&r, "spectrum"));
    let close = |got: f64, key: &str| {
        let want = num(&r, key);
        assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "{key}: got {got}, reference {want}");
    };
    close(effective_rank(&img, n, d).unwrap(), "effective_rank_image");
    close(effective_rank(&spec, n, d).unwrap(), "effective_rank_spectrum");
    close(effective_rank(&img[..5 * d], 5, d).unwrap(), "effective_rank_wide");
    close(uniformity(&img, n, d).unwrap(), "uniformity_image");
    close(uniformity(&spec, n, d).unwrap(), "uniformity_spectrum");
    close(alignment(&img, &spec, n, d).unwrap(), "alignment");
    let pca = pca_variance(&img, n, d, 10).unwrap();
    let want = f64s(&r, "pca_variance_image");
    assert_eq!(pca.len(), want.len());
    for (i, (g, w)) in pca.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-9, "pca_variance[{i}]: got {g}, reference {w}");
    }
    let sym = f64s(&r, "symmetric");
    let mut ev = symmetric_eigenvalues(sym, 20).unwrap();
    ev.sort_by(f64::total_cmp);
    for (i, (g, w)) in ev.iter().zip(&f64s(&r, "eigenvalues")).enumerate() {
        assert!((g - w).abs() <= 1e-10 * (1.0 + w.abs()), "eigenvalue {i}: got {g}, reference {w}");
    }
}
