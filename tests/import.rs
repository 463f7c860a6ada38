//! Import of AstroCLIP's checkpoints, checked against a PyTorch twin by values.
//!
//! `bench/astroclip_twin.py` builds AstroCLIP's modules with AstroCLIP's and DINOv2's exact
//! parameter names, random weights (norms and layer scales included), saves the three published
//! checkpoint kinds in their layouts (Lightning `state_dict` + `hyper_parameters` holding
//! pickled modules; DINOv2's `teacher` with chunked blocks) and PyTorch's outputs for a batch
//! of raw 152-px g,r,z cutouts and 7781-bin spectra. Here each file is imported and our
//! tokenizers + modules must give the same outputs to 1e-4 relative: the AstroCLIP embeddings
//! (collator, ToRGB, swapped axes, crop 144; SpecFormer preprocessing), the SpecFormer tokens
//! and reconstructions, the AstroDINO CLS token at 144 px and at 96 px (interpolated
//! positions) and its patch tokens.
//!
//! The twin needs torch: the Python named by `ASTROCLIP_BENCH_PYTHON` (`.venv-torch`, set by
//! `scripts/test.sh`, which also sets `ASTROCLIP_REQUIRE_TORCH=1` so that a missing torch fails).
//! `tch_backend_*` repeats the check on libtorch.

use std::path::{Path, PathBuf};

use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::LegacySurveyRgb;
use astroclip_core::import::{CheckpointKind, ImportOptions, ImportedModel, TwinIo, import};
use astroclip_plugin_api::ModalityEncoder;
use burn::tensor::{Device, Tensor};

const TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Writes the twin's files into a fresh directory; `None` (reported) when no torch is available
/// and none is required.
fn twin() -> Option<tempfile::TempDir> {
    let python = std::env::var("ASTROCLIP_BENCH_PYTHON").ok();
    let required = std::env::var("ASTROCLIP_REQUIRE_TORCH").is_ok();
    let Some(python) = python else {
        assert!(!required, "ASTROCLIP_REQUIRE_TORCH is set but ASTROCLIP_BENCH_PYTHON is not");
        eprintln!("NOT RUN: the import twin needs ASTROCLIP_BENCH_PYTHON with torch (scripts/setup-bench.sh)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&python)
        .arg(root().join("bench/astroclip_twin.py"))
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(!required && err.contains("No module named 'torch'"), "the twin failed: {err}");
        eprintln!("NOT RUN: {python} has no torch (scripts/setup-bench.sh)");
        return None;
    }
    Some(dir)
}

/// Largest |ours − theirs| over the largest |theirs| (shapes must agree).
fn rel_diff<const D: usize>(what: &str, ours: Tensor<D>, io: &TwinIo, key: &str) -> f64 {
    let (shape, _) = io.get(key).unwrap();
    assert_eq!(&ours.dims()[..], &shape[..], "{what}: shape");
    let rel = io.rel_diff(key, &ours.into_data().try_to_vec::<f32>().unwrap()).unwrap();
    eprintln!("{what}: max relative difference {rel:.2e}");
    rel
}

fn imports_match_pytorch(device: &Device) {
    let Some(dir) = twin() else { return };
    let io = TwinIo::read(&dir.path().join("twin_io.pt")).unwrap();
    let images = io.tokens(&LegacySurveyRgb::new(144, 1), device).unwrap();
    let spectra = io.tokens(&SpecformerTokens::new(7781, 1), device).unwrap();
    let opts = ImportOptions::default();
    let mut diffs = Vec::new();

    let full = import(&dir.path().join("astroclip.ckpt"), &opts, device).unwrap();
    assert_eq!(full.kind, CheckpointKind::AstroClip);
    assert!(
        full.report.skipped.iter().all(|(k, _)| k.starts_with("spectrum_encoder.backbone.head.")),
        "{:?}",
        full.report
    );
    let ImportedModel::AstroClip(model) = full.model else { panic!("not a whole model") };
    diffs.push(rel_diff("astroclip image embedding", model.image.encode(images.clone()), &io, "astroclip_image"));
    diffs.push(rel_diff(
        "astroclip spectrum embedding",
        model.spectrum.encode(spectra.clone()),
        &io,
        "astroclip_spectrum",
    ));
    let cfg = serde_json::to_value(&full.config).unwrap();
    assert_eq!(cfg["image"]["encoder"]["depth"], 4, "{cfg}");
    assert_eq!(cfg["image"]["encoder"]["n_heads"], 2, "{cfg}");
    assert_eq!(cfg["spectrum"]["encoder"]["n_heads"], 2, "{cfg}");
    assert_eq!(cfg["model"]["embed_dim"], 128, "{cfg}");

    let spec = import(&dir.path().join("specformer.ckpt"), &opts, device).unwrap();
    assert_eq!(spec.kind, CheckpointKind::SpecFormer);
    assert!(spec.report.skipped.is_empty(), "{:?}", spec.report.skipped);
    let ImportedModel::SpecFormer(masked) = spec.model else { panic!("not a SpecFormer") };
    let [n, _] = spectra.dims();
    let (t, w) = masked.backbone.input_shape();
    let tokens = masked.backbone.tokens(spectra.clone().reshape([n, t, w]));
    diffs.push(rel_diff("specformer embedding", tokens.clone(), &io, "specformer_embedding"));
    diffs.push(rel_diff("specformer reconstructions", masked.recon.forward(tokens), &io, "specformer_reconstructions"));
    assert_eq!(
        serde_json::to_value(&spec.config).unwrap()["spectrum"]["encoder"]["n_heads"],
        4,
        "from hyper_parameters"
    );

    let dino = import(&dir.path().join("astrodino.ckpt"), &opts, device).unwrap();
    assert_eq!(dino.kind, CheckpointKind::AstroDino);
    assert!(dino.report.skipped.iter().all(|(k, _)| k.starts_with("dino_head.")) && !dino.report.skipped.is_empty());
    let ImportedModel::AstroDino(vit) = dino.model else { panic!("not a ViT") };
    let x = vit.oriented(images.clone());
    diffs.push(rel_diff("astrodino CLS token", vit.backbone.cls_token(x.clone()), &io, "astrodino_cls"));
    diffs.push(rel_diff("astrodino patch tokens", vit.backbone.patch_tokens(x), &io, "astrodino_patch_tokens"));
    let small = io.tokens(&LegacySurveyRgb::new(96, 1), device).unwrap();
    let [n, _] = small.dims();
    let x96 = small.reshape([n, 3, 96, 96]).swap_dims(2, 3);
    diffs.push(rel_diff("astrodino CLS token at 96 px", vit.backbone.cls_token(x96), &io, "astrodino_cls_96"));

    for d in &diffs {
        assert!(*d < TOLERANCE, "a difference above {TOLERANCE}: {diffs:?}");
    }
}

#[test]
fn imported_checkpoints_match_pytorch_twin() {
    imports_match_pytorch(&Device::flex());
}

/// Damaged checkpoints (bytes flipped anywhere, in the pickle, or the file cut short) are
/// errors naming the file, never panics or silently loaded models. Fixed seed, 90 cases.
#[test]
fn damaged_checkpoints_are_refused_without_panics() {
    let Some(dir) = twin() else { return };
    let src = std::fs::read(dir.path().join("specformer.ckpt")).unwrap();
    let pickle = src.windows(8).position(|w| w == b"data.pkl").unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for case in 0..90 {
        let mut b = src.clone();
        match case % 3 {
            0 => (0..1 + next(20)).for_each(|_| {
                let i = next(b.len());
                b[i] ^= 1 + next(255) as u8;
            }),
            1 => b.truncate(next(b.len())),
            _ => (0..1 + next(8)).for_each(|_| {
                let i = (pickle + next(2000)).min(b.len() - 1);
                b[i] ^= 1 + next(255) as u8;
            }),
        }
        let path = dir.path().join(format!("damaged-{case}.ckpt"));
        std::fs::write(&path, &b).unwrap();
        match import(&path, &ImportOptions::default(), &Device::flex()) {
            Err(e) => assert!(e.to_string().contains(&format!("damaged-{case}.ckpt")), "case {case}: {e}"),
            Ok(_) => panic!("case {case}: a damaged checkpoint was imported"),
        }
    }
}

#[cfg(feature = "tch")]
#[test]
fn tch_backend_imported_checkpoints_match_pytorch_twin() {
    imports_match_pytorch(&Device::libtorch());
}
