//! Example native plugin: a tokenizer for multi-band cutouts that reduces an image
//! `(H, W, bands)` in nanomaggies to one asinh magnitude-like value per band, the flux inside a
//! central circular aperture of radius 8 px: `asinh(F / 2b) · (−2.5 / ln 10)` with softening
//! b = 0.01 nanomaggies (Lupton, Gunn & Szalay 1999), so negative fluxes stay finite.

use astroclip_plugin_sdk::{ArrayTokenizer, export_plugin};

pub struct BandFluxes;

const RADIUS: f64 = 8.0;
const SOFTENING: f64 = 0.01;

impl ArrayTokenizer for BandFluxes {
    const NAME: &'static str = "band-fluxes";
    const MODALITY: &'static str = "image";

    fn output_len(shape: &[usize]) -> Option<usize> {
        match shape {
            [h, w, b] if *h > 0 && *w > 0 && *b > 0 => Some(*b),
            _ => None,
        }
    }

    fn tokenize(input: &[f32], shape: &[usize], out: &mut [f32]) -> Result<(), String> {
        let (h, w, b) = (shape[0], shape[1], shape[2]);
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut flux = vec![0f64; b];
        for y in 0..h {
            for x in 0..w {
                if (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) > RADIUS * RADIUS {
                    continue;
                }
                for (k, f) in flux.iter_mut().enumerate() {
                    let v = input[(y * w + x) * b + k];
                    if !v.is_finite() {
                        return Err(format!("pixel ({y}, {x}) band {k} is {v}"));
                    }
                    *f += v as f64;
                }
            }
        }
        for (o, f) in out.iter_mut().zip(flux) {
            *o = ((f / (2.0 * SOFTENING)).asinh() * (-2.5 / std::f64::consts::LN_10)) as f32;
        }
        Ok(())
    }
}

export_plugin!(id: "band-fluxes", version: "0.1.0", tokenizers: [BandFluxes]);
