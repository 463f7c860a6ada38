//! Import of AstroCLIP's published checkpoints (Parker, Lanusse et al. 2024; weights on the
//! Hugging Face hub as `polymathic-ai/astroclip`, `polymathic-ai/specformer`,
//! `polymathic-ai/astrodino`) into the platform's own modules, read with burn-store's PyTorch
//! reader (no Python, no unpickling of arbitrary classes: a Lightning checkpoint's
//! `hyper_parameters` may hold pickled `nn.Module`s, which the reader leaves opaque).
//!
//! | kind | file | layout | becomes |
//! |---|---|---|---|
//! | [`CheckpointKind::AstroClip`] | `astroclip.ckpt` | Lightning: `state_dict` with `image_encoder.{backbone, cross_attention, mlp}.*`, `spectrum_encoder.{backbone, cross_attention, mlp}.*` | a whole model: `vit` image encoder, `specformer` spectrum encoder |
//! | [`CheckpointKind::SpecFormer`] | `specformer.ckpt` | Lightning: `hyper_parameters` (`embed_dim`, `num_layers`, `num_heads`, `max_len`, …) + `state_dict` with `data_embed`, `position_embed`, `blocks.<i>.*`, `final_layernorm`, `head` | a masked-modelling SpecFormer (backbone + reconstruction head) |
//! | [`CheckpointKind::AstroDino`] | `astrodino.ckpt` | DINOv2 training checkpoint: `teacher` with `backbone.*` (blocks in `block_chunks`: `blocks.<chunk>.<i>.*`), `dino_head.*` | a `vit` backbone |
//!
//! Every tensor of the file is accounted for: it is loaded into a named parameter, or it is one
//! of the training-only tensors listed by [`skip_reason`] (DINO/iBOT heads, SpecFormer's
//! reconstruction head inside the full model). A key the mapping does not know, a parameter the
//! file lacks, and a shape that differs are errors that list the keys.
//!
//! Hyper-parameters come from the tensor shapes (widths, depths, patch size, grid, embedding
//! width), from `hyper_parameters` where they are plain values (`specformer.ckpt`), and
//! otherwise from AstroCLIP's published choices, which [`ImportOptions`] can override: head
//! counts are not visible in shapes (DINOv2's ViTs use 64-wide heads, AstroCLIP's SpecFormer
//! 128-wide ones, its cross-attention heads `n_head = 4`).

use std::collections::BTreeMap;
use std::path::Path;

use astroclip_builtin::specformer::SpecFormerSettings;
use astroclip_builtin::vit::{VitEncoder, VitSettings};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use burn_store::pytorch_reader::{PickleValue, PytorchReader};
use burn_store::{ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, bridge, burn_pack::Tensor as PackTensor};

use crate::components::{self, Model};
use crate::config::{ExperimentConfig, ObjectiveKind};
use crate::encoders::EncoderChoice;
use crate::objectives::masked::MaskedSpecFormer;

/// AstroCLIP's three published checkpoint kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// `astroclip.ckpt`: both encoders with their heads.
    AstroClip,
    /// `specformer.ckpt`: the masked-modelling spectrum transformer.
    SpecFormer,
    /// `astrodino.ckpt`: the DINOv2 image backbone (teacher weights).
    AstroDino,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AstroClip => "astroclip",
            Self::SpecFormer => "specformer",
            Self::AstroDino => "astrodino",
        }
    }
}

/// What the three layouts look like, for error messages.
pub const EXPECTED_LAYOUTS: &str = "AstroCLIP's checkpoints are PyTorch files of one of three layouts: \
     astroclip.ckpt (Lightning; `state_dict` with `image_encoder.backbone.*`, `image_encoder.cross_attention.*`, \
     `spectrum_encoder.backbone.*`, …), specformer.ckpt (Lightning; `hyper_parameters` and a `state_dict` with \
     `data_embed.weight`, `position_embed.weight`, `blocks.<i>.*`), astrodino.ckpt (DINOv2; `teacher` with \
     `backbone.patch_embed.proj.weight`, `backbone.blocks.*`)";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot be read as a PyTorch checkpoint: {error}. {EXPECTED_LAYOUTS}")]
    Read { path: String, error: String },
    #[error("{path}: not one of AstroCLIP's checkpoint layouts (top-level keys: {found}). {EXPECTED_LAYOUTS}")]
    Layout { path: String, found: String },
    #[error("{path}: {detail}")]
    Shape { path: String, detail: String },
    #[error("{path}: the tensors do not match the {kind} architecture:\n{detail}")]
    Keys { path: String, kind: &'static str, detail: String },
    #[error("{path}: the inferred model does not build: {detail}")]
    Build { path: String, detail: String },
}

/// Choices a checkpoint's tensors do not determine.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Attention heads of the ViT blocks (default: width / 64, DINOv2's head width).
    pub vit_heads: Option<usize>,
    /// Attention heads of the SpecFormer layers (default: `hyper_parameters.num_heads`, else
    /// d_model / 128, AstroCLIP's 768 / 6).
    pub specformer_heads: Option<usize>,
    /// Attention heads of the cross-attention heads (default: AstroCLIP's `n_head = 4`).
    pub head_heads: Option<usize>,
}

