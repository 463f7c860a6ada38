//! Queries from data files, embedded on the fly with the model that embedded a catalogue, and
//! the pixels of catalogue objects (for `astroclip search --file` and `--html`).
//!
//! A catalogue written by `astroclip embed` names its model run, that model's checkpoint
//! (SHA-256) and its data files ([`crate::embed::Manifest`]). A query file is read by the
//! readers of `astroclip data` (Legacy Survey cutout FITS, Multimodal Universe HDF5 images
//! or spectra, DESI coadd or SDSS spec FITS, AstroCLIP HDF5 or survey safetensors) and brought
//! to the catalogue's inputs the way `astroclip data import` brings files to a training set:
//! images centre-cropped to the catalogue's size with its bands picked by name (a smaller
//! image is refused, not padded), spectra resampled flux-conservingly onto the catalogue's
//! wavelength grid. The model's own tokenizers and encoders then embed them, so a catalogue
//! object handed back as a file embeds to its catalogue row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use astroclip_plugin_api::{ImageView, ModalityEncoder, Observation, SpectrumView};
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::inspect::{Format, detect, fit_image, read_images_any, read_spectra_any};
use crate::data::{ObjectSource, OnBad, grid::resample};
use crate::embed::{Loaded, Manifest, Modality, load_model, read_meta};

/// Most objects one query file may contribute without `--id` naming some.
pub const MAX_FILE_QUERIES: usize = 1000;

/// One object's pixels on a catalogue's inputs: `(size, size, bands)` nanomaggies and the
/// spectrum on the catalogue's wavelength grid; a modality the file does not hold is `None`.
#[derive(Debug, Clone)]
pub struct ObjectPixels {
    pub object_id: String,
    pub image: Option<Vec<f32>>,
    pub flux: Option<Vec<f32>>,
    pub ivar: Option<Vec<f32>>,
}

/// The inputs a catalogue's model takes: its first data file's grid, image size and bands.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub image_size: usize,
    pub bands: Vec<String>,
    pub pixel_scale: f32,
    pub wavelength: Vec<f32>,
}

/// A catalogue's data files, opened on demand by path, and the inputs they define.
pub struct CatalogueData {
    pub manifest: Manifest,
    pub inputs: Inputs,
    sources: HashMap<String, Arc<dyn ObjectSource>>,
}

impl CatalogueData {
    /// Opens the catalogue's first data file (its grid defines the inputs); the others open
    /// when an object of theirs is asked for. Paths are the ones `astroclip embed` was given.
    pub fn open(catalogue: &Path) -> anyhow::Result<Self> {
        let (manifest, _, _) = read_meta(catalogue)?;
        let Some(first) = manifest.data.first() else {
            bail!("{}: the catalogue names no data file, so its inputs are unknown", catalogue.display());
        };
        let s = open_data_file(&manifest, &first.path)?;
        let inputs = Inputs {
            image_size: s.image_size(),
            bands: s.bands().to_vec(),
            pixel_scale: s.pixel_scale(),
            wavelength: s.wavelength().to_vec(),
        };
        let sources = HashMap::from([(first.path.clone(), s)]);
        Ok(Self { manifest, inputs, sources })
    }

    fn source(&mut self, path: &str) -> anyhow::Result<Arc<dyn ObjectSource>> {
        if let Some(s) = self.sources.get(path) {
            return Ok(s.clone());
        }
        let s = open_data_file(&self.manifest, path)?;
        self.sources.insert(path.to_string(), s.clone());
        Ok(s)
    }

    /// Image and spectrum of catalogue object `object_id` from data file `path`.
    pub fn pixels(&mut self, path: &str, object_id: &str) -> anyhow::Result<ObjectPixels> {
        let s = self.source(path)?;
        let Some(i) = s.object_ids().iter().position(|x| x == object_id) else {
            bail!("{path} has no object {object_id:?}: the file changed since it was embedded");
        };
        let (size, nb, bins) = (s.image_size(), s.bands().len(), s.wavelength().len());
        let (mut img, mut flux, mut ivar) = (vec![0f32; size * size * nb], vec![0f32; bins], vec![0f32; bins]);
        s.reader()?.read(i, &mut img, &mut flux, &mut ivar)?;
        Ok(ObjectPixels { object_id: object_id.to_string(), image: Some(img), flux: Some(flux), ivar: Some(ivar) })
    }
}

