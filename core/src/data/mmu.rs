//! Multimodal Universe (MMU; The Multimodal Universe Collaboration 2024, NeurIPS D&B) HDF5
//! shards, `…/healpix=N/*.hdf5`: spectrum files (`spectrum_flux`, `spectrum_ivar`,
//! `spectrum_lambda`, `spectrum_mask`, `spectrum_lsf_sigma`, `object_id`, `ra`, `dec`, `z`) and
//! image files (`image_array` (N, bands, H, W), `image_band`, `image_ivar`, `image_mask`,
//! `image_psf_fwhm`, `image_scale`, `object_id`, `ra`, `dec`). Field names follow MMU's
//! `scripts/desi/desi.py` and `scripts/legacysurvey/legacysurvey.py`.

use std::path::Path;

use rust_hdf5::{H5Dataset, H5File};

use super::{DataError, ImageRecord, OnBad, SpectrumRecord, check_spectrum};

const FORMAT: &str = "Multimodal Universe HDF5";

fn fmt_err(path: &Path, detail: impl Into<String>) -> DataError {
    DataError::Format { path: path.display().to_string(), format: FORMAT, detail: detail.into() }
}

fn open(path: &Path) -> Result<H5File, DataError> {
    if !path.exists() {
        return Err(DataError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
    }
    std::panic::catch_unwind(|| H5File::open(path))
        .map_err(|_| fmt_err(path, "the HDF5 decoder failed; is the file corrupt?"))?
        .map_err(|e| fmt_err(path, e.to_string()))
}

fn dataset(f: &H5File, path: &Path, name: &str) -> Result<H5Dataset, DataError> {
    f.dataset(name).map_err(|_| fmt_err(path, format!("no `{name}` dataset; is this an MMU file of this modality?")))
}

fn floats(f: &H5File, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let d = dataset(f, path, name)?;
    let v = d.read_numeric_as::<f32>().map_err(|e| fmt_err(path, format!("`{name}`: {e}")))?;
    Ok((d.shape(), v))
}

/// Bool/uint8 masks (h5py writes numpy bools as an int8 enum): any non-zero byte is set.
fn flags(f: &H5File, path: &Path, name: &str) -> Result<Option<Vec<bool>>, DataError> {
    let Ok(d) = f.dataset(name) else { return Ok(None) };
    if let Ok(v) = d.read_numeric_as::<u8>() {
        return Ok(Some(v.into_iter().map(|b| b != 0).collect()));
    }
    let raw = d.read_raw_bytes().map_err(|e| fmt_err(path, format!("`{name}`: {e}")))?;
    let n = d.total_elements();
    if raw.len() != n {
        return Err(fmt_err(
            path,
            format!("`{name}` has {}-byte elements; expected a bool/uint8 mask", raw.len() / n.max(1)),
        ));
    }
    Ok(Some(raw.into_iter().map(|b| b != 0).collect()))
}

/// Object ids as strings, whether stored as integers or fixed/variable-length strings.
fn ids(f: &H5File, path: &Path) -> Result<Vec<String>, DataError> {
    let d = dataset(f, path, "object_id")?;
    if let Ok(v) = d.read_numeric_as::<i64>() {
        return Ok(v.into_iter().map(|x| x.to_string()).collect());
    }
    d.read_strings()
        .map(|v| v.into_iter().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).collect())
        .map_err(|e| fmt_err(path, format!("`object_id`: {e}")))
}

type Coords = Vec<(Option<f64>, Option<f64>)>;

fn coords(f: &H5File, path: &Path, n: usize) -> Result<Coords, DataError> {
    let get = |name: &str| -> Result<Option<Vec<f64>>, DataError> {
        match f.dataset(name) {
            Ok(d) => Ok(Some(d.read_numeric_as::<f64>().map_err(|e| fmt_err(path, format!("`{name}`: {e}")))?)),
            Err(_) => Ok(None),
        }
    };
    let (ra, dec) = (get("ra")?, get("dec")?);
    Ok((0..n).map(|i| (ra.as_ref().map(|v| v[i]), dec.as_ref().map(|v| v[i]))).collect())
}