/// The imported weights in the platform's modules.
#[derive(Debug)]
pub enum ImportedModel {
    AstroClip(Box<Model>),
    SpecFormer(MaskedSpecFormer),
    AstroDino(VitEncoder),
}

/// An imported checkpoint: its kind, the configuration that rebuilds its modules, the modules,
/// and what was read.
#[derive(Debug)]
pub struct Imported {
    pub kind: CheckpointKind,
    pub config: ExperimentConfig,
    pub model: ImportedModel,
    pub report: ImportReport,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Tensors in the file (under the top-level key that holds the weights).
    pub keys: usize,
    /// The top-level key the weights were under (`state_dict`, `teacher`).
    pub top_level_key: String,
    /// Tensors loaded, by module (`image.backbone`, `spectrum.head`, …).
    pub loaded: BTreeMap<String, usize>,
    /// Tensors left out on purpose, with the reason.
    pub skipped: Vec<(String, &'static str)>,
    /// The file's key of each of our parameters.
    pub origin: BTreeMap<String, String>,
    /// Hyper-parameters and where each came from (`shape of …`, `hyper_parameters`, `AstroCLIP default`).
    pub inferred: Vec<(String, String, String)>,
}

/// AstroCLIP's centre crop (`AstroClipCollator(center_crop=144)`).
pub const ASTROCLIP_CROP: usize = 144;

/// Bins of AstroCLIP's spectra (3600–9824 Å at 0.8 Å).
pub const ASTROCLIP_BINS: usize = 7781;

/// Tokens of an AstroCLIP spectrum (776 sections and the statistics token).
pub fn astroclip_tokens() -> usize {
    astroclip_builtin::spectrum_tokens::SpecformerTokens::new(ASTROCLIP_BINS, 1).n_sections() + 1
}

/// Reads, maps and loads the checkpoint at `path` on `device`.
pub fn import(path: &Path, opts: &ImportOptions, device: &Device) -> Result<Imported, ImportError> {
    let p = path.display().to_string();
    let read_err = |e: &dyn std::fmt::Display| ImportError::Read { path: p.clone(), error: e.to_string() };
    crate::data::open_regular(path).map_err(|e| read_err(&e))?;
    let top = PytorchReader::read_pickle_data(path, None).map_err(|e| read_err(&e))?;
    let PickleValue::Dict(top) = top else {
        return Err(ImportError::Layout { path: p, found: "(not a dictionary)".into() });
    };
    let mut names: Vec<&String> = top.keys().collect();
    names.sort();
    let found = names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let (key, kind) = if top.contains_key("teacher") {
        ("teacher", CheckpointKind::AstroDino)
    } else if top.contains_key("state_dict") {
        ("state_dict", CheckpointKind::SpecFormer) // refined below from the keys
    } else {
        return Err(ImportError::Layout { path: p, found });
    };
    let reader = PytorchReader::with_top_level_key(path, key).map_err(|e| read_err(&e))?;
    let tensors: BTreeMap<String, PackTensor> =
        reader.into_tensors().into_values().map(bridge::from_pytorch).map(|t| (t.name.clone(), t)).collect();
    let kind = match kind {
        CheckpointKind::AstroDino if tensors.contains_key("backbone.patch_embed.proj.weight") => kind,
        CheckpointKind::SpecFormer if tensors.keys().any(|k| k.starts_with("image_encoder.")) => {
            CheckpointKind::AstroClip
        }
        CheckpointKind::SpecFormer if tensors.contains_key("data_embed.weight") => kind,
        _ => {
            let sample: Vec<&str> = tensors.keys().take(6).map(String::as_str).collect();
            return Err(ImportError::Layout { path: p, found: format!("{found}; `{key}` holds {sample:?}…") });
        }
    };
    let hyper = match top.get("hyper_parameters") {
        Some(PickleValue::Dict(h)) => h.clone(),
        _ => Default::default(),
    };
    let mut report = ImportReport { keys: tensors.len(), top_level_key: key.to_string(), ..Default::default() };
    let shapes = Shapes { path: &p, tensors: &tensors };
    let head_heads = opts.head_heads.unwrap_or(4);
    let mut cfg = ExperimentConfig::preset("paper")
        .ok_or_else(|| ImportError::Build { path: p.clone(), detail: "the paper preset is missing".into() })?;
    cfg.experiment.name = format!("imported-{}", kind.as_str());
    cfg.experiment.preset = String::new();
    cfg.image.crop = ASTROCLIP_CROP;
    cfg.image.downsample = 1;
    cfg.spectrum.rebin = 1;
    cfg.loss.logit_scale = 15.5; // AstroCLIP's fixed `logit_scale`/`temperature`
    cfg.loss.learnable_scale = false;

    let model = match kind {
        CheckpointKind::AstroClip => {
            let vit = vit_settings(&shapes, "image_encoder.backbone.", opts, head_heads, &mut report)?;
            let embed_dim = shapes.dim("image_encoder.cross_attention.query", 2)?;
            let spectrum_embed = shapes.dim("spectrum_encoder.cross_attention.query", 2)?;
            if spectrum_embed != embed_dim {
                return Err(ImportError::Shape {
                    path: p,
                    detail: format!("image embeddings are {embed_dim} wide, spectrum embeddings {spectrum_embed}"),
                });
            }
            let (spec, token_dim) =
                specformer_settings(&shapes, "spectrum_encoder.backbone.", &hyper, opts, head_heads, &mut report)?;
            report.inferred.push((
                "model.embed_dim".into(),
                embed_dim.to_string(),
                "shape of cross_attention.query".into(),
            ));
            cfg.model.embed_dim = embed_dim;
            cfg.image.encoder = EncoderChoice::builtin::<VitEncoder>(&vit);
            cfg.spectrum.encoder = EncoderChoice::builtin::<astroclip_builtin::specformer::SpecFormer>(&spec);
            cfg.objective.kind = ObjectiveKind::Clip;
            // Built-in components only: no plugin home is consulted.
            let mut built = components::model(
                &cfg,
                &[3, ASTROCLIP_CROP, ASTROCLIP_CROP],
                &[astroclip_tokens(), token_dim],
                Path::new(""),
                device,
            )
            .map_err(|e| ImportError::Build { path: p.clone(), detail: e.to_string() })?
            .model;
            let mapped = map_all(&p, &tensors, &mut report, |k| {
                if let Some(rest) = k.strip_prefix("image_encoder.backbone.") {
                    prefixed("image.backbone.", vit_key(rest))
                } else if let Some(rest) = k.strip_prefix("image_encoder.") {
                    prefixed("image.head.", head_key(rest))
                } else if let Some(rest) = k.strip_prefix("spectrum_encoder.backbone.") {
                    if rest.starts_with("head.") {
                        return Mapping::Skip("SpecFormer's reconstruction head (masked modelling only)");
                    }
                    prefixed("spectrum.", specformer_key(rest))
                } else if let Some(rest) = k.strip_prefix("spectrum_encoder.") {
                    prefixed("spectrum.head.", head_key(rest))
                } else if k == "logit_scale" {
                    Mapping::Skip("learnable logit scale of the contrastive loss (not used to embed)")
                } else {
                    Mapping::Unknown
                }
            })?;
            let result = built.apply(mapped, None, adapter(), false);
            // The loss's logit scale is not in AstroCLIP's state dict (a fixed float there).
            check(&p, kind, &result, &["loss."], &mut report)?;
            built = built.valid();
            ImportedModel::AstroClip(Box::new(built))
        }
        CheckpointKind::SpecFormer => {
            let (spec, token_dim) = specformer_settings(&shapes, "", &hyper, opts, head_heads, &mut report)?;
            cfg.spectrum.encoder = EncoderChoice::builtin::<astroclip_builtin::specformer::SpecFormer>(&spec);
            cfg.objective.kind = ObjectiveKind::SpecformerMasked;
            let input = astroclip_plugin_api::EncoderInput {
                shape: vec![astroclip_tokens(), token_dim],
                embed_dim: cfg.model.embed_dim,
            };
            let backbone =
                <astroclip_builtin::specformer::SpecFormer as astroclip_plugin_api::ConfiguredEncoder>::build(
                    &spec, &input, device,
                )
                .map_err(|e| ImportError::Build { path: p.clone(), detail: format!("{}: {}", e.key, e.message) })?;
            let mut masked = MaskedSpecFormer::new(backbone, device);
            let mapped = map_all(&p, &tensors, &mut report, |k| {
                if let Some(rest) = k.strip_prefix("head.") {
                    Mapping::One(format!("recon.{rest}"))
                } else {
                    prefixed("backbone.", specformer_key(k))
                }
            })?;
            let result = masked.apply(mapped, None, adapter(), false);
            // The cross-attention head is not part of a SpecFormer checkpoint.
            check(&p, kind, &result, &["backbone.head."], &mut report)?;
            ImportedModel::SpecFormer(masked.valid())
        }
        CheckpointKind::AstroDino => {
            let vit = vit_settings(&shapes, "backbone.", opts, head_heads, &mut report)?;
            cfg.image.encoder = EncoderChoice::builtin::<VitEncoder>(&vit);
            let input = astroclip_plugin_api::EncoderInput {
                shape: vec![3, ASTROCLIP_CROP, ASTROCLIP_CROP],
                embed_dim: cfg.model.embed_dim,
            };
            let mut enc = <VitEncoder as astroclip_plugin_api::ConfiguredEncoder>::build(&vit, &input, device)
                .map_err(|e| ImportError::Build { path: p.clone(), detail: format!("{}: {}", e.key, e.message) })?;
            let mapped = map_all(&p, &tensors, &mut report, |k| {
                if let Some(rest) = k.strip_prefix("backbone.") {
                    prefixed("backbone.", vit_key(rest))
                } else if k.starts_with("dino_head.") || k.starts_with("ibot_head.") {
                    Mapping::Skip("DINO/iBOT projection head (self-distillation training only)")
                } else {
                    Mapping::Unknown
                }
            })?;
            let result = enc.apply(mapped, None, adapter(), false);
            // The cross-attention head is AstroCLIP's, not part of the DINOv2 checkpoint.
            check(&p, kind, &result, &["head."], &mut report)?;
            ImportedModel::AstroDino(enc.valid())
        }
    };
    cfg.resolve_encoders().map_err(|e| ImportError::Build { path: p, detail: e.to_string() })?;
    Ok(Imported { kind, config: cfg, model, report })
}

fn adapter() -> Option<Box<dyn burn_store::ModuleAdapter>> {
    Some(Box::new(PyTorchToBurnAdapter))
}

/// Where one tensor of the file goes.
enum Mapping {
    /// One parameter of ours (PyTorch layout; the adapter transposes Linear weights).
    One(String),
    /// A packed tensor split in three along its first axis (`qkv`, `in_proj_*`).
    Split([String; 3]),
    /// Left out on purpose.
    Skip(&'static str),
    /// A key the mapping does not know.
    Unknown,
}

/// `m` with our parameter names under `prefix`.
fn prefixed(prefix: &str, m: Mapping) -> Mapping {
    match m {
        Mapping::One(s) => Mapping::One(format!("{prefix}{s}")),
        Mapping::Split(names) => Mapping::Split(names.map(|s| format!("{prefix}{s}"))),
        other => other,
    }
}

/// DINOv2 backbone keys: the same names, block chunks (`blocks.<chunk>.<i>.`) collapsed.
fn vit_key(k: &str) -> Mapping {
    if let Some(rest) = k.strip_prefix("blocks.") {
        let parts: Vec<&str> = rest.splitn(3, '.').collect();
        let (i, tail) = match parts[..] {
            [a, b, tail] if b.parse::<usize>().is_ok() && a.parse::<usize>().is_ok() => (b, tail.to_string()),
            [a, b, tail] if a.parse::<usize>().is_ok() => (a, format!("{b}.{tail}")),
            [a, b] if a.parse::<usize>().is_ok() => (a, b.to_string()),
            _ => return Mapping::Unknown,
        };
        return Mapping::One(format!("blocks.{i}.{tail}"));
    }
    match k {
        "cls_token"
        | "pos_embed"
        | "mask_token"
        | "patch_embed.proj.weight"
        | "patch_embed.proj.bias"
        | "norm.weight"
        | "norm.bias" => Mapping::One(k.to_string()),
        _ => Mapping::Unknown,
    }
}

/// AstroCLIP's `CrossAttentionHead` + `MLP` keys (relative to `<modality>_encoder.`).
fn head_key(k: &str) -> Mapping {
    let qkv = |leaf: &str| Mapping::Split(["query", "key", "value"].map(|p| format!("attention.{p}.{leaf}")));
    match k {
        "cross_attention.query" => Mapping::One("query".into()),
        "cross_attention.multihead_attn.in_proj_weight" => qkv("weight"),
        "cross_attention.multihead_attn.in_proj_bias" => qkv("bias"),
        "cross_attention.multihead_attn.q_proj_weight" => Mapping::One("attention.query.weight".into()),
        "cross_attention.multihead_attn.k_proj_weight" => Mapping::One("attention.key.weight".into()),
        "cross_attention.multihead_attn.v_proj_weight" => Mapping::One("attention.value.weight".into()),
        "cross_attention.multihead_attn.out_proj.weight" => Mapping::One("attention.output.weight".into()),
        "cross_attention.multihead_attn.out_proj.bias" => Mapping::One("attention.output.bias".into()),
        "cross_attention.layernorm.weight" => Mapping::One("norm.weight".into()),
        "cross_attention.layernorm.bias" => Mapping::One("norm.bias".into()),
        "mlp.encoder.weight" => Mapping::One("fc1.weight".into()),
        "mlp.encoder.bias" => Mapping::One("fc1.bias".into()),
        "mlp.decoder.weight" => Mapping::One("fc2.weight".into()),
        "mlp.decoder.bias" => Mapping::One("fc2.bias".into()),
        _ => Mapping::Unknown,
    }
}

/// AstroCLIP's SpecFormer keys onto ours (burn's pre-norm `TransformerEncoderLayer` applies
/// `norm_2` before attention and `norm_1` before the feed-forward block).
fn specformer_key(k: &str) -> Mapping {
    match k {
        "data_embed.weight" => return Mapping::One("embedding.weight".into()),
        "data_embed.bias" => return Mapping::One("embedding.bias".into()),
        "position_embed.weight" => return Mapping::One("position".into()),
        "final_layernorm.weight" => return Mapping::One("norm.weight".into()),
        "final_layernorm.bias" => return Mapping::One("norm.bias".into()),
        _ => {}
    }
    let Some(rest) = k.strip_prefix("blocks.") else { return Mapping::Unknown };
    let Some((i, tail)) = rest.split_once('.') else { return Mapping::Unknown };
    if i.parse::<usize>().is_err() {
        return Mapping::Unknown;
    }
    let layer = format!("transformer.layers.{i}.");
    let one = |s: &str| Mapping::One(format!("{layer}{s}"));
    match tail {
        "layernorm1.weight" => one("norm_2.weight"),
        "layernorm1.bias" => one("norm_2.bias"),
        "layernorm2.weight" => one("norm_1.weight"),
        "layernorm2.bias" => one("norm_1.bias"),
        "attention.attention.weight" | "attention.attention.bias" => {
            let leaf = tail.rsplit('.').next().unwrap_or_default();
            Mapping::Split(["query", "key", "value"].map(|p| format!("{layer}mha.{p}.{leaf}")))
        }
        "attention.projection.weight" => one("mha.output.weight"),
        "attention.projection.bias" => one("mha.output.bias"),
        "mlp.encoder.weight" => one("pwff.linear_inner.weight"),
        "mlp.encoder.bias" => one("pwff.linear_inner.bias"),
        "mlp.decoder.weight" => one("pwff.linear_outer.weight"),
        "mlp.decoder.bias" => one("pwff.linear_outer.bias"),
        _ => Mapping::Unknown,
    }
}

/// The tensors under our names (as f32), with every key of the file accounted for.
fn map_all(
    path: &str,
    tensors: &BTreeMap<String, PackTensor>,
    report: &mut ImportReport,
    f: impl Fn(&str) -> Mapping,
) -> Result<Vec<PackTensor>, ImportError> {
    let keys_err = |key: &str, detail: String| ImportError::Keys {
        path: path.to_string(),
        kind: "AstroCLIP",
        detail: format!("  {key}: {detail}"),
    };
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    // A tensor whose bytes cannot be read (a damaged archive entry) is a read error.
    let data = |t: &PackTensor| -> Result<TensorData, ImportError> {
        let d = bridge::to_data(t)
            .map_err(|e| ImportError::Read { path: path.to_string(), error: format!("tensor {}: {e}", t.name) })?;
        Ok(if d.dtype() == burn::tensor::DType::F32 { d } else { d.convert::<f32>() })
    };
    for (key, t) in tensors {
        match f(key) {
            Mapping::One(name) => {
                report.origin.insert(name.clone(), key.clone());
                out.push(bridge::from_data(data(t)?, name, None));
            }
            Mapping::Split(names) => {
                let d = data(t)?;
                let shape = d.shape().to_vec();
                if shape.is_empty() || !shape[0].is_multiple_of(3) {
                    return Err(keys_err(
                        key,
                        format!("a packed q/k/v tensor of shape {shape:?} does not split in three"),
                    ));
                }
                let values: Vec<f32> = d.try_to_vec::<f32>().map_err(|e| keys_err(key, format!("{e:?}")))?;
                let third = values.len() / 3;
                let mut part_shape = shape.clone();
                part_shape[0] /= 3;
                for (i, name) in names.into_iter().enumerate() {
                    report.origin.insert(name.clone(), format!("{key} (part {} of 3)", i + 1));
                    let part = TensorData::new(values[i * third..(i + 1) * third].to_vec(), part_shape.clone());
                    out.push(bridge::from_data(part, name, None));
                }
            }
            Mapping::Skip(reason) => report.skipped.push((key.clone(), reason)),
            Mapping::Unknown => unknown.push(key.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(ImportError::Keys {
            path: path.to_string(),
            kind: "AstroCLIP",
            detail: format!("  keys no AstroCLIP module has ({}): {}", unknown.len(), unknown.join(", ")),
        });
    }
    Ok(out)
}

/// Fails unless every parameter (but those under the `not_in_file` prefixes, which the kind
/// does not hold) was filled from the file, every mapped tensor was used and every shape
/// matched; records what was loaded by module.
fn check(
    path: &str,
    kind: CheckpointKind,
    r: &ApplyResult,
    not_in_file: &[&str],
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let mut detail = String::new();
    let missing: Vec<&str> =
        r.missing.iter().map(|(k, _)| k.as_str()).filter(|k| !not_in_file.iter().any(|p| k.starts_with(p))).collect();
    // Norm parameters are named gamma/beta on our side, weight/bias in the file.
    let theirs = |ours: &str| {
        let file_name = ours.strip_suffix(".gamma").map(|p| format!("{p}.weight"));
        let file_name = file_name.or_else(|| ours.strip_suffix(".beta").map(|p| format!("{p}.bias")));
        let key = report.origin.get(ours).or_else(|| file_name.and_then(|n| report.origin.get(&n)));
        key.map_or(ours.to_string(), |k| format!("{k} (→ {ours})"))
    };
    if !missing.is_empty() {
        detail += &format!(
            "  parameters the file has no tensor for ({}, our names): {}\n",
            missing.len(),
            missing.join(", ")
        );
    }
    if !r.unused.is_empty() {
        let keys: Vec<String> = r.unused.iter().map(|k| theirs(k)).collect();
        detail += &format!("  tensors no parameter takes ({}): {}\n", keys.len(), keys.join(", "));
    }
    if !r.errors.is_empty() {
        let errs: Vec<String> = r
            .errors
            .iter()
            .map(|e| match e {
                burn_store::ApplyError::ShapeMismatch { path, expected, found } => {
                    format!("{}: shape {:?}, expected {:?}", theirs(path), found.as_slice(), expected.as_slice())
                }
                other => other.to_string(),
            })
            .collect();
        detail += &format!("  wrong shapes ({}): {}\n", errs.len(), errs.join("; "));
    }
    if !detail.is_empty() {
        return Err(ImportError::Keys {
            path: path.to_string(),
            kind: kind.as_str(),
            detail: detail.trim_end().into(),
        });
    }
    for key in &r.applied {
        let parts: Vec<&str> = key.split('.').collect();
        let module = parts[..(parts.len() - 1).clamp(1, 2)].join(".");
        *report.loaded.entry(module).or_default() += 1;
    }
    Ok(())
}

/// Shapes of the file's tensors, with errors naming the key.
struct Shapes<'a> {
    path: &'a str,
    tensors: &'a BTreeMap<String, PackTensor>,
}

impl Shapes<'_> {
    fn shape(&self, key: &str) -> Result<Vec<usize>, ImportError> {
        self.tensors.get(key).map(|t| t.shape.to_vec()).ok_or_else(|| ImportError::Keys {
            path: self.path.to_string(),
            kind: "AstroCLIP",
            detail: format!("  missing in the file: {key}"),
        })
    }

    fn dim(&self, key: &str, axis: usize) -> Result<usize, ImportError> {
        let s = self.shape(key)?;
        s.get(axis).copied().ok_or_else(|| ImportError::Shape {
            path: self.path.to_string(),
            detail: format!("{key} has shape {s:?}, with no axis {axis}"),
        })
    }

    /// Distinct block indices under `prefix` (`blocks.<i>.` or chunked `blocks.<c>.<i>.`).
    fn depth(&self, prefix: &str, suffix: &str) -> usize {
        self.tensors.keys().filter_map(|k| k.strip_prefix(prefix)).filter(|k| k.ends_with(suffix)).count()
    }
}

fn vit_settings(
    s: &Shapes<'_>,
    prefix: &str,
    opts: &ImportOptions,
    head_heads: usize,
    report: &mut ImportReport,
) -> Result<VitSettings, ImportError> {
    let proj = s.shape(&format!("{prefix}patch_embed.proj.weight"))?;
    let [width, 3, patch, patch2] = proj[..] else {
        return Err(ImportError::Shape {
            path: s.path.into(),
            detail: format!("{prefix}patch_embed.proj.weight has shape {proj:?}, not (width, 3, patch, patch)"),
        });
    };
    if patch != patch2 || patch == 0 || !ASTROCLIP_CROP.is_multiple_of(patch) {
        return Err(ImportError::Shape {
            path: s.path.into(),
            detail: format!("patches of {patch}×{patch2} px do not tile AstroCLIP's {ASTROCLIP_CROP}-px crops"),
        });
    }
    let depth = s.depth(&format!("{prefix}blocks."), ".attn.qkv.weight");
    let hidden = s.dim(&format!("{prefix}norm.weight"), 0).and_then(|_| {
        let k = s.tensors.keys().find(|k| k.starts_with(&format!("{prefix}blocks.")) && k.ends_with(".mlp.fc1.weight"));
        k.map_or(Ok(4 * width), |k| s.dim(k, 0))
    })?;
    let n_pos = s.dim(&format!("{prefix}pos_embed"), 1)?;
    let grid = (n_pos.saturating_sub(1) as f64).sqrt().round() as usize;
    if grid * grid + 1 != n_pos {
        return Err(ImportError::Shape {
            path: s.path.into(),
            detail: format!(
                "{prefix}pos_embed holds {n_pos} positions, not a square grid plus the CLS token (registers are not supported)"
            ),
        });
    }
    let n_heads = opts.vit_heads.unwrap_or((width / 64).max(1));
    let from = |what: &str| format!("shape of {prefix}{what}");
    report.inferred.extend([
        ("image.encoder.width".into(), width.to_string(), from("patch_embed.proj.weight")),
        ("image.encoder.patch_size".into(), patch.to_string(), from("patch_embed.proj.weight")),
        ("image.encoder.depth".into(), depth.to_string(), from("blocks.*")),
        ("image.encoder.pos_grid".into(), grid.to_string(), from("pos_embed")),
        (
            "image.encoder.n_heads".into(),
            n_heads.to_string(),
            if opts.vit_heads.is_some() { "option".into() } else { "DINOv2's 64-wide heads".into() },
        ),
    ]);
    Ok(VitSettings {
        patch_size: patch,
        width,
        depth,
        n_heads,
        mlp_ratio: hidden / width.max(1),
        layerscale: 1e-5,
        positions: false,
        pos_grid: Some(grid),
        swap_xy: true,
        head_heads,
        head_residual: false,
        dropout: 0.1,
    })
}

/// SpecFormer settings and token width.
fn specformer_settings(
    s: &Shapes<'_>,
    prefix: &str,
    hyper: &std::collections::HashMap<String, PickleValue>,
    opts: &ImportOptions,
    head_heads: usize,
    report: &mut ImportReport,
) -> Result<(SpecFormerSettings, usize), ImportError> {
    let embed = s.shape(&format!("{prefix}data_embed.weight"))?;
    let [d_model, token_dim] = embed[..] else {
        return Err(ImportError::Shape {
            path: s.path.into(),
            detail: format!("{prefix}data_embed.weight has shape {embed:?}"),
        });
    };
    let int = |k: &str| match hyper.get(k) {
        Some(PickleValue::Int(v)) if *v >= 0 => Some(*v as usize),
        _ => None,
    };
    for (k, ours) in [("slice_section_length", 20), ("slice_overlap", 10)] {
        if let Some(v) = int(k)
            && v != ours
        {
            return Err(ImportError::Shape {
                path: s.path.into(),
                detail: format!("hyper_parameters.{k} = {v}; the specformer-tokens tokenizer cuts {ours}"),
            });
        }
    }
    if token_dim != 22 {
        return Err(ImportError::Shape {
            path: s.path.into(),
            detail: format!("tokens of {token_dim} values; the specformer-tokens tokenizer makes 22 (20 fluxes + 2)"),
        });
    }
    let max_len = s.dim(&format!("{prefix}position_embed.weight"), 0)?;
    let n_layers = s.depth(&format!("{prefix}blocks."), ".attention.attention.weight");
    let (n_heads, source) = match (opts.specformer_heads, int("num_heads")) {
        (Some(h), _) => (h, "option"),
        (None, Some(h)) => (h, "hyper_parameters.num_heads"),
        (None, None) => ((d_model / 128).max(1), "AstroCLIP's 128-wide heads (768 / 6)"),
    };
    let from = |what: &str| format!("shape of {prefix}{what}");
    report.inferred.extend([
        ("spectrum.encoder.d_model".into(), d_model.to_string(), from("data_embed.weight")),
        ("spectrum.encoder.n_layers".into(), n_layers.to_string(), from("blocks.*")),
        ("spectrum.encoder.max_len".into(), max_len.to_string(), from("position_embed.weight")),
        ("spectrum.encoder.n_heads".into(), n_heads.to_string(), source.into()),
    ]);
    Ok((
        SpecFormerSettings {
            d_model,
            n_layers,
            n_heads,
            head_heads,
            dropout: 0.1,
            max_len: Some(max_len),
            head_residual: true,
        },
        token_dim,
    ))
}

/// The registry's experiment that holds imported models.
pub const IMPORTED_EXPERIMENT: &str = "imported";

/// Records `imported` (read from `source`) in the registry as a finished run of the experiment
/// [`IMPORTED_EXPERIMENT`] named `name`, with its weights as the run's checkpoint
/// (`<home>/runs/<id>/checkpoints/step-0000000/model.bpk`) so that every command that takes a
/// run id takes it; params `import.*` say what was read: source file, SHA-256, key count, the
/// modules loaded, what was skipped and where each hyper-parameter came from.
pub fn record(
    registry: &astroclip_registry::Registry,
    home: &Path,
    name: &str,
    source: &Path,
    imported: &Imported,
) -> anyhow::Result<String> {
    let (sha, bytes) = crate::train::file_sha256(source)?;
    let config = serde_json::to_value(&imported.config)?;
    let components = match &imported.model {
        ImportedModel::AstroClip(m) => {
            use astroclip_plugin_api::ModalityEncoder;
            vec![m.image.info(), m.spectrum.info()]
        }
        ImportedModel::SpecFormer(_) => vec![],
        ImportedModel::AstroDino(_) => vec![],
    };
    let id = registry.create_run(&astroclip_registry::NewRun {
        experiment: IMPORTED_EXPERIMENT.to_string(),
        name: name.to_string(),
        config_json: config.to_string(),
        git_commit: None,
        data_hash: None,
        components_json: serde_json::to_string(&components)?,
    })?;
    let r = &imported.report;
    let mut params = Vec::new();
    crate::lifecycle::flatten("", &config, &mut params);
    params.extend([
        ("import.kind".to_string(), imported.kind.as_str().to_string()),
        ("import.source".into(), source.display().to_string()),
        ("import.sha256".into(), sha.clone()),
        ("import.bytes".into(), bytes.to_string()),
        ("import.top_level_key".into(), r.top_level_key.clone()),
        ("import.keys".into(), r.keys.to_string()),
        ("import.skipped".into(), r.skipped.len().to_string()),
    ]);
    params.extend(r.loaded.iter().map(|(m, n)| (format!("import.loaded.{m}"), n.to_string())));
    params.extend(r.inferred.iter().map(|(k, v, from)| (format!("import.inferred.{k}"), format!("{v} ({from})"))));
    registry.log_params(&id, &params)?;
    let run_dir = home.join("runs").join(&id);
    let checkpoints = crate::train::Checkpoints { dir: run_dir.join("checkpoints") };
    let dir = checkpoints.step_dir(0);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("model.bpk");
    let saved = match &imported.model {
        ImportedModel::AstroClip(m) => m.as_ref().clone().save_file(&file),
        ImportedModel::SpecFormer(m) => m.clone().save_file(&file),
        ImportedModel::AstroDino(m) => m.clone().save_file(&file),
    };
    saved.map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    std::fs::write(dir.join("complete"), "0")?;
    crate::train::record_artifact(registry, &id, home, &file, "checkpoint")?;
    registry.set_status(&id, "finished", None)?;
    Ok(id)
}

/// The PyTorch twin's raw inputs and outputs (`bench/astroclip_twin.py`'s `twin_io.pt`: a
/// `torch.save` of a dict of float32 tensors), by key as `(shape, values)`; read by the import
/// test and `astroclip bench import`.
#[derive(Debug, Clone)]
pub struct TwinIo {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TwinIo {
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let p = path.display().to_string();
        let read_err = |e: &dyn std::fmt::Display| ImportError::Read { path: p.clone(), error: e.to_string() };
        crate::data::open_regular(path).map_err(|e| read_err(&e))?;
        let reader = PytorchReader::new(path).map_err(|e| read_err(&e))?;
        let mut tensors = BTreeMap::new();
        for (k, t) in reader.into_tensors() {
            let t = bridge::from_pytorch(t);
            let data = bridge::to_data(&t).map_err(|e| read_err(&format!("tensor {k}: {e}")))?;
            let shape = data.shape().to_vec();
            let values =
                data.try_to_vec::<f32>().map_err(|e| read_err(&format!("tensor {k} is not float32: {e:?}")))?;
            tensors.insert(k, (shape, values));
        }
        Ok(Self { tensors })
    }

