//! On-disk survey files: safetensors (readable from Python with `safetensors.numpy.load_file`)
//! holding AstroCLIP's array layout: `images` (N, H, W, bands) float32 nanomaggies, `spectra`
//! and `ivar` (N, n_bins), `wavelength` (n_bins,), `truth.<column>` (N,); object ids, band
//! names, pixel scale and provenance in the header metadata.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::catalog::Survey;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    // `error`, not `source`: the message already holds it.
    #[error("cannot read survey file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(
        "{path} is not a readable survey file ({detail}); was it truncated? regenerate it with `astroclip survey synth`"
    )]
    Format { path: String, detail: String },
    #[error("{path}: {detail}")]
    Content { path: String, detail: String },
}

fn view<'a>(name: &str, shape: Vec<usize>, data: &'a [f32]) -> (String, TensorView<'a>) {
    let v = TensorView::new(Dtype::F32, shape, bytemuck::cast_slice(data)).expect("shape matches data");
    (name.to_string(), v)
}

pub fn save(survey: &Survey, path: &Path) -> Result<(), StorageError> {
    let n = survey.len();
    let s = survey.image_size;
    let l = survey.wavelength.len();
    let mut tensors = vec![
        view("images", vec![n, s, s, survey.bands.len()], &survey.images),
        view("spectra", vec![n, l], &survey.spectra),
        view("ivar", vec![n, l], &survey.ivar),
        view("wavelength", vec![l], &survey.wavelength),
    ];
    for (name, col) in &survey.truth {
        tensors.push(view(&format!("truth.{name}"), vec![n], col));
    }
    if let Some(p) = &survey.photometry {
        tensors.push(view("photometry", vec![n, p.bands.len()], &p.flux));
        tensors.push(view("photometry_ivar", vec![n, p.bands.len()], &p.ivar));
    }
    let mut meta = HashMap::new();
    if let Some(p) = &survey.photometry {
        meta.insert("photometry_bands".to_string(), p.bands.join(","));
    }
    meta.insert("format".to_string(), "astroclip-survey/1".to_string());
    meta.insert("object_ids".to_string(), serde_json::to_string(&survey.object_ids).unwrap_or_default());
    meta.insert("bands".to_string(), survey.bands.join(","));
    meta.insert("pixel_scale".to_string(), survey.pixel_scale.to_string());
    meta.insert("provenance".to_string(), survey.provenance.clone());
    let bytes = safetensors::tensor::serialize(tensors, Some(meta))
        .map_err(|e| StorageError::Format { path: path.display().to_string(), detail: e.to_string() })?;
    // Write next to the target and rename, so an interrupted write never leaves a half file.
    let tmp = path.with_extension("partial");
    let io = |error| StorageError::Io { path: path.display().to_string(), error };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn load(path: &Path) -> Result<Survey, StorageError> {
    let p = path.display().to_string();
    let bytes = super::read_regular(path).map_err(|e| match e {
        super::DataError::Io { error, .. } => StorageError::Io { path: p.clone(), error },
        other => StorageError::Format { path: p.clone(), detail: other.to_string() },
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| StorageError::Format { path: p.clone(), detail: e.to_string() })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| StorageError::Format { path: p.clone(), detail: e.to_string() })?;
    let meta = header.metadata().clone().unwrap_or_default();
    let content = |detail: String| StorageError::Content { path: p.clone(), detail };
    if meta.get("format").map(String::as_str) != Some("astroclip-survey/1") {
        return Err(content("missing `format = astroclip-survey/1` metadata; not an astroclip survey".into()));
    }
    let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>), StorageError> {
        let t = st.tensor(name).map_err(|_| content(format!("array `{name}` is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(content(format!("array `{name}` is {:?}, expected F32", t.dtype())));
        }
        Ok((t.shape().to_vec(), bytemuck::pod_collect_to_vec(t.data())))
    };
    let object_ids: Vec<String> = serde_json::from_str(meta.get("object_ids").map(String::as_str).unwrap_or(""))
        .map_err(|e| content(format!("metadata `object_ids` unreadable: {e}")))?;
    let bands: Vec<String> = meta.get("bands").map(|b| b.split(',').map(str::to_string).collect()).unwrap_or_default();
    let pixel_scale: f32 = meta
        .get("pixel_scale")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| content("metadata `pixel_scale` missing".into()))?;
    let (ishape, images) = get("images")?;
    let (sshape, spectra) = get("spectra")?;
    let (_, ivar) = get("ivar")?;
    let (_, wavelength) = get("wavelength")?;
    let n = object_ids.len();
    if ishape.len() != 4 || ishape[0] != n || ishape[1] != ishape[2] || ishape[3] != bands.len() {
        return Err(content(format!("images have shape {ishape:?}; expected ({n}, H, H, {})", bands.len())));
    }
    if sshape != [n, wavelength.len()] || ivar.len() != spectra.len() {
        return Err(content(format!("spectra have shape {sshape:?}; expected ({n}, {})", wavelength.len())));
    }
    let mut truth = Vec::new();
    let mut names: Vec<&str> = st.names().into_iter().filter_map(|k| k.strip_prefix("truth.")).collect();
    names.sort_by_key(|name| super::catalog::TRUTH_COLUMNS.iter().position(|c| c == name).unwrap_or(usize::MAX));
    for name in names {
        let (shape, col) = get(&format!("truth.{name}"))?;
        if shape != [n] {
            return Err(content(format!("truth column `{name}` has shape {shape:?}; expected ({n},)")));
        }
        truth.push((name.to_string(), col));
    }
    let photometry = match meta.get("photometry_bands") {
        None => None,
        Some(b) => {
            let bands: Vec<String> = b.split(',').map(str::to_string).collect();
            let (fs, flux) = get("photometry")?;
            let (is, ivar) = get("photometry_ivar")?;
            if fs != [n, bands.len()] || is != fs {
                return Err(content(format!(
                    "photometry has shape {fs:?} / ivar {is:?}; expected ({n}, {})",
                    bands.len()
                )));
            }
            Some(super::catalog::Photometry { bands, flux, ivar })
        }
    };
    Ok(Survey {
        photometry,
        object_ids,
        bands,
        image_size: ishape[1],
        pixel_scale,
        images,
        wavelength,
        spectra,
        ivar,
        truth,
        provenance: format!("{} (file {p})", meta.get("provenance").cloned().unwrap_or_default()),
    })
}
