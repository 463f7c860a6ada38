//! Astronomical image augmentations for image-only self-supervised learning, after Stein et al.
//! 2021 (§3.2; Hayat et al. 2021 use the same family): a galaxy has no preferred orientation
//! (random rotation by multiples of 90° and flips — the dihedral group, exact on a pixel
//! grid), no preferred sub-pixel centre (small shifts), and is seen through varying seeing and
//! depth (Gaussian blur, Gaussian noise). A random crop is a shift whose uncovered border is
//! zero (sky after the tokenizer's background handling), so it is the shift below.
//!
//! Works on one tokenized image: `channels × size × size` values, row-major.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Random 90° rotations and flips.
    pub dihedral: bool,
    /// Largest shift in pixels, each axis (uniform integer in [-max_shift, max_shift]).
    pub max_shift: usize,
    /// Largest Gaussian blur σ in pixels (uniform in [0, max_blur]; extra seeing).
    pub max_blur: f32,
    /// Largest added noise σ as a fraction of each channel's standard deviation (uniform).
    pub max_noise: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { dihedral: true, max_shift: 4, max_blur: 1.0, max_noise: 0.2 }
    }
}

/// One of the 8 symmetries of the square: `k` quarter turns counter-clockwise, then a
/// left–right flip if `flip`. Pixel (y, x) of the output reads the input pixel it came from.
pub fn dihedral(img: &[f32], c: usize, s: usize, k: usize, flip: bool) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    for ch in 0..c {
        let src = &img[ch * s * s..(ch + 1) * s * s];
        let dst = &mut out[ch * s * s..(ch + 1) * s * s];
        for y in 0..s {
            for x in 0..s {
                let x0 = if flip { s - 1 - x } else { x };
                // Inverse of k CCW quarter turns applied to (y, x0).
                let (mut sy, mut sx) = (y, x0);
                for _ in 0..k % 4 {
                    // CCW turn maps (y, x) -> (s-1-x, y); its inverse maps (y, x) -> (x, s-1-y).
                    (sy, sx) = (sx, s - 1 - sy);
                }
                dst[y * s + x] = src[sy * s + sx];
            }
        }
    }
    out
}

/// Shifts by (dy, dx) pixels; pixels shifted in are 0.
pub fn shift(img: &[f32], c: usize, s: usize, dy: isize, dx: isize) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    for ch in 0..c {
        for y in 0..s as isize {
            for x in 0..s as isize {
                let (sy, sx) = (y - dy, x - dx);
                if (0..s as isize).contains(&sy) && (0..s as isize).contains(&sx) {
                    out[ch * s * s + (y * s as isize + x) as usize] = img[ch * s * s + (sy * s as isize + sx) as usize];
                }
            }
        }
    }
    out
}

/// The normalised 1-D Gaussian kernel of σ `sigma` (radius ⌈3σ⌉).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if sigma <= 1e-3 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    k.into_iter().map(|v| v / sum).collect()
}

/// Separable Gaussian blur; the border is extended with zeros (sky).
pub fn blur(img: &[f32], c: usize, s: usize, sigma: f32) -> Vec<f32> {
    let k = gaussian_kernel(sigma);
    if k.len() == 1 {
        return img.to_vec();
    }
    let r = (k.len() / 2) as isize;
    let pass = |src: &[f32], horizontal: bool| {
        let mut out = vec![0.0; src.len()];
        for ch in 0..c {
            for y in 0..s as isize {
                for x in 0..s as isize {
                    let mut acc = 0.0;
                    for (j, w) in k.iter().enumerate() {
                        let o = j as isize - r;
                        let (yy, xx) = if horizontal { (y, x + o) } else { (y + o, x) };
                        if (0..s as isize).contains(&yy) && (0..s as isize).contains(&xx) {
                            acc += w * src[ch * s * s + (yy * s as isize + xx) as usize];
                        }
                    }
                    out[ch * s * s + (y * s as isize + x) as usize] = acc;
                }
            }
        }
        out
    };
    pass(&pass(img, true), false)
}

/// A random view of `img` (`c × s × s`).
pub fn augment(img: &[f32], c: usize, s: usize, cfg: &AugmentConfig, rng: &mut impl Rng) -> Vec<f32> {
    let mut v =
        if cfg.dihedral { dihedral(img, c, s, rng.random_range(0..4), rng.random_bool(0.5)) } else { img.to_vec() };
    if cfg.max_shift > 0 {
        let m = cfg.max_shift as i64;
        let (dy, dx) = (rng.random_range(-m..=m) as isize, rng.random_range(-m..=m) as isize);
        v = shift(&v, c, s, dy, dx);
    }
    if cfg.max_blur > 0.0 {
        v = blur(&v, c, s, rng.random_range(0.0..=cfg.max_blur));
    }
    if cfg.max_noise > 0.0 {
        let level = rng.random_range(0.0..=cfg.max_noise);
        for ch in v.chunks_mut(s * s) {
            let mean = ch.iter().sum::<f32>() / ch.len() as f32;
            let sd = (ch.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / ch.len() as f32).sqrt();
            for x in ch.iter_mut() {
                let z: f32 = StandardNormal.sample(rng);
                *x += level * sd * z;
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn delta(c: usize, s: usize, y: usize, x: usize) -> Vec<f32> {
        let mut v = vec![0.0; c * s * s];
        for ch in 0..c {
            v[ch * s * s + y * s + x] = 1.0 + ch as f32;
        }
        v
    }

    fn argmax(v: &[f32], s: usize) -> (usize, usize) {
        let i = v[..s * s].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        (i / s, i % s)
    }

    #[test]
    fn dihedral_moves_pixels_as_rotations_and_flips() {
        let s = 5;
        let img = delta(2, s, 0, 1); // row 0, column 1
        // A CCW quarter turn takes (y, x) to (s-1-x, y).
        assert_eq!(argmax(&dihedral(&img, 2, s, 1, false), s), (3, 0));
        assert_eq!(argmax(&dihedral(&img, 2, s, 2, false), s), (4, 3));
        assert_eq!(argmax(&dihedral(&img, 2, s, 0, true), s), (0, 3));
        assert_eq!(dihedral(&img, 2, s, 4, false), img);
        // Every symmetry keeps each channel's pixel values.
        for k in 0..4 {
            for f in [false, true] {
                let out = dihedral(&img, 2, s, k, f);
                assert_eq!(out[s * s..].iter().sum::<f32>(), 2.0);
            }
        }
    }

    #[test]
    fn shift_blur_and_noise_behave() {
        let s = 9;
        let img = delta(1, s, 4, 4);
        assert_eq!(argmax(&shift(&img, 1, s, 2, -1), s), (6, 3));
        assert_eq!(shift(&img, 1, s, 9, 0).iter().sum::<f32>(), 0.0, "shifted out entirely");
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // A centred point keeps its flux under blur and spreads symmetrically.
        let b = blur(&img, 1, s, 1.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!((b[4 * s + 3] - b[4 * s + 5]).abs() < 1e-7 && b[4 * s + 4] < 1.0);
        // Views are random but reproducible from the seed.
        let cfg = AugmentConfig::default();
        let img: Vec<f32> = (0..3 * 16 * 16).map(|i| (i % 17) as f32).collect();
        let a = augment(&img, 3, 16, &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, augment(&img, 3, 16, &cfg, &mut ChaCha8Rng::seed_from_u64(1)));
        assert_ne!(a, augment(&img, 3, 16, &cfg, &mut ChaCha8Rng::seed_from_u64(2)));
        assert!(a.iter().all(|x| x.is_finite()));
    }
}
