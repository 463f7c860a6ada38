//! Wavelength grids: the DESI grid AstroCLIP trains on, inverse-variance combination of
//! spectrograph arms that share its 0.8 Å lattice, and flux-conserving resampling for spectra
//! on other grids.

/// DESI spectrograph grid: 3600–9824 Å in 0.8 Å steps.
pub const DESI_LAMBDA_MIN: f64 = 3600.0;
pub const DESI_DLAMBDA: f64 = 0.8;
pub const DESI_NBINS: usize = 7781;

/// The 7781 bin centres 3600, 3600.8, …, 9824 Å.
pub fn desi_grid() -> Vec<f64> {
    (0..DESI_NBINS).map(|i| DESI_LAMBDA_MIN + DESI_DLAMBDA * i as f64).collect()
}

/// Checks a wavelength grid is usable: every value finite and positive, strictly increasing.
/// Returns what is wrong, naming the first offending pixel.
pub fn check_wavelengths(wave: &[f64]) -> Result<(), String> {
    if let Some(p) = wave.iter().position(|w| !w.is_finite() || *w <= 0.0) {
        return Err(format!("wavelength[{p}] = {} is not a finite positive wavelength", wave[p]));
    }
    if let Some(p) = wave.windows(2).position(|w| w[1] <= w[0]) {
        return Err(format!(
            "wavelengths are not strictly increasing: [{p}] = {}, [{}] = {}",
            wave[p],
            p + 1,
            wave[p + 1]
        ));
    }
    Ok(())
}

/// One arm (camera) of a spectrum: wavelengths, flux, ivar and the instrument mask (non-zero =
/// bad pixel).
pub struct Arm<'a> {
    pub name: &'a str,
    pub wavelength: &'a [f64],
    pub flux: &'a [f32],
    pub ivar: &'a [f32],
    pub mask: &'a [i64],
}

/// Combines arms onto the DESI grid by inverse-variance weighting where they overlap, as
/// desispec's `coadd_cameras` does: every arm pixel must sit on the grid's lattice (within
/// 1e-3 Å, finite and increasing); pixels with a non-zero mask or ivar ≤ 0 are excluded. Output bins no arm covers
/// get flux 0, ivar 0. Returns the arm whose grid is off the lattice as the error.
pub fn combine_arms_desi(arms: &[Arm<'_>]) -> Result<(Vec<f32>, Vec<f32>), String> {
    let mut num = vec![0f64; DESI_NBINS];
    let mut den = vec![0f64; DESI_NBINS];
    for arm in arms {
        check_wavelengths(arm.wavelength).map_err(|e| format!("arm {}: {e}", arm.name))?;
        let n = arm.wavelength.len();
        if arm.flux.len() != n || arm.ivar.len() != n || arm.mask.len() != n {
            return Err(format!(
                "arm {}: {n} wavelengths but {} flux, {} ivar and {} mask values",
                arm.name,
                arm.flux.len(),
                arm.ivar.len(),
                arm.mask.len()
            ));
        }
        for (p, &w) in arm.wavelength.iter().enumerate() {
            let x = (w - DESI_LAMBDA_MIN) / DESI_DLAMBDA;
            let j = x.round();
            if (x - j).abs() * DESI_DLAMBDA > 1e-3 || j < 0.0 || j as usize >= DESI_NBINS {
                return Err(format!(
                    "arm {} pixel {p} at {w} Å is not on the DESI 0.8 Å lattice 3600–9824 Å",
                    arm.name
                ));
            }
            let iv = arm.ivar[p] as f64;
            if arm.mask[p] != 0 || iv <= 0.0 || !iv.is_finite() {
                continue;
            }
            let j = j as usize;
            num[j] += iv * arm.flux[p] as f64;
            den[j] += iv;
        }
    }
    let flux = num.iter().zip(&den).map(|(n, d)| if *d > 0.0 { (n / d) as f32 } else { 0.0 }).collect();
    let ivar = den.iter().map(|&d| d as f32).collect();
    Ok((flux, ivar))
}

/// Bin edges from bin centres (midpoints; the outer edges mirror the first/last half-widths).
pub fn edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    let mut e = Vec::with_capacity(n + 1);
    if n == 0 {
        return e;
    }
    if n == 1 {
        return vec![centres[0] - 0.5, centres[0] + 0.5];
    }
    e.push(centres[0] - 0.5 * (centres[1] - centres[0]));
    for i in 1..n {
        e.push(0.5 * (centres[i - 1] + centres[i]));
    }
    e.push(centres[n - 1] + 0.5 * (centres[n - 1] - centres[n - 2]));
    e
}

