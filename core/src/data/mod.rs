//! Survey data on disk and in memory: readers for the formats astronomers hold, one object
//! source interface for training, and the prefetching loader that feeds it.
//!
//! Every reader produces the same observation records ([`SpectrumRecord`], [`ImageRecord`]) and
//! every training source implements [`ObjectSource`]; the synthetic survey and an AstroCLIP
//! HDF5 file go through the same loader. See `docs/data.md` for the formats.

pub mod astroclip_h5;
pub mod catalog;
pub mod crossmatch;
pub mod desi;
pub mod fits;
pub mod grid;
mod h5;
pub mod inspect;
pub mod legacy;
pub mod loader;
pub mod memory;
pub mod mmu;
pub mod sdss;
pub mod storage;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The largest image side (pixels) and spectrum length (bins) a reader accepts: a file
/// declaring more is refused before anything is allocated for it (AstroCLIP uses 152 px and
/// 7781 bins; the bounds leave room for any survey cutout or spectrograph).
pub const MAX_IMAGE_SIDE: usize = 4096;
pub const MAX_SPECTRUM_BINS: usize = 1_000_000;

/// What to do with an object whose values cannot be used (NaN/inf flux where ivar > 0, a
/// wrong shape, an id without its other modality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnBad {
    /// Stop with an error naming the file and the object.
    #[default]
    Error,
    /// Leave the object out, count it and log it (file and object named).
    Skip,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // `error`, not `source`: the message already holds it (as `source` it was printed twice).
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path} is not a valid {format} file: {detail}")]
    Format { path: String, format: &'static str, detail: String },
    #[error("{path}: object {object}: {detail} (set data.on_bad = \"skip\" to leave such objects out)")]
    BadObject { path: String, object: String, detail: String },
    #[error("{path}: {detail}")]
    Content { path: String, detail: String },
}

impl DataError {
    /// The message without the `on_bad` hint, for objects already being skipped.
    pub fn brief(&self) -> String {
        match self {
            DataError::BadObject { path, object, detail } => format!("{path}: object {object}: {detail}"),
            other => other.to_string(),
        }
    }

    pub fn io(path: &Path, error: std::io::Error) -> Self {
        DataError::Io { path: path.display().to_string(), error }
    }
}

/// Opens `path` for reading when it is a regular file (or a link to one). A FIFO would block
/// the reader until something writes to it (and a signal handler that waits for a training step
/// could not stop it); a directory or device is no data file either. Every reader opens its
/// file through this (or [`read_regular`]).
pub fn open_regular(path: &Path) -> Result<std::fs::File, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file (a directory, FIFO or device?)"),
        ));
    }
    std::fs::File::open(path).map_err(|e| DataError::io(path, e))
}

/// The whole content of a regular file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let mut f = open_regular(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}

/// `(object id, reason)` of objects a reader left out under [`OnBad::Skip`].
pub type Skipped = Vec<(String, String)>;
/// What a multi-object reader returns: the records it could read and the objects it skipped.
pub type ReadResult<T> = Result<(Vec<T>, Skipped), DataError>;

/// One spectrum, as every spectrum reader returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumRecord {
    pub object_id: String,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub redshift: Option<f64>,
    /// Å, vacuum, ascending.
    pub wavelength: Vec<f64>,
    /// 1e-17 erg/s/cm²/Å.
    pub flux: Vec<f32>,
    /// 0 where the pixel carries no information (masked or missing).
    pub ivar: Vec<f32>,
    /// true where the instrument's mask flagged the pixel (its ivar is then 0).
    pub mask: Vec<bool>,
    pub provenance: String,
}

/// One multi-band cutout, `(height, width, bands)` row-major like AstroCLIP's arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub object_id: String,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub bands: Vec<String>,
    pub height: usize,
    pub width: usize,
    /// nanomaggies, `(height, width, bands)`.
    pub flux: Vec<f32>,
    pub ivar: Option<Vec<f32>>,
    pub mask: Option<Vec<bool>>,
    /// arcsec per pixel.
    pub pixel_scale: f64,
    pub provenance: String,
}