/// Opens one of the catalogue's data files, checked to hold as many objects as were embedded.
fn open_data_file(manifest: &Manifest, path: &str) -> anyhow::Result<Arc<dyn ObjectSource>> {
    let Some(known) = manifest.data.iter().find(|d| d.path == path) else {
        bail!("{path} is not one of the catalogue's data files");
    };
    let s = crate::data::open_path(Path::new(path)).with_context(|| {
        format!("the catalogue's data file {path} (as `astroclip embed --data` named it, relative to where it ran)")
    })?;
    if s.len() != known.objects {
        bail!("{path} holds {} objects, the catalogue was embedded from {}: the file changed", s.len(), known.objects);
    }
    Ok(s)
}

/// The objects of a query file on the catalogue's inputs, and the modality they query with:
/// images for cutout and image files, spectra for spectrum files, `paired_from` for files
/// that hold both. `ids` picks objects (all when empty, at most [`MAX_FILE_QUERIES`]).
pub fn read_query_file(
    file: &Path,
    ids: &[String],
    paired_from: Modality,
    inputs: &Inputs,
) -> anyhow::Result<(Modality, Vec<ObjectPixels>)> {
    let p = file.display().to_string();
    let pick = |all: &[String]| -> anyhow::Result<Vec<usize>> {
        if ids.is_empty() {
            if all.len() > MAX_FILE_QUERIES {
                bail!("{p} holds {} objects; pick at most {MAX_FILE_QUERIES} with --id", all.len());
            }
            return Ok((0..all.len()).collect());
        }
        ids.iter()
            .map(|id| all.iter().position(|x| x == id).with_context(|| format!("{p} has no object {id:?}")))
            .collect()
    };
    let grid: Vec<f64> = inputs.wavelength.iter().map(|&w| w as f64).collect();
    let format = detect(file)?;
    match format {
        Format::AstroclipH5 | Format::SurveySafetensors => {
            let s = crate::data::open_path(file)?;
            if s.wavelength().len() != grid.len() || s.image_size() != inputs.image_size || s.bands() != inputs.bands {
                bail!(
                    "{p}: {} px {:?} images and {} spectral bins, the catalogue's inputs are {} px {:?} and {} bins",
                    s.image_size(),
                    s.bands(),
                    s.wavelength().len(),
                    inputs.image_size,
                    inputs.bands,
                    grid.len()
                );
            }
            let (size, nb, bins) = (s.image_size(), s.bands().len(), s.wavelength().len());
            let mut reader = s.reader()?;
            let mut out = Vec::new();
            for i in pick(s.object_ids())? {
                let (mut img, mut flux, mut ivar) = (vec![0f32; size * size * nb], vec![0f32; bins], vec![0f32; bins]);
                reader.read(i, &mut img, &mut flux, &mut ivar)?;
                let object_id = s.object_ids()[i].clone();
                let (image, flux, ivar) = match paired_from {
                    Modality::Image => (Some(img), None, None),
                    Modality::Spectrum => (None, Some(flux), Some(ivar)),
                };
                out.push(ObjectPixels { object_id, image, flux, ivar });
            }
            Ok((paired_from, out))
        }
        Format::LegacyCutout | Format::MmuImages => {
            let (images, _) = read_images_any(file, OnBad::Error)?;
            let all: Vec<String> = images.iter().map(|r| r.object_id.clone()).collect();
            let mut out = Vec::new();
            for i in pick(&all)? {
                let r = &images[i];
                if r.height < inputs.image_size || r.width < inputs.image_size {
                    bail!(
                        "{p}: object {} is a {}×{} px image, the catalogue's are {s}×{s} px; a smaller cutout \
                         would be padded with zeros, so it is not searched",
                        all[i],
                        r.height,
                        r.width,
                        s = inputs.image_size
                    );
                }
                let img = fit_image(&images[i], inputs.image_size, &inputs.bands)
                    .map_err(|e| anyhow::anyhow!("{p}: object {}: {e}", all[i]))?;
                out.push(ObjectPixels { object_id: all[i].clone(), image: Some(img), flux: None, ivar: None });
            }
            Ok((Modality::Image, out))
        }
        Format::DesiCoadd | Format::SdssSpec | Format::MmuSpectra => {
            let (spectra, _) = read_spectra_any(file, None, OnBad::Error)?;
            let all: Vec<String> = spectra.iter().map(|r| r.object_id.clone()).collect();
            let mut out = Vec::new();
            for i in pick(&all)? {
                let s = &spectra[i];
                let (flux, ivar) = resample(&s.wavelength, &s.flux, &s.ivar, &grid);
                if ivar.iter().all(|&v| v <= 0.0) {
                    bail!("{p}: object {} has no usable pixel on the catalogue's wavelength grid", all[i]);
                }
                out.push(ObjectPixels { object_id: all[i].clone(), image: None, flux: Some(flux), ivar: Some(ivar) });
            }
            Ok((Modality::Spectrum, out))
        }
        Format::DesiRedrock => bail!("{p}: {} holds no images or spectra to query with", format.describe()),
    }
}