    pub fn get(&self, key: &str) -> anyhow::Result<&(Vec<usize>, Vec<f32>)> {
        self.tensors.get(key).ok_or_else(|| anyhow::anyhow!("the twin's twin_io.pt has no {key}"))
    }

    /// `tok`'s `(n, …)` batch of the twin's raw inputs: `images` (n, H, W, 3) g,r,z nanomaggies
    /// for an image tokenizer, `spectra` (n, 7781) on AstroCLIP's grid otherwise.
    pub fn tokens(&self, tok: &dyn astroclip_plugin_api::Tokenizer, device: &Device) -> anyhow::Result<Tensor<2>> {
        use astroclip_plugin_api::{ImageView, Observation, SpectrumView};
        let bands: Vec<String> = ["g", "r", "z"].map(String::from).to_vec();
        let per: usize = tok.output_shape().iter().product();
        let (shape, images) = self.get("images")?;
        let (sshape, spectra) = self.get("spectra")?;
        let (n, len, bins) = (shape[0], shape[1] * shape[2] * shape[3], sshape[1]);
        let wavelength: Vec<f32> = (0..bins).map(|j| 3600.0 + 0.8 * j as f32).collect();
        let ivar = vec![1f32; bins];
        let mut out = vec![0f32; n * per];
        for (i, buf) in out.chunks_mut(per.max(1)).enumerate() {
            let obs = if tok.output_shape().len() == 3 {
                Observation::Image(ImageView {
                    object_id: "twin",
                    height: shape[1],
                    width: shape[2],
                    bands: &bands,
                    flux: &images[i * len..(i + 1) * len],
                    pixel_scale: 0.262,
                })
            } else {
                Observation::Spectrum(SpectrumView {
                    object_id: "twin",
                    wavelength: &wavelength,
                    flux: &spectra[i * bins..(i + 1) * bins],
                    ivar: &ivar,
                })
            };
            tok.tokenize(&obs, buf).map_err(|e| anyhow::anyhow!("tokenizing the twin's input {i}: {e}"))?;
        }
        Ok(Tensor::from_data(TensorData::new(out, [n, per]), device))
    }

    /// Largest |ours − theirs| over the largest |theirs| for tensor `key` (infinite when the
    /// sizes differ).
    pub fn rel_diff(&self, key: &str, ours: &[f32]) -> anyhow::Result<f64> {
        let (_, theirs) = self.get(key)?;
        if ours.len() != theirs.len() {
            return Ok(f64::INFINITY);
        }
        let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let diff = ours.iter().zip(theirs).fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
        Ok(diff / scale.max(1e-30))
    }
}