/// Paired objects a training run reads by index: catalogue-level arrays (ids, grid, truth)
/// in memory, pixels on demand through per-thread [`ObjectReader`]s.
pub trait ObjectSource: Send + Sync {
    /// Where the objects come from (a file path, or "synthetic survey …").
    fn describe(&self) -> String;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn object_ids(&self) -> &[String];
    fn bands(&self) -> &[String];
    fn image_size(&self) -> usize;
    fn pixel_scale(&self) -> f32;
    /// Wavelength grid shared by every spectrum, Å.
    fn wavelength(&self) -> &[f32];
    /// Per-object truth/catalogue columns `(name, values)` (at least `redshift` when known).
    fn truth(&self) -> &[(String, Vec<f32>)];
    /// Broad-band photometry of the objects, when the source has it (the synthetic survey).
    fn photometry(&self) -> Option<&crate::data::catalog::Photometry> {
        None
    }
    fn truth_column(&self, name: &str) -> Option<&[f32]> {
        self.truth().iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
    /// A reader for one thread (file handles are not shared between threads).
    fn reader(&self) -> Result<Box<dyn ObjectReader + '_>, DataError>;
    /// SHA-256 identifying the content, recorded with every run that uses it.
    fn content_hash(&self) -> Result<String, DataError>;
    /// Format tag for the registry (`synthetic`, `astroclip-h5`, …).
    fn format(&self) -> &'static str;
    /// Bytes of pixels per object (image + flux + ivar), for memory planning.
    fn bytes_per_object(&self) -> usize {
        4 * (self.image_size() * self.image_size() * self.bands().len() + 2 * self.wavelength().len())
    }
}

/// Reads object `i` into caller-provided buffers: image `(size, size, bands)`, flux and ivar on
/// the source's wavelength grid.
pub trait ObjectReader {
    fn read(&mut self, i: usize, image: &mut [f32], flux: &mut [f32], ivar: &mut [f32]) -> Result<(), DataError>;
}

/// Checks a spectrum's values the way every reader must: a non-finite flux or ivar where the
/// pixel is not masked is an error naming the object and bin; negative ivar likewise.
pub fn check_spectrum(path: &str, object: &str, flux: &[f32], ivar: &[f32]) -> Result<(), DataError> {
    for (j, (&f, &w)) in flux.iter().zip(ivar).enumerate() {
        if !w.is_finite() || w < 0.0 {
            return Err(DataError::BadObject {
                path: path.into(),
                object: object.into(),
                detail: format!("spectrum ivar[{j}] = {w} (must be finite and ≥ 0)"),
            });
        }
        if w > 0.0 && !f.is_finite() {
            return Err(DataError::BadObject {
                path: path.into(),
                object: object.into(),
                detail: format!("spectrum flux[{j}] = {f} with ivar {w} > 0"),
            });
        }
    }
    Ok(())
}

/// A spectrum must carry information somewhere: at least one pixel with ivar > 0. One with
/// every pixel masked or at ivar 0 (DESI's unassigned and broken fibres) is an unusable
/// object, which `inspect` reports and `on_bad` decides about.
pub fn check_usable(path: &str, object: &str, ivar: &[f32]) -> Result<(), DataError> {
    if ivar.iter().any(|&w| w > 0.0) {
        return Ok(());
    }
    Err(DataError::BadObject {
        path: path.into(),
        object: object.into(),
        detail: format!("spectrum has no usable pixel (all {} pixels masked or with ivar 0)", ivar.len()),
    })
}

pub fn check_image(path: &str, object: &str, image: &[f32]) -> Result<(), DataError> {
    if let Some(j) = image.iter().position(|v| !v.is_finite()) {
        return Err(DataError::BadObject {
            path: path.into(),
            object: object.into(),
            detail: format!("image pixel {j} = {}", image[j]),
        });
    }
    Ok(())
}

/// Streams a file through SHA-256.
pub fn file_sha256(path: &Path) -> Result<String, DataError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = open_regular(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens the training source a configuration names: an AstroCLIP-layout HDF5 file (`.h5`,
/// `.hdf5`), a survey safetensors file, or `None` for the synthetic survey.
pub fn open_path(path: &Path) -> Result<Arc<dyn ObjectSource>, DataError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "h5" | "hdf5" => Ok(Arc::new(astroclip_h5::AstroClipH5::open(path)?)),
        "safetensors" => {
            let s = crate::data::storage::load(path)
                .map_err(|e| DataError::Content { path: path.display().to_string(), detail: e.to_string() })?;
            Ok(Arc::new(memory::MemorySource::new(s, "survey-safetensors")))
        }
        _ => Err(DataError::Content {
            path: path.display().to_string(),
            detail: "unknown data file type; training reads AstroCLIP-layout HDF5 (.h5/.hdf5) or survey \
                     .safetensors — convert other formats with `astroclip data import`"
                .into(),
        }),
    }
}

pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Random train/test split of `n` objects, deterministic in `seed`.
pub fn split_indices(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::{Rng, SeedableRng};
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x05EE_D51D);
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        idx.swap(i, j);
    }
    let n_test = ((n as f64) * test_fraction).round() as usize;
    let test = idx[..n_test].to_vec();
    let train = idx[n_test..].to_vec();
    (train, test)
}