/// The catalogue's model, checked to be the one that embedded it.
pub fn catalogue_model(
    catalogue: &Path,
    data: &CatalogueData,
    home: &Path,
    registry: Option<&str>,
    device: &Device,
) -> anyhow::Result<Loaded> {
    let reg = crate::run::open_registry(home, registry)?;
    let m = &data.manifest;
    let loaded = load_model(&reg, home, &m.model, data.inputs.wavelength.len(), device)
        .with_context(|| format!("{}: the model that embedded it", catalogue.display()))?;
    if loaded.checkpoint_sha256 != m.checkpoint_sha256 {
        bail!(
            "{}: embedded with checkpoint {} of run {}, whose newest checkpoint is now {}; re-embed the catalogue",
            catalogue.display(),
            &m.checkpoint_sha256[..m.checkpoint_sha256.len().min(12)],
            m.model,
            &loaded.checkpoint_sha256[..12]
        );
    }
    Ok(loaded)
}

/// Unit-length embeddings (row-major) of `objects` in `modality`, by `model`.
pub fn embed_objects(
    model: &Loaded,
    inputs: &Inputs,
    modality: Modality,
    objects: &[ObjectPixels],
    device: &Device,
) -> anyhow::Result<Vec<f32>> {
    let wavelength = &inputs.wavelength;
    let tok = match modality {
        Modality::Image => &model.tokenizers.image,
        Modality::Spectrum => &model.tokenizers.spectrum,
    };
    let per: usize = tok.output_shape().iter().product();
    let mut tokens = vec![0f32; objects.len() * per];
    for (o, out) in objects.iter().zip(tokens.chunks_mut(per.max(1))) {
        let obs = match (modality, &o.image, &o.flux, &o.ivar) {
            (Modality::Image, Some(img), _, _) => Observation::Image(ImageView {
                object_id: &o.object_id,
                height: inputs.image_size,
                width: inputs.image_size,
                bands: &inputs.bands,
                flux: img,
                pixel_scale: inputs.pixel_scale,
            }),
            (Modality::Spectrum, _, Some(flux), Some(ivar)) => {
                Observation::Spectrum(SpectrumView { object_id: &o.object_id, wavelength, flux, ivar })
            }
            _ => bail!("object {} has no {}", o.object_id, modality.as_str()),
        };
        tok.tokenize(&obs, out).map_err(|e| anyhow::anyhow!("object {}: {e}", o.object_id))?;
    }
    let mut rows = Vec::with_capacity(objects.len() * model.model.image.embed_dim());
    const BATCH: usize = 64;
    for chunk in tokens.chunks(BATCH * per.max(1)) {
        let n = chunk.len() / per.max(1);
        let x: Tensor<2> = Tensor::from_data(TensorData::new(chunk.to_vec(), [n, per]), device);
        let e = match modality {
            Modality::Image => model.model.image.encode(x),
            Modality::Spectrum => model.model.spectrum.encode(x),
        };
        rows.extend(e.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    let dim = rows.len() / objects.len().max(1);
    crate::search::normalize(&mut rows, dim);
    Ok(rows)
}

/// `source_file` of every catalogue row, in row order.
pub fn source_files(catalogue: &Path) -> anyhow::Result<Vec<String>> {
    crate::embed::read_string_column(catalogue, "source_file")
}
