//! Paired observations in memory, in AstroCLIP's array layout: what the synthetic survey
//! generates, what `data import` builds from real files, and what the survey `.safetensors`
//! storage ([`super::storage`]) reads and writes.

/// Paired observations of `n` objects, in AstroCLIP's array layout.
#[derive(Debug, Clone)]
pub struct Survey {
    pub object_ids: Vec<String>,
    pub bands: Vec<String>,
    pub image_size: usize,
    pub pixel_scale: f32,
    /// `(n, size, size, bands)` nanomaggies.
    pub images: Vec<f32>,
    /// `(n_bins,)` Å, shared by all spectra.
    pub wavelength: Vec<f32>,
    /// `(n, n_bins)` 1e-17 erg/s/cm²/Å.
    pub spectra: Vec<f32>,
    pub ivar: Vec<f32>,
    /// Truth catalogue: `(name, values)` per column.
    pub truth: Vec<(String, Vec<f32>)>,
    /// Free-form provenance (generator config, source file).
    pub provenance: String,
    /// Broad-band photometry of the same objects, when the source has it.
    pub photometry: Option<Photometry>,
}

/// Broad-band fluxes with errors: `(n, bands)` row-major, nanomaggies.
#[derive(Debug, Clone, PartialEq)]
pub struct Photometry {
    pub bands: Vec<String>,
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
}

impl Photometry {
    pub fn row(&self, i: usize) -> (&[f32], &[f32]) {
        let b = self.bands.len();
        (&self.flux[i * b..(i + 1) * b], &self.ivar[i * b..(i + 1) * b])
    }
}

impl Survey {
    pub fn len(&self) -> usize {
        self.object_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.object_ids.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.image_size * self.image_size * self.bands.len()
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.image_len()..(i + 1) * self.image_len()]
    }

    pub fn spectrum(&self, i: usize) -> (&[f32], &[f32]) {
        let l = self.wavelength.len();
        (&self.spectra[i * l..(i + 1) * l], &self.ivar[i * l..(i + 1) * l])
    }

    pub fn truth_column(&self, name: &str) -> Option<&[f32]> {
        self.truth.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// SHA-256 over every array and id, in a fixed order: the run's data hash.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for id in &self.object_ids {
            h.update(id.as_bytes());
            h.update([0]);
        }
        for b in &self.bands {
            h.update(b.as_bytes());
        }
        for arr in [&self.images, &self.wavelength, &self.spectra, &self.ivar] {
            h.update(bytemuck::cast_slice(arr));
        }
        for (name, col) in &self.truth {
            h.update(name.as_bytes());
            h.update(bytemuck::cast_slice(col));
        }
        if let Some(p) = &self.photometry {
            for b in &p.bands {
                h.update(b.as_bytes());
            }
            h.update(bytemuck::cast_slice(&p.flux));
            h.update(bytemuck::cast_slice(&p.ivar));
        }
        hex::encode(h.finalize())
    }
}

/// Names of the truth-catalogue columns, in storage order.
pub const TRUTH_COLUMNS: [&str; 13] = [
    "redshift",
    "log_mass",
    "log_ssfr",
    "metallicity",
    "age",
    "bt_ratio",
    "disk_re",
    "bulge_re",
    "axis_ratio",
    "position_angle",
    "mag_g",
    "mag_r",
    "mag_z",
];
