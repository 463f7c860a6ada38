//! First-party components of astroclip, written against `astroclip-plugin-api` only.
//!
//! | component | kind | file |
//! |---|---|---|
//! | `legacy-survey-rgb` | image tokenizer (ToRGB stretch, centre crop) | [`to_rgb`] |
//! | `specformer-tokens` | spectrum tokenizer (standardise, 20/10 slices, stats token) | [`spectrum_tokens`] |
//! | `resnet` | image encoder (ResNet CNN + cross-attention head) | [`resnet`] |
//! | `vit` | image encoder (DINOv2 ViT + cross-attention head; AstroDINO's architecture) | [`vit`] |
//! | `specformer` | spectrum encoder (pre-LN transformer + cross-attention head) | [`specformer`] |
//! | `infonce` | symmetric InfoNCE contrastive loss | [`infonce`] |
//! | `knn` | distance-weighted k-NN regression probe | [`knn`] |
//! | — | the top-k kernel of search and the k-NN probe | [`topk`] |
//! | — | embedding diagnostics (effective rank, alignment, uniformity, PCA) | [`diagnostics`] |

pub mod diagnostics;
pub mod head;
pub mod infonce;
pub mod knn;
pub mod mlp_probe;
pub mod resnet;
pub mod specformer;
pub mod spectrum_tokens;
pub mod to_rgb;
pub mod topk;
pub mod vit;

use astroclip_plugin_api::{ComponentInfo, ComponentKind};

pub(crate) fn info(id: &str, kind: ComponentKind, modality: Option<&str>) -> ComponentInfo {
    ComponentInfo {
        id: id.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        kind,
        modality: modality.map(str::to_string),
    }
}
