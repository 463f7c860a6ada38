//! Golden tests: the first-party components against values computed by the reference
//! formulas of the published method. `tests/golden/reference.py` computes every constant here
//! (numpy ports of AstroCLIP's code, scikit-learn for the probe); rerun it to regenerate.

#![allow(clippy::excessive_precision)] // constants are printed by the reference script, digit for digit

use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_builtin::knn::{KnnRegressor, r2_score};
use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::{LegacySurveyRgb, to_rgb};
use astroclip_plugin_api::{ContrastiveLoss, ImageView, Observation, Probe, ProbeInput, SpectrumView, Tokenizer};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

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
    let img: Vec<f32> = vec![
        0.0, 0.0, 0.0, 0.01, 0.02, 0.05, 0.2, 0.5, 1.0, //
        -0.01, -0.02, -0.03, 1.5, 2.0, 3.0, 0.05, -0.004, 0.3,
    ];
    let bands: Vec<String> = ["g", "r", "z"].map(String::from).to_vec();
    let want = [
        0.12719310820102692,
        0.12719310820102692,
        0.12719310820102692,
        0.4363974928855896,
        0.3054782450199127,
        0.28054124116897583,
        1.0,
        0.9474689364433289,
        0.6736339926719666,
        0.0,
        0.0,
        0.0,
        1.0,
        1.0,
        1.0,
        1.0,
        0.02793053165078163,
        0.5620168447494507,
    ];
    assert_close(&to_rgb(&img, 2, 3, &bands, 0.03, 20.0), &want, 1e-6, "rgb");
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
    let spec: Vec<f32> = (0..45).map(|i| (i as f32 * 0.7).sin() * 3.0 + i as f32 * 0.1 + 1.0).collect();
    let tok = SpecformerTokens::new(45, 1);
    assert_eq!(tok.output_shape(), vec![4, 22]);
    let mut out = vec![0f32; 88];
    let wl: Vec<f32> = (0..45).map(|i| 3600.0 + i as f32).collect();
    let iv = vec![1f32; 45];
    let view = SpectrumView { object_id: "s", wavelength: &wl, flux: &spec, ivar: &iv };
    tok.tokenize(&Observation::Spectrum(view), &mut out).unwrap();
    let want = [
        0.5987616965340243,
        0.04226048353926548,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.9398821927857419,
        -0.07051513504899025,
        0.4100904172236641,
        0.2960136666747417,
        -0.3389779796984097,
        -1.1761225150890182,
        -1.8015824001022582,
        -1.9010786133944066,
        -1.4077011304477616,
        -0.5333776481960657,
        0.3307993007536254,
        0.7985090935558375,
        0.6698961634754199,
        0.025564411707095593,
        -0.8113313635207146,
        -1.4270705653277158,
        -1.5119460071217568,
        -1.0059240136162784,
        -0.12687922191332449,
        0.7318752245575587,
        0.0,
        0.0,
        0.3307993007536254,
        0.7985090935558375,
        0.6698961634754199,
        0.025564411707095593,
        -0.8113313635207146,
        -1.4270705653277158,
        -1.5119460071217568,
        -1.0059240136162784,
        -0.12687922191332449,
        0.7318752245575587,
        1.186569441045185,
        1.0434685640862764,
        0.3899909631679651,
        -0.4464072917342481,
        -1.0522396226070956,
        -1.122458207638585,
        -0.6039226958884278,
        0.2796070187414379,
        1.1327085574915197,
        1.5742702360303198,
        0.0,
        0.0,
        1.186569441045185,
        1.0434685640862764,
        0.3899909631679651,
        -0.4464072917342481,
        -1.0522396226070956,
        -1.122458207638585,
        -0.6039226958884278,
        0.2796070187414379,
        1.1327085574915197,
        1.5742702360303198,
        1.4167342335761255,
        0.7543075890475692,
        -0.08134453832392194,
        -0.6770866848643123,
        -0.7326164386062785,
        -0.20170193488517574,
        0.6860750064471776,
        1.533294302938178,
        1.961610866680548,
        1.789696435041999,
    ];
    assert_close(&out, &want, 1e-5, "tokens");
    // A flat spectrum has std 0, floored at 0.2.
    let mut flat_out = vec![0f32; 88];
    tok.tokens_from(&[5.0; 45], &mut flat_out);
    assert_close(&flat_out[..2], &[1.5, -0.225], 1e-6, "flat stats");
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
    let device = Device::flex().autodiff();
    let a = vec![1.0f32, 0.5, -0.3, 0.2, 0.1, -1.0, 0.4, 0.0, 0.3, 0.3, 0.9, -0.5];
    let b = vec![0.2f32, -0.4, 0.5, 0.3, 0.6, 0.1, -0.2, 0.4, -0.3, 0.5, 0.1, 0.6];
    let loss_fn = InfoNceConfig::new().init(&device);
    let ta = Tensor::<2>::from_data(TensorData::new(a, [3, 4]), &device).require_grad();
    let tb = Tensor::<2>::from_data(TensorData::new(b, [3, 4]), &device);
    let loss = loss_fn.loss(ta.clone(), tb);
    let value: f32 = loss.clone().into_scalar();
    assert!((value as f64 - 11.625769491767922).abs() < 1e-4, "loss {value}");
    let grads = loss.backward();
    let g = ta.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let want = [
        -2.248583376385227,
        2.3265364923474863,
        -2.7686340686727817,
        1.2736245480482467,
        -2.9057051280645396,
        0.8604852661520113,
        2.877639444065494,
        -0.5809712391169342,
        1.8689163798768504,
        -4.333067564310511,
        -0.09732392491912378,
        -1.6536737756922548,
    ];
    assert_close(&g, &want, 2e-4, "dL/da");
    // Fixed scale: not a trainable parameter.
    assert_eq!(loss_fn.num_params(), 1);
    assert!((loss_fn.logit_scale() - 15.5).abs() < 1e-4);
}

