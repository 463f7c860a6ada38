//! The training objectives besides AstroCLIP's own (`crate::train::Clip`), each an
//! implementation of [`crate::train::Objective`] run by [`crate::train::fit`]: MoCo v2, the
//! image-only baseline (Stein et al. 2021), and SpecFormer masked modelling, AstroCLIP's
//! stage 1. (The supervised baselines are `crate::supervised`; the modality binding is
//! `crate::bind`.)

pub mod masked;
pub mod moco;
