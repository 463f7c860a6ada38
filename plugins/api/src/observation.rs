//! Raw observations handed to tokenizers: borrowed arrays with explicit shapes.

/// A multi-band image cutout, pixel-major `(height, width, bands)` as in AstroCLIP's HDF5
/// (`images` is `(N, 152, 152, 3)`), flux in nanomaggies.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub object_id: &'a str,
    pub height: usize,
    pub width: usize,
    /// Band names in the order of the last axis, e.g. `["g", "r", "z"]`.
    pub bands: &'a [String],
    pub flux: &'a [f32],
    /// Pixel scale in arcsec per pixel.
    pub pixel_scale: f32,
}

/// A 1-D spectrum on a wavelength grid (Å), flux in 1e-17 erg/s/cm²/Å, with inverse variance.
#[derive(Debug, Clone, Copy)]
pub struct SpectrumView<'a> {
    pub object_id: &'a str,
    pub wavelength: &'a [f32],
    pub flux: &'a [f32],
    pub ivar: &'a [f32],
}

/// One observation of one object in one modality.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    Image(ImageView<'a>),
    Spectrum(SpectrumView<'a>),
}

impl Observation<'_> {
    pub fn object_id(&self) -> &str {
        match self {
            Observation::Image(v) => v.object_id,
            Observation::Spectrum(v) => v.object_id,
        }
    }

    pub fn modality(&self) -> &'static str {
        match self {
            Observation::Image(_) => "image",
            Observation::Spectrum(_) => "spectrum",
        }
    }
}
