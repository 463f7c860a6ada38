//! Multimodal Universe (MMU; The Multimodal Universe Collaboration 2024, NeurIPS D&B) HDF5
//! shards, `…/healpix=N/*.hdf5`: spectrum files (`spectrum_flux`, `spectrum_ivar`,
//! `spectrum_lambda`, `spectrum_mask`, `spectrum_lsf_sigma`, `object_id`, `ra`, `dec`, `z`) and
//! image files (`image_array` (N, bands, H, W), `image_band`, `image_ivar`, `image_mask`,
//! `image_psf_fwhm`, `image_scale`, `object_id`, `ra`, `dec`). Field names follow MMU's
//! `scripts/desi/desi.py` and `scripts/legacysurvey/legacysurvey.py`.

use std::path::Path;

use rust_hdf5::{H5Dataset, H5File};

use super::grid::check_wavelengths;
use super::{DataError, ImageRecord, OnBad, SpectrumRecord, check_spectrum, check_usable, h5};

const FORMAT: &str = "Multimodal Universe HDF5";

fn fmt_err(path: &Path, detail: impl Into<String>) -> DataError {
    h5::fmt_err(path, FORMAT, detail)
}

fn open(path: &Path) -> Result<H5File, DataError> {
    h5::open(path, FORMAT)
}

fn dataset(f: &H5File, path: &Path, name: &str) -> Result<H5Dataset, DataError> {
    f.dataset(name).map_err(|_| fmt_err(path, format!("no `{name}` dataset; is this an MMU file of this modality?")))
}

fn floats(f: &H5File, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    h5::read_all::<f32>(&dataset(f, path, name)?, path, FORMAT, name)
}

/// A per-object column (`ra`, `z`, …): exactly one value per object id.
fn per_object(f: &H5File, path: &Path, name: &str, n: usize) -> Result<Option<Vec<f64>>, DataError> {
    let Ok(d) = f.dataset(name) else { return Ok(None) };
    let (_, v) = h5::read_all::<f64>(&d, path, FORMAT, name)?;
    if v.len() != n {
        return Err(fmt_err(path, format!("`{name}` has {} values for {n} object ids", v.len())));
    }
    Ok(Some(v))
}

/// Bool/uint8 masks (h5py writes numpy bools as an int8 enum): any non-zero byte is set. The
/// mask must have `expected` elements (those of the array it masks).
fn flags(f: &H5File, path: &Path, name: &str, expected: usize) -> Result<Option<Vec<bool>>, DataError> {
    let Ok(d) = f.dataset(name) else { return Ok(None) };
    h5::check_declared(&d, path, FORMAT, name)?;
    let v = match h5::guarded(path, FORMAT, &format!("reading `{name}`"), || Ok(d.read_numeric_as::<u8>().ok()))? {
        Some(v) => v.into_iter().map(|b| b != 0).collect::<Vec<_>>(),
        None => {
            let raw = h5::guarded(path, FORMAT, &format!("reading `{name}`"), || {
                d.read_raw_bytes().map_err(|e| fmt_err(path, format!("`{name}`: {e}")))
            })?;
            let n = d.total_elements();
            if raw.len() != n {
                return Err(fmt_err(
                    path,
                    format!("`{name}` has {}-byte elements; expected a bool/uint8 mask", raw.len() / n.max(1)),
                ));
            }
            raw.into_iter().map(|b| b != 0).collect()
        }
    };
    if v.len() != expected {
        return Err(fmt_err(path, format!("`{name}` has {} values; the array it masks has {expected}", v.len())));
    }
    Ok(Some(v))
}

fn ids(f: &H5File, path: &Path) -> Result<Vec<String>, DataError> {
    h5::read_ids(&dataset(f, path, "object_id")?, path, FORMAT, "object_id")
}

type Coords = Vec<(Option<f64>, Option<f64>)>;

