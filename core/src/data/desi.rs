//! DESI coadd FITS (`coadd-*.fits`, DESI data model `DESI_SPECTRO_REDUX/…/coadd-SURVEY-PROGRAM-PIXNUM`):
//! the B, R and Z arms (`{ARM}_WAVELENGTH`, `_FLUX`, `_IVAR`, `_MASK`) combined onto the
//! 3600–9824 Å / 0.8 Å / 7781-bin grid by inverse-variance weighting where arms overlap (masked
//! pixels excluded), with TARGETID/TARGET_RA/TARGET_DEC from FIBERMAP and, when a redrock file
//! is given, Z joined by TARGETID.

use std::collections::HashMap;
use std::path::Path;

use super::fits::FitsFile;
use super::grid::{Arm, combine_arms_desi, desi_grid};
use super::{DataError, OnBad, SpectrumRecord, check_spectrum, check_usable};

pub const ARMS: [&str; 3] = ["B", "R", "Z"];

/// What a read produced besides the spectra: objects skipped (with the reason) and warnings.
#[derive(Debug, Default, Clone)]
pub struct ReadLog {
    pub skipped: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Redshifts by TARGETID from a redrock file's REDSHIFTS HDU (`Z`, `ZWARN`).
pub fn read_redrock(path: &Path) -> Result<HashMap<i64, (f64, i64)>, DataError> {
    let f = FitsFile::open(path)?;
    let h = f.hdu("REDSHIFTS")?;
    let ids = f.column_i64(h, "TARGETID")?;
    let (z, _) = f.column_f64(h, "Z")?;
    let zwarn = f.column_i64(h, "ZWARN")?;
    Ok(ids.into_iter().zip(z.into_iter().zip(zwarn)).collect())
}

pub fn read_coadd(
    path: &Path,
    redrock: Option<&Path>,
    on_bad: OnBad,
) -> Result<(Vec<SpectrumRecord>, ReadLog), DataError> {
    let f = FitsFile::open(path)?;
    let p = path.display().to_string();
    let mut log = ReadLog::default();
    let fm = f.hdu("FIBERMAP")?;
    let ids = f.column_i64(fm, "TARGETID")?;
    let n = ids.len();
    let coord = |name: &str| -> Result<Vec<Option<f64>>, DataError> {
        if f.has_column(fm, name) {
            Ok(f.column_f64(fm, name)?.0.into_iter().map(Some).collect())
        } else {
            Ok(vec![None; n])
        }
    };
    let (ra, dec) = (coord("TARGET_RA")?, coord("TARGET_DEC")?);
    let z = match redrock {
        Some(r) => Some(read_redrock(r)?),
        None => None,
    };
    struct ArmData {
        name: &'static str,
        wave: Vec<f64>,
        len: usize,
        flux: Vec<f64>,
        ivar: Vec<f64>,
        mask: Vec<f64>,
    }
    let mut arms = Vec::new();
    for arm in ARMS {
        if !f.has_hdu(&format!("{arm}_FLUX")) {
            let msg = format!("arm {arm} is missing (no {arm}_FLUX HDU); DESI coadds have B, R and Z");
            match on_bad {
                OnBad::Error => {
                    return Err(DataError::Content {
                        path: p.clone(),
                        detail: format!("{msg} (set data.on_bad = \"skip\" to combine the arms present)"),
                    });
                }
                OnBad::Skip => {
                    tracing::warn!(file = %p, "{msg}; combining the arms present");
                    log.warnings.push(msg);
                    continue;
                }
            }
        }
        let (_, wave) = f.image(f.hdu(&format!("{arm}_WAVELENGTH"))?)?;
        let (fs, flux) = f.image(f.hdu(&format!("{arm}_FLUX"))?)?;
        let (is, ivar) = f.image(f.hdu(&format!("{arm}_IVAR"))?)?;
        let mask = match f.hdu(&format!("{arm}_MASK")) {
            Ok(h) => {
                let (ms, m) = f.image(h)?;
                if ms != fs {
                    return Err(DataError::Content {
                        path: p.clone(),
                        detail: format!("{arm}_MASK has shape {ms:?}, {arm}_FLUX {fs:?}"),
                    });
                }
                m
            }
            Err(_) => vec![0.0; flux.len()],
        };
        if fs != [n, wave.len()] || is != fs {
            return Err(DataError::Content {
                path: p.clone(),
                detail: format!(
                    "arm {arm}: FLUX {fs:?} and IVAR {is:?} do not match ({n} FIBERMAP rows, {} wavelengths)",
                    wave.len()
                ),
            });
        }
        arms.push(ArmData { name: arm, len: wave.len(), wave, flux, ivar, mask });
    }
    if arms.is_empty() {
        return Err(DataError::Content { path: p, detail: "no arm (B_FLUX, R_FLUX, Z_FLUX) present".into() });
    }
    let mut out = Vec::with_capacity(n);
    let grid = desi_grid();
    for (row, &id) in ids.iter().enumerate() {
        let object = id.to_string();
        let buf: Vec<(Vec<f32>, Vec<f32>, Vec<i64>)> = arms
            .iter()
            .map(|a| {
                let s = row * a.len..(row + 1) * a.len;
                (
                    a.flux[s.clone()].iter().map(|&v| v as f32).collect(),
                    a.ivar[s.clone()].iter().map(|&v| v as f32).collect(),
                    a.mask[s].iter().map(|&v| v as i64).collect(),
                )
            })
            .collect();
        let result = (|| {
            for (a, (fl, iv, m)) in arms.iter().zip(&buf) {
                // Masked pixels may hold anything; only unmasked ones must be usable.
                let iv_eff: Vec<f32> = iv.iter().zip(m).map(|(&w, &mk)| if mk != 0 { 0.0 } else { w }).collect();
                check_spectrum(&p, &object, fl, &iv_eff).map_err(|e| match e {
                    DataError::BadObject { path, object, detail } => {
                        DataError::BadObject { path, object, detail: format!("arm {}: {detail}", a.name) }
                    }
                    other => other,
                })?;
            }
            let views: Vec<Arm<'_>> = arms
                .iter()
                .zip(&buf)
                .map(|(a, (fl, iv, m))| Arm { name: a.name, wavelength: &a.wave, flux: fl, ivar: iv, mask: m })
                .collect();
            let (flux, ivar) =
                combine_arms_desi(&views).map_err(|detail| DataError::Content { path: p.clone(), detail })?;
            check_usable(&p, &object, &ivar)?;
            Ok((flux, ivar))
        })();
        match result {
            Ok((flux, ivar)) => {
                let redshift = z.as_ref().and_then(|m| m.get(&id)).map(|(z, _)| *z);
                if z.is_some() && redshift.is_none() {
                    let why = "TARGETID has no row in the redrock file".to_string();
                    match on_bad {
                        OnBad::Error => return Err(DataError::BadObject { path: p.clone(), object, detail: why }),
                        OnBad::Skip => {
                            log.skipped.push((object, why));
                            continue;
                        }
                    }
                }
                let mask = ivar.iter().map(|&w| w <= 0.0).collect();
                out.push(SpectrumRecord {
                    object_id: object,
                    ra: ra[row],
                    dec: dec[row],
                    redshift,
                    wavelength: grid.clone(),
                    flux,
                    ivar,
                    mask,
                    provenance: format!("DESI coadd {p} row {row}"),
                });
            }
            Err(e @ DataError::BadObject { .. }) if on_bad == OnBad::Skip => {
                tracing::warn!("skipped: {}", e.brief());
                log.skipped.push((object, e.brief()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, log))
}
