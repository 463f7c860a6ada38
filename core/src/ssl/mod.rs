//! Self-supervised pre-training objectives for the benchmark suite (issue 6): the image-only
//! baseline of Stein et al. 2021 (MoCo v2 with astronomical augmentations) and AstroCLIP's
//! stage-1 SpecFormer masked modelling. The numerics that port published methods live here,
//! each with golden tests against the reference formula.

pub mod augment;
pub mod masking;
pub mod moco;
pub mod train_masked;
pub mod train_moco;