fn coords(f: &H5File, path: &Path, n: usize) -> Result<Coords, DataError> {
    let (ra, dec) = (per_object(f, path, "ra", n)?, per_object(f, path, "dec", n)?);
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
    if l == 0 || l > super::MAX_SPECTRUM_BINS {
        return Err(fmt_err(
            path,
            format!("spectrum_flux has {l} bins per object; 1 to {} are read", super::MAX_SPECTRUM_BINS),
        ));
    }
    let shared_lambda = ls == [l];
    if !shared_lambda && ls != fs {
        return Err(fmt_err(path, format!("spectrum_lambda has shape {ls:?}; expected ({n}, {l}) or ({l},)")));
    }
    let mask = flags(&f, path, "spectrum_mask", flux.len())?;
    let z = match per_object(&f, path, "z", n)? {
        Some(z) => Some(z),
        None => per_object(&f, path, "Z", n)?,
    };
    if shared_lambda {
        check_wavelengths(&lambda.iter().map(|&v| v as f64).collect::<Vec<_>>())
            .map_err(|e| fmt_err(path, format!("spectrum_lambda: {e}")))?;
    }
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
        let checked = check_wavelengths(&wave)
            .map_err(|e| DataError::BadObject {
                path: p.clone(),
                object: ids[i].clone(),
                detail: format!("spectrum_lambda row {i}: {e}"),
            })
            .and_then(|()| check_spectrum(&p, &ids[i], &fl, &iv))
            .and_then(|()| check_usable(&p, &ids[i], &iv));
        match checked {
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
    if b == 0 || h == 0 || w == 0 || h > super::MAX_IMAGE_SIDE || w > super::MAX_IMAGE_SIDE {
        return Err(fmt_err(
            path,
            format!(
                "image_array has shape {shape:?}; images need ≥ 1 band and 1 to {} px a side",
                super::MAX_IMAGE_SIDE
            ),
        ));
    }
    // read_all checked the values number N × bands × H × W, so `per` cannot overflow.
    let per = b * h * w;
    let bands: Vec<String> = match f.dataset("image_band") {
        Ok(d) => {
            h5::check_declared(&d, path, FORMAT, "image_band")?;
            let v = h5::guarded(path, FORMAT, "reading `image_band`", || {
                d.read_strings().map_err(|e| fmt_err(path, format!("`image_band`: {e}")))
            })?;
            // One name per band, either once for the file or once per object (MMU writes it
            // per object); a list of another length cannot say which plane is which band.
            let names: Vec<String> = v.iter().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).collect();
            if names.len() == b || (names.len() == n * b && n > 0) {
                if let Some(k) = names.chunks(b.max(1)).position(|c| c != &names[..b]) {
                    return Err(fmt_err(
                        path,
                        format!("image_band differs between objects (object {k}: {:?})", names.chunks(b.max(1)).nth(k)),
                    ));
                }
                names[..b].to_vec()
            } else {
                return Err(fmt_err(
                    path,
                    format!(
                        "image_band names {} bands ({}) but image_array has {b} band planes; each plane must be named",
                        names.len(),
                        names.iter().take(8).cloned().collect::<Vec<_>>().join(",")
                    ),
                ));
            }
        }
        Err(_) => return Err(fmt_err(path, "no `image_band` dataset naming the bands")),
    };
    let ivar = match f.dataset("image_ivar") {
        Ok(_) => {
            let (ishape, iv) = floats(&f, path, "image_ivar")?;
            if iv.len() != arr.len() {
                return Err(fmt_err(path, format!("image_ivar has shape {ishape:?}; image_array has {shape:?}")));
            }
            Some(iv)
        }
        Err(_) => None,
    };
    let mask = flags(&f, path, "image_mask", arr.len())?;
    let scale = match f.dataset("image_scale") {
        Ok(_) => {
            let (sshape, sc) = floats(&f, path, "image_scale")?;
            // One scale for the file, one per object, or one per object and band (MMU's
            // Legacy Survey shards: (N, bands)); the first band's is used.
            if !(sc.len() == 1 || (n > 0 && (sc.len() == n || sc.len() == n * b))) {
                return Err(fmt_err(
                    path,
                    format!(
                        "image_scale has shape {sshape:?}; expected one value, one per object ({n}) or one per object \
                         and band ({n}, {b})"
                    ),
                ));
            }
            if let Some(bad) = sc.iter().find(|v| !v.is_finite() || **v <= 0.0) {
                return Err(fmt_err(
                    path,
                    format!("image_scale holds {bad}; a pixel scale is a positive arcsec value"),
                ));
            }
            Some(sc)
        }
        Err(_) => None,
    };
    let pos = coords(&f, path, n)?;
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
            pixel_scale: scale
                .as_ref()
                .map(|s| s[if s.len() == 1 { 0 } else { i * (s.len() / n) }] as f64)
                .unwrap_or(0.262),
            provenance: format!("MMU images {p} row {i}"),
        });
    }
    Ok((out, skipped))
}