/// StandardScaler + `KNeighborsRegressor(n_neighbors=5, weights="distance")` + `r2_score`
/// from scikit-learn 1.9.1; the first query duplicates a training point (distance 0).
#[test]
fn knn_r2_matches_scikit_learn() {
    let xtr: Vec<f32> = [
        0.1257302165031433,
        -0.660524308681488,
        0.12808452546596527,
        0.10490011423826218,
        -2.678346872329712,
        0.07231900840997696,
        1.3040000200271606,
        4.735404968261719,
        -0.1407470405101776,
        -1.2654215097427368,
        -3.1163723468780518,
        0.008265195414423943,
        -2.32503080368042,
        -1.0939583778381348,
        -0.24918219447135925,
        -0.7322673797607422,
        -2.72129487991333,
        -0.0632600337266922,
        0.4116305410861969,
        5.21256685256958,
        -0.025706931948661804,
        1.3664634227752686,
        -3.3259732723236084,
        0.07030201703310013,
        0.9034701585769653,
        0.4700614809989929,
        -0.14869984984397888,
        -0.9217253923416138,
        -2.2886290550231934,
        0.04403902590274811,
        -1.0096181631088257,
        -1.0458779335021973,
        -0.03184500336647034,
        0.5408455729484558,
        1.0732955932617188,
        0.07107454538345337,
        -0.6538286209106445,
        -0.6480681896209717,
        0.15679509937763214,
        1.4934310913085938,
        -6.295327663421631,
        0.3027847409248352,
        1.3458753824234009,
        3.906557083129883,
        0.05289112776517868,
        -0.31392282247543335,
        7.290103435516357,
        0.39205166697502136,
        1.8016349077224731,
        6.575518608093262,
        0.07147607952356339,
        -1.2083185911178589,
        -0.02227066643536091,
        0.13129498064517975,
        -1.2883614301681519,
        1.9756102561950684,
        0.08597274124622345,
        0.6960427165031433,
        -5.920589923858643,
        -0.13234052062034607,
        -0.4364352524280548,
        -5.8490095138549805,
        0.3478735685348511,
        -0.49591073393821716,
        1.644848108291626,
        -0.05171450972557068,
        1.5834728479385376,
        6.601804733276367,
        0.12667052447795868,
        -2.20350980758667,
        0.2601448595523834,
        0.13673724234104156,
        1.0039615631103516,
        -3.0895352363586426,
        0.36440226435661316,
        -1.3204309940338135,
        -3.3076400756835938,
        0.1870099902153015,
        0.04905461519956589,
        10.011962890625,
        0.03770383819937706,
        -0.633194088935852,
        -1.8878175020217896,
        -0.21822921931743622,
        -1.2776801586151123,
        3.152057409286499,
        0.11623316258192062,
        1.2945587635040283,
        -3.77302885055542,
        0.33782148361206055,
        -0.2873876988887787,
        7.87204122543335,
        -0.08655717223882675,
        -0.7354832887649536,
        1.2489268779754639,
        0.2062906175851822,
        0.16100957989692688,
        -2.9276440143585205,
        -0.2682439386844635,
        -1.4015202522277832,
        2.513414144515991,
        0.1979425996541977,
        -0.16429458558559418,
        -5.371824264526367,
        0.17460842430591583,
        -1.2803939580917358,
        -3.565340518951416,
        0.12420357018709183,
        -2.250141143798828,
        1.9318479299545288,
        -0.116328164935112,
        0.10927969962358475,
        -0.3785076439380646,
        0.04042287915945053,
        0.6941719651222229,
        -3.791848659515381,
        0.2841964066028595,
        0.7260937690734863,
        4.218663215637207,
        0.23297280073165894,
    ]
    .to_vec();
    let ytr: Vec<f32> = [
        0.9187747836112976,
        0.48613619804382324,
        0.20079447329044342,
        -2.4734086990356445,
        -8.03033447265625,
        -2.505167245864868,
        -0.31130552291870117,
        3.6192848682403564,
        0.7728829979896545,
        -2.1562933921813965,
        -3.2030510902404785,
        2.6712145805358887,
        -0.34335365891456604,
        6.002567768096924,
        2.528150796890259,
        4.13785982131958,
        4.606217861175537,
        -1.1259561777114868,
        -0.7978198528289795,
        0.423382431268692,
        3.0265281200408936,
        -0.5117071270942688,
        4.746906757354736,
        -2.7824268341064453,
        5.599912166595459,
        -0.6054764986038208,
        -0.07887207716703415,
        -4.398848533630371,
        -1.4034932851791382,
        6.5576372146606445,
        -0.44051018357276917,
        1.5405852794647217,
        -2.572740316390991,
        -0.23594248294830322,
        2.2078335285186768,
        -0.9075725078582764,
        -4.728038311004639,
        0.2532540261745453,
        4.835698127746582,
        2.9013421535491943,
    ]
    .to_vec();
    let xte: Vec<f32> = [
        -1.2654215097427368,
        -3.1163723468780518,
        0.008265195414423943,
        -1.4267739057540894,
        -0.6752254962921143,
        -0.15390293300151825,
        -1.4227417707443237,
        1.2922639846801758,
        -0.11370988935232162,
        -1.0298044681549072,
        -5.215005397796631,
        0.05368341505527496,
        0.35867196321487427,
        6.612287521362305,
        -0.002782933646813035,
        1.0418397188186646,
        7.011323928833008,
        0.23003312945365906,
        -2.3653039932250977,
        6.143418788909912,
        0.06792400032281876,
        0.42377135157585144,
        1.8561370372772217,
        0.07655142992734909,
    ]
    .to_vec();
    let yte: Vec<f32> = [
        -2.4734086990356445,
        -5.017650127410889,
        -3.021122455596924,
        -0.6464495062828064,
        1.0127079486846924,
        5.049492359161377,
        -4.190680027008057,
        2.572622776031494,
    ]
    .to_vec();
    let mut knn = KnnRegressor::new(5, true);
    knn.fit(ProbeInput::new(&xtr, 40, 3).unwrap(), &ytr).unwrap();
    let pred = knn.predict(ProbeInput::new(&xte, 8, 3).unwrap()).unwrap();
    assert_close(
        &pred,
        &[
            -2.4734086507538207,
            -4.5057062216649575,
            -2.53905772333143,
            -1.746982952498453,
            0.13349784858369493,
            3.7838830216612536,
            -1.9401355908985956,
            1.7006307949999606,
        ],
        1e-5,
        "pred",
    );
    assert!((r2_score(&yte, &pred) - 0.884692552467493).abs() < 1e-5);
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
