//! SpecFormer masked-modelling pre-training (AstroCLIP stage 1): contiguous chunks of spectrum
//! tokens are zeroed and the network reconstructs them; the loss is the mean squared error over
//! the masked entries only.
//!
//! Reference: AstroCLIP `astroclip/models/specformer.py` (Parker et al. 2024, §3.2):
//!
//! ```text
//! for i in range(num_chunks):                      # per sequence
//!     start = (i * len) // num_chunks
//!     loc   = randint(0, len // num_chunks - chunk_width)
//!     masked[loc + start : loc + start + chunk_width] = 0      # whole tokens
//! requires num_chunks * chunk_width + (num_chunks - 1) * chunk_width <= len
//! mask_locs = (masked != target)                   # elementwise
//! loss = sum(mask_locs * (recon - target)^2) / sum(mask_locs)
//! ```
//! The elementwise `!=` means entries that were already zero (the two padding columns of
//! every section token) never count, exactly as in the reference.

use burn::tensor::Tensor;
use rand::Rng;

/// AstroCLIP's pre-training settings: 6 chunks of 50 tokens (on 7781-bin DESI spectra, 777
/// section tokens).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    pub num_chunks: usize,
    pub chunk_width: usize,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self { num_chunks: 6, chunk_width: 50 }
    }
}

/// Zeroes `cfg.num_chunks` chunks of `cfg.chunk_width` whole tokens of one sequence of
/// `len` tokens × `dim` values (row-major), one chunk at a random offset inside each of
/// `num_chunks` equal segments. Returns the masked token ranges.
pub fn mask_sequence(
    seq: &mut [f32],
    len: usize,
    dim: usize,
    cfg: MaskConfig,
    rng: &mut impl Rng,
) -> Result<Vec<std::ops::Range<usize>>, String> {
    assert_eq!(seq.len(), len * dim, "sequence is not len × dim");
    let (n, w) = (cfg.num_chunks, cfg.chunk_width);
    if n == 0 || w == 0 {
        return Ok(Vec::new());
    }
    if n * w + (n - 1) * w > len || len / n <= w {
        return Err(format!(
            "a sequence of {len} tokens is too short for {n} masked chunks of {w} tokens (needs at least {}); \
             lower mask.num_chunks or mask.chunk_width",
            ((2 * n - 1) * w).max(n * (w + 1))
        ));
    }
    let mut ranges = Vec::with_capacity(n);
    for i in 0..n {
        let start = (i * len) / n;
        let loc = rng.random_range(0..(len / n - w));
        let r = start + loc..start + loc + w;
        seq[r.start * dim..r.end * dim].fill(0.0);
        ranges.push(r);
    }
    Ok(ranges)
}

/// The reference loss: squared error summed over the entries the masking changed, divided by
/// their number. `recon`, `target`, `masked` are `(batch, len, dim)`.
pub fn masked_mse(recon: Tensor<3>, target: Tensor<3>, masked: Tensor<3>) -> Tensor<1> {
    let locs = masked.not_equal(target.clone()).float();
    let n = locs.clone().sum().clamp_min(1.0);
    let err = (recon - target).powi_scalar(2) * locs;
    err.sum() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn chunks_follow_the_reference_placement_rule() {
        let (len, dim) = (60, 3);
        let cfg = MaskConfig { num_chunks: 3, chunk_width: 5 };
        let orig: Vec<f32> = (0..len * dim).map(|i| 1.0 + i as f32).collect();
        for seed in 0..50 {
            let mut seq = orig.clone();
            let ranges = mask_sequence(&mut seq, len, dim, cfg, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            assert_eq!(ranges.len(), 3);
            for (i, r) in ranges.iter().enumerate() {
                // Segment i starts at i*len/n; the offset is in [0, len/n - w).
                let start = i * len / 3;
                assert!(r.start >= start && r.start < start + len / 3 - 5, "{r:?} in segment {i}");
                assert_eq!(r.len(), 5);
            }
            for t in 0..len {
                let masked = ranges.iter().any(|r| r.contains(&t));
                for d in 0..dim {
                    let v = seq[t * dim + d];
                    assert_eq!(v, if masked { 0.0 } else { orig[t * dim + d] }, "token {t}");
                }
            }
        }
        // (2n - 1) w > len is refused with the settings to change.
        let mut seq = vec![1.0; 20 * 2];
        let e = mask_sequence(
            &mut seq,
            20,
            2,
            MaskConfig { num_chunks: 3, chunk_width: 5 },
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap_err();
        assert!(e.contains("too short") && e.contains("mask.chunk_width"), "{e}");
    }

    /// Golden value: 1 sequence of 4 tokens × 2 values; tokens 1–2 masked; target entry (2, 0)
    /// was already 0, so by the reference's elementwise `!=` it does not count:
    /// masked entries (1,0), (1,1), (2,1) with errors 0.5, -1, 2 → (0.25 + 1 + 4) / 3 = 1.75.
    #[test]
    fn masked_mse_matches_the_reference_formula() {
        let dev = Device::default();
        let t = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [1, 4, 2]), &dev);
        let target = t(vec![1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 6.0, 7.0]);
        let masked = t(vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 6.0, 7.0]);
        // Reconstruction errors: unmasked tokens get large errors that must not count.
        let recon = t(vec![9.0, 9.0, 3.5, 3.0, 4.0, 7.0, -9.0, 9.0]);
        let loss: f32 = masked_mse(recon, target, masked).into_scalar();
        assert!((loss - 1.75).abs() < 1e-6, "{loss}");
    }
}