pub fn read_spectra(path: &Path, on_bad: OnBad) -> super::ReadResult<SpectrumRecord> {
    let f = open(path)?;
    let p = path.display().to_string();
    let ids = ids(&f, path)?;
    let n = ids.len();
    let (fs, flux) = floats(&f, path, "spectrum_flux")?;
    let (is, ivar) = floats(&f, path, "spectrum_ivar")?;
    let (ls, lambda) = floats(&f, path, "spectrum_lambda")?;
    if fs.len() != 2 || fs[0] != n || is != fs {
        return Err(fmt_err(path, format!("spectrum_flux {fs:?} / spectrum_ivar {is:?} do not match {n} object ids")));
    }
    let l = fs[1];
    let shared_lambda = ls == [l];
    if !shared_lambda && ls != fs {
        return Err(fmt_err(path, format!("spectrum_lambda has shape {ls:?}; expected ({n}, {l}) or ({l},)")));
    }
    let mask = flags(&f, path, "spectrum_mask")?;
    let z = ["z", "Z"]
        .iter()
        .find_map(|k| f.dataset(k).ok())
        .map(|d| d.read_numeric_as::<f64>())
        .transpose()
        .map_err(|e| fmt_err(path, format!("`z`: {e}")))?;
    let pos = coords(&f, path, n)?;
    let mut out = Vec::with_capacity(n);
    let mut skipped = Vec::new();
    for i in 0..n {
        let s = i * l..(i + 1) * l;
        let fl = flux[s.clone()].to_vec();
        let m: Vec<bool> = mask.as_ref().map(|m| m[s.clone()].to_vec()).unwrap_or_else(|| vec![false; l]);
        let iv: Vec<f32> = ivar[s.clone()].iter().zip(&m).map(|(&w, &mk)| if mk { 0.0 } else { w }).collect();
        let wave: Vec<f64> = if shared_lambda {
            lambda.iter().map(|&v| v as f64).collect()
        } else {
            lambda[s].iter().map(|&v| v as f64).collect()
        };
        match check_spectrum(&p, &ids[i], &fl, &iv) {
            Ok(()) => out.push(SpectrumRecord {
                object_id: ids[i].clone(),
                ra: pos[i].0,
                dec: pos[i].1,
                redshift: z.as_ref().map(|z| z[i]),
                wavelength: wave,
                flux: fl,
                ivar: iv,
                mask: m,
                provenance: format!("MMU spectra {p} row {i}"),
            }),
            Err(e) if on_bad == OnBad::Skip => {
                tracing::warn!("skipped: {}", e.brief());
                skipped.push((ids[i].clone(), e.brief()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, skipped))
}

pub fn read_images(path: &Path, on_bad: OnBad) -> super::ReadResult<ImageRecord> {
    let f = open(path)?;
    let p = path.display().to_string();
    let ids = ids(&f, path)?;
    let n = ids.len();
    let (shape, arr) = floats(&f, path, "image_array")?;
    let [sn, b, h, w] = shape[..] else {
        return Err(fmt_err(path, format!("image_array has shape {shape:?}; expected (N, bands, H, W)")));
    };
    if sn != n {
        return Err(fmt_err(path, format!("image_array has {sn} rows for {n} object ids")));
    }
    let bands: Vec<String> = match f.dataset("image_band") {
        Ok(d) => {
            let v = d.read_strings().map_err(|e| fmt_err(path, format!("`image_band`: {e}")))?;
            v.into_iter().take(b).map(|s| s.trim_end_matches(['\0', ' ']).to_string()).collect()
        }
        Err(_) => return Err(fmt_err(path, "no `image_band` dataset naming the bands")),
    };
    let ivar = match f.dataset("image_ivar") {
        Ok(_) => Some(floats(&f, path, "image_ivar")?.1),
        Err(_) => None,
    };
    let mask = flags(&f, path, "image_mask")?;
    let scale = match f.dataset("image_scale") {
        Ok(_) => Some(floats(&f, path, "image_scale")?.1),
        Err(_) => None,
    };
    let pos = coords(&f, path, n)?;
    let per = b * h * w;
    let mut out = Vec::with_capacity(n);
    let mut skipped = Vec::new();
    for i in 0..n {
        let src = &arr[i * per..(i + 1) * per];
        // (bands, H, W) → (H, W, bands); masked pixels are set to 0 and flagged.
        let mut flux = vec![0f32; per];
        let mut m = vec![false; per];
        let mut iv = ivar.as_ref().map(|_| vec![0f32; per]);
        let mut bad = None;
        for k in 0..b {
            for y in 0..h {
                for x in 0..w {
                    let s = (k * h + y) * w + x;
                    let d = (y * w + x) * b + k;
                    let masked = mask.as_ref().is_some_and(|mm| mm[i * per + s]);
                    m[d] = masked;
                    if let (Some(iv), Some(all)) = (iv.as_mut(), ivar.as_ref()) {
                        iv[d] = if masked { 0.0 } else { all[i * per + s] };
                    }
                    if masked {
                        continue;
                    }
                    if !src[s].is_finite() && bad.is_none() {
                        bad = Some(format!(
                            "image band {} pixel ({y}, {x}) = {}",
                            bands.get(k).map(String::as_str).unwrap_or("?"),
                            src[s]
                        ));
                    }
                    flux[d] = src[s];
                }
            }
        }
        if let Some(detail) = bad {
            let e = DataError::BadObject { path: p.clone(), object: ids[i].clone(), detail };
            if on_bad == OnBad::Skip {
                tracing::warn!("skipped: {}", e.brief());
                skipped.push((ids[i].clone(), e.brief()));
                continue;
            }
            return Err(e);
        }
        out.push(ImageRecord {
            object_id: ids[i].clone(),
            ra: pos[i].0,
            dec: pos[i].1,
            bands: bands.clone(),
            height: h,
            width: w,
            flux,
            ivar: iv,
            mask: Some(m),
            pixel_scale: scale.as_ref().map(|s| s[i * (s.len() / n.max(1))] as f64).unwrap_or(0.262),
            provenance: format!("MMU images {p} row {i}"),
        });
    }
    Ok((out, skipped))
}