/// Flux-conserving resampling of a flux density onto new bin centres (the SpectRes scheme,
/// Carnall 2017, arXiv:1705.05165): each output bin is the overlap-width-weighted mean of the
/// input bins it covers, and its variance `Σ(wᵢ² σᵢ²) / (Σwᵢ)²`. Input pixels with ivar ≤ 0
/// are excluded; an output bin whose good input overlap covers less than half its width, or
/// that lies outside the input range, gets flux 0 and ivar 0.
///
/// Both grids must pass [`check_wavelengths`] and `flux`/`ivar` match `src_wave` in length
/// (callers check; a mismatch here is a programming error).
pub fn resample(src_wave: &[f64], flux: &[f32], ivar: &[f32], dst_wave: &[f64]) -> (Vec<f32>, Vec<f32>) {
    assert!(flux.len() == src_wave.len() && ivar.len() == src_wave.len(), "resample: lengths differ");
    let se = edges(src_wave);
    let de = edges(dst_wave);
    let mut out_f = vec![0f32; dst_wave.len()];
    let mut out_iv = vec![0f32; dst_wave.len()];
    let mut start = 0usize;
    for j in 0..dst_wave.len() {
        let (lo, hi) = (de[j], de[j + 1]);
        while start < src_wave.len() && se[start + 1] <= lo {
            start += 1;
        }
        let (mut wsum, mut fsum, mut var) = (0f64, 0f64, 0f64);
        let mut i = start;
        while i < src_wave.len() && se[i] < hi {
            let overlap = se[i + 1].min(hi) - se[i].max(lo);
            if overlap > 0.0 && ivar[i] > 0.0 && flux[i].is_finite() {
                wsum += overlap;
                fsum += overlap * flux[i] as f64;
                var += overlap * overlap / ivar[i] as f64;
            }
            i += 1;
        }
        if wsum >= 0.5 * (hi - lo) && wsum > 0.0 {
            out_f[j] = (fsum / wsum) as f32;
            out_iv[j] = (wsum * wsum / var) as f32;
        }
    }
    (out_f, out_iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_conserves_integrated_flux() {
        // A line on a fine grid, resampled onto a 4× coarser grid: ∫f dλ is unchanged.
        let src: Vec<f64> = (0..400).map(|i| 5000.0 + 0.25 * i as f64).collect();
        let flux: Vec<f32> = src.iter().map(|w| (1.0 + 5.0 * (-((w - 5050.0) / 3.0).powi(2)).exp()) as f32).collect();
        let ivar = vec![4.0f32; src.len()];
        let dst: Vec<f64> = (1..99).map(|i| 5000.375 + 1.0 * i as f64).collect();
        let (f, iv) = resample(&src, &flux, &ivar, &dst);
        let int_src: f64 = src
            .iter()
            .zip(&flux)
            .filter(|(w, _)| **w > 5001.0 - 0.125 && **w < 5098.8)
            .map(|(_, f)| 0.25 * *f as f64)
            .sum();
        let int_dst: f64 = f.iter().map(|&v| v as f64).sum::<f64>();
        assert!((int_src - int_dst).abs() / int_src < 1e-3, "{int_src} vs {int_dst}");
        // Averaging 4 pixels of ivar 4 gives ivar 16.
        assert!((iv[10] - 16.0).abs() < 1e-3, "{}", iv[10]);
    }

    #[test]
    fn arms_combine_by_inverse_variance() {
        let w1: Vec<f64> = (0..10).map(|i| 3600.0 + 0.8 * i as f64).collect();
        let w2: Vec<f64> = (5..15).map(|i| 3600.0 + 0.8 * i as f64).collect();
        let (f1, f2) = (vec![1.0f32; 10], vec![4.0f32; 10]);
        let (i1, i2) = (vec![1.0f32; 10], vec![3.0f32; 10]);
        let mut m2 = vec![0i64; 10];
        m2[1] = 1; // grid bin 6 from arm 2 is masked
        let arms = [
            Arm { name: "b", wavelength: &w1, flux: &f1, ivar: &i1, mask: &[0; 10] },
            Arm { name: "r", wavelength: &w2, flux: &f2, ivar: &i2, mask: &m2 },
        ];
        let (f, iv) = combine_arms_desi(&arms).unwrap();
        assert_eq!((f[0], iv[0]), (1.0, 1.0));
        assert!((f[5] - (1.0 + 12.0) / 4.0).abs() < 1e-6 && iv[5] == 4.0);
        assert_eq!((f[6], iv[6]), (1.0, 1.0));
        assert_eq!((f[14], iv[14]), (4.0, 3.0));
        assert_eq!((f[20], iv[20]), (0.0, 0.0));
        let off: Vec<f64> = w1.iter().map(|w| w + 0.3).collect();
        let bad = [Arm { name: "z", wavelength: &off, flux: &f1, ivar: &i1, mask: &[0; 10] }];
        assert!(combine_arms_desi(&bad).unwrap_err().contains("arm z"));
    }
}
