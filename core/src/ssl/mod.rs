//! The numerics of the self-supervised objectives, each with golden tests against the
//! reference formula: astronomical augmentations and MoCo v2's queue, momentum update and loss
//! (Stein et al. 2021), SpecFormer's masking and masked loss (AstroCLIP stage 1). The
//! objectives that train with them are in `crate::objectives`.

pub mod augment;
pub mod masking;
pub mod moco;
