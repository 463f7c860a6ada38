//! Image tokenizer: the Legacy Survey `ToRGB` stretch, then a centre crop and optional
//! block-average downsampling, giving a `(3, size, size)` CHW input.
//!
//! Reference: AstroCLIP `astroclip/astrodino/data/augmentations.py::ToRGB`, itself the
//! Legacy Survey `sdss_rgb` of legacypipe. With per-band `(plane, scale)` =
//! g → (2, 6.0), r → (1, 3.4), z → (0, 2.2), softening `m` = 0.03 and `Q` = 20:
//!
//! ```text
//! I   = mean_b max(0, x_b·s_b + m)
//! fI  = asinh(Q·I) / sqrt(Q)
//! I  += 1e-6 where I == 0
//! rgb[plane_b] = clip((x_b·s_b + m) · fI / I, 0, 1)
//! ```
//! so the output channels are (z, r, g).

use astroclip_plugin_api::{ComponentError, ComponentInfo, ComponentKind, Observation, Tokenizer};

/// `(plane, scale)` of a band in the Legacy Survey RGB stretch.
pub fn band_plane_scale(band: &str) -> Option<(usize, f32)> {
    match band {
        "u" => Some((2, 1.5)),
        "g" => Some((2, 6.0)),
        "r" => Some((1, 3.4)),
        "i" => Some((0, 1.0)),
        "z" => Some((0, 2.2)),
        _ => None,
    }
}

/// Applies the ToRGB stretch to an HWC image of the given bands; returns HWC RGB in [0, 1].
pub fn to_rgb(flux: &[f32], h: usize, w: usize, bands: &[String], m: f32, q: f32) -> Vec<f32> {
    let nb = bands.len();
    let ps: Vec<(usize, f32)> = bands.iter().map(|b| band_plane_scale(b).expect("bands checked by caller")).collect();
    let mut rgb = vec![0f32; h * w * 3];
    for p in 0..h * w {
        let px = &flux[p * nb..(p + 1) * nb];
        let mut i_sum = 0f32;
        for (x, &(_, s)) in px.iter().zip(&ps) {
            i_sum += (x * s + m).max(0.0);
        }
        let mut i = i_sum / nb as f32;
        let fi = (q * i).asinh() / q.sqrt();
        if i == 0.0 {
            i += 1e-6;
        }
        for (x, &(plane, s)) in px.iter().zip(&ps) {
            rgb[p * 3 + plane] = ((x * s + m) * fi / i).clamp(0.0, 1.0);
        }
    }
    rgb
}

/// Tokenizer `legacy-survey-rgb`: ToRGB, centre crop to `crop` px, then average `downsample`²
/// blocks; output `(3, crop/downsample, crop/downsample)`.
#[derive(Debug, Clone)]
pub struct LegacySurveyRgb {
    pub crop: usize,
    pub downsample: usize,
    pub m: f32,
    pub q: f32,
}

impl LegacySurveyRgb {
    pub fn new(crop: usize, downsample: usize) -> Self {
        Self { crop, downsample: downsample.max(1), m: 0.03, q: 20.0 }
    }

    pub fn out_size(&self) -> usize {
        self.crop / self.downsample
    }
}

impl Tokenizer for LegacySurveyRgb {
    fn info(&self) -> ComponentInfo {
        crate::info("legacy-survey-rgb", ComponentKind::Tokenizer, Some("image"))
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![3, self.out_size(), self.out_size()]
    }

    fn tokenize(&self, obs: &Observation<'_>, out: &mut [f32]) -> Result<(), ComponentError> {
        let err = |detail: String| ComponentError::Shape { component: "legacy-survey-rgb".into(), detail };
        let Observation::Image(img) = obs else {
            return Err(err(format!("expected an image, got a {}", obs.modality())));
        };
        let (h, w, nb) = (img.height, img.width, img.bands.len());
        if img.flux.len() != h * w * nb {
            return Err(err(format!("object {}: {} pixels values for {h}×{w}×{nb}", img.object_id, img.flux.len())));
        }
        if let Some(b) = img.bands.iter().find(|b| band_plane_scale(b).is_none()) {
            return Err(err(format!("object {}: band {b:?} has no RGB plane (use u,g,r,i,z)", img.object_id)));
        }
        if self.crop > h || self.crop > w || !self.crop.is_multiple_of(self.downsample) {
            return Err(err(format!(
                "crop {} / downsample {} does not fit a {h}×{w} image",
                self.crop, self.downsample
            )));
        }
        if let Some(p) = img.flux.iter().position(|v| !v.is_finite()) {
            return Err(ComponentError::InvalidValue {
                component: "legacy-survey-rgb".into(),
                object: img.object_id.into(),
                detail: format!("non-finite flux at pixel {} band {}; mask or drop the object", p / nb, p % nb),
            });
        }
        // Crop first: ToRGB is per pixel, so stretching only the crop is identical and cheaper.
        let (y0, x0) = ((h - self.crop) / 2, (w - self.crop) / 2);
        let mut crop = Vec::with_capacity(self.crop * self.crop * nb);
        for y in y0..y0 + self.crop {
            crop.extend_from_slice(&img.flux[(y * w + x0) * nb..(y * w + x0 + self.crop) * nb]);
        }
        let rgb = to_rgb(&crop, self.crop, self.crop, img.bands, self.m, self.q);
        let (s, d) = (self.out_size(), self.downsample);
        let norm = 1.0 / (d * d) as f32;
        for c in 0..3 {
            for oy in 0..s {
                for ox in 0..s {
                    let mut acc = 0f32;
                    for dy in 0..d {
                        for dx in 0..d {
                            acc += rgb[((oy * d + dy) * self.crop + ox * d + dx) * 3 + c];
                        }
                    }
                    out[(c * s + oy) * s + ox] = acc * norm;
                }
            }
        }
        Ok(())
    }
}
