//! Spectrum tokenizer after AstroCLIP's SpecFormer preprocessing.
//!
//! Reference: AstroCLIP `astroclip/models/specformer.py::SpecFormer.preprocess` and `_slice`
//! (Parker et al. 2024, §3.2):
//!
//! ```text
//! std  = max(std(x, unbiased), 0.2);  mean = mean(x)
//! x    = (x - mean) / std
//! starts = 0, s-o, 2(s-o), … < len - o     (s = 20 section length, o = 10 overlap)
//! tokens = [x[a : a+s] for a in starts if a+s <= len]
//! pad every token with 2 leading zeros, prepend a zero token, then
//! token[0][0] = (mean - 2) / 2;  token[0][1] = (std - 2) / 8
//! ```
//! Output shape `(1 + n_sections, s + 2)`. An optional `rebin` (mean of `rebin` adjacent
//! bins, remainder dropped) runs first so that small presets can shorten the sequence.

use astroclip_plugin_api::{ComponentError, ComponentInfo, ComponentKind, Observation, Tokenizer};

#[derive(Debug, Clone)]
pub struct SpecformerTokens {
    /// Number of flux bins the tokenizer expects (7781 on the DESI grid).
    pub n_bins: usize,
    pub section: usize,
    pub overlap: usize,
    pub rebin: usize,
    pub std_floor: f32,
}

impl SpecformerTokens {
    pub fn new(n_bins: usize, rebin: usize) -> Self {
        Self { n_bins, section: 20, overlap: 10, rebin: rebin.max(1), std_floor: 0.2 }
    }

    fn rebinned_len(&self) -> usize {
        self.n_bins / self.rebin
    }

    pub fn n_sections(&self) -> usize {
        let len = self.rebinned_len();
        let step = self.section - self.overlap;
        if len < self.section {
            return 0;
        }
        // starts a = k·step with a < len - overlap and a + section <= len
        (0..).map(|k| k * step).take_while(|&a| a + self.overlap < len).filter(|&a| a + self.section <= len).count()
    }

    /// Tokenizes an already rebinned flux vector; public for golden tests.
    pub fn tokens_from(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let std = (var.sqrt() as f32).max(self.std_floor);
        let mean = mean as f32;
        let width = self.section + 2;
        out.fill(0.0);
        out[0] = (mean - 2.0) / 2.0;
        out[1] = (std - 2.0) / 8.0;
        let step = self.section - self.overlap;
        for t in 0..self.n_sections() {
            let a = t * step;
            let row = &mut out[(t + 1) * width..(t + 2) * width];
            for (j, v) in x[a..a + self.section].iter().enumerate() {
                row[j + 2] = (v - mean) / std;
            }
        }
    }
}

impl Tokenizer for SpecformerTokens {
    fn info(&self) -> ComponentInfo {
        crate::info("specformer-tokens", ComponentKind::Tokenizer, Some("spectrum"))
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.n_sections() + 1, self.section + 2]
    }

    fn tokenize(&self, obs: &Observation<'_>, out: &mut [f32]) -> Result<(), ComponentError> {
        let Observation::Spectrum(sp) = obs else {
            return Err(ComponentError::Shape {
                component: "specformer-tokens".into(),
                detail: format!("expected a spectrum, got a {}", obs.modality()),
            });
        };
        if sp.flux.len() != self.n_bins {
            return Err(ComponentError::Shape {
                component: "specformer-tokens".into(),
                detail: format!(
                    "object {}: {} flux bins, the tokenizer is configured for {}",
                    sp.object_id,
                    sp.flux.len(),
                    self.n_bins
                ),
            });
        }
        if let Some(i) = sp.flux.iter().position(|v| !v.is_finite()) {
            return Err(ComponentError::InvalidValue {
                component: "specformer-tokens".into(),
                object: sp.object_id.into(),
                detail: format!(
                    "non-finite flux at bin {i} (λ = {:.1} Å); mask it or drop the object",
                    sp.wavelength.get(i).copied().unwrap_or(f32::NAN)
                ),
            });
        }
        let x: Vec<f32> = if self.rebin == 1 {
            sp.flux.to_vec()
        } else {
            sp.flux.chunks_exact(self.rebin).map(|c| c.iter().sum::<f32>() / self.rebin as f32).collect()
        };
        self.tokens_from(&x, out);
        Ok(())
    }
}
