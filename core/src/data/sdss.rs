//! SDSS/BOSS `spec-PLATE-MJD-FIBER.fits` (SDSS data model `spec`): the COADD table (`loglam`
//! = log10 λ/Å, `flux` in 1e-17 erg/s/cm²/Å, `ivar`, `and_mask`) resampled flux-conserving onto
//! a target grid (the DESI grid by default), with the redshift, position and SPECOBJID from the
//! SPECOBJ table.

use std::path::Path;

use super::fits::FitsFile;
use super::grid::{check_wavelengths, resample};
use super::{DataError, SpectrumRecord, check_spectrum, check_usable};

/// Reads one SDSS spectrum and resamples it onto `grid` (Å). Pixels with a non-zero
/// `and_mask` get ivar 0 before resampling; grid bins outside the SDSS range get ivar 0.
pub fn read_spec(path: &Path, grid: &[f64]) -> Result<SpectrumRecord, DataError> {
    let f = FitsFile::open(path)?;
    let p = path.display().to_string();
    let coadd = f.hdu("COADD").or_else(|_| {
        // Older spec files keep the coadd in HDU 1 without EXTNAME.
        f.hdus.get(1).ok_or_else(|| DataError::Content { path: p.clone(), detail: "no COADD table (HDU 1)".into() })
    })?;
    let (loglam, _) = f.column_f64(coadd, "loglam")?;
    let (flux, _) = f.column_f64(coadd, "flux")?;
    let (ivar, _) = f.column_f64(coadd, "ivar")?;
    let and_mask: Vec<i64> =
        if f.has_column(coadd, "and_mask") { f.column_i64(coadd, "and_mask")? } else { vec![0; loglam.len()] };
    let (object_id, redshift, ra, dec) = match f.hdu("SPECOBJ") {
        Ok(so) => {
            let id =
                f.column_str(so, "SPECOBJID").ok().and_then(|v| v.into_iter().next()).map(|s| s.trim().to_string());
            let first = |name: &str| f.column_f64(so, name).ok().and_then(|(v, _)| v.first().copied());
            (id, first("Z"), first("PLUG_RA"), first("PLUG_DEC"))
        }
        Err(_) => (None, None, None, None),
    };
    let object_id = object_id
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| p.clone()));
    if flux.len() != loglam.len() || ivar.len() != loglam.len() || and_mask.len() != loglam.len() {
        return Err(DataError::Content {
            path: p,
            detail: format!(
                "COADD columns differ in length: loglam {}, flux {}, ivar {}, and_mask {}",
                loglam.len(),
                flux.len(),
                ivar.len(),
                and_mask.len()
            ),
        });
    }
    let wave: Vec<f64> = loglam.iter().map(|l| 10f64.powf(*l)).collect();
    check_wavelengths(&wave).map_err(|e| DataError::Content { path: p.clone(), detail: format!("loglam: {e}") })?;
    let flux32: Vec<f32> = flux.iter().map(|&v| v as f32).collect();
    let ivar32: Vec<f32> = ivar.iter().zip(&and_mask).map(|(&w, &m)| if m != 0 { 0.0 } else { w as f32 }).collect();
    check_spectrum(&p, &object_id, &flux32, &ivar32)?;
    check_wavelengths(grid).map_err(|e| DataError::Content { path: p.clone(), detail: format!("target grid: {e}") })?;
    let (rf, riv) = resample(&wave, &flux32, &ivar32, grid);
    check_usable(&p, &object_id, &riv)?;
    let mask = riv.iter().map(|&w| w <= 0.0).collect();
    Ok(SpectrumRecord {
        object_id,
        ra,
        dec,
        redshift,
        wavelength: grid.to_vec(),
        flux: rf,
        ivar: riv,
        mask,
        provenance: format!("SDSS spec {p}, resampled flux-conserving from {} log-λ pixels", wave.len()),
    })
}
