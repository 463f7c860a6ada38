//! The spectral energy distribution of one galaxy, in the observer frame, and what both
//! modalities measure of it: broad-band AB fluxes (nanomaggies) through the DECam curves for
//! the images, and a DESI-grid spectrum (1e-17 erg/s/cm²/Å) — one SED feeds both.
//!
//! Continuum: bulge = CWW E template, disk = a point on the E → Sbc → Scd → Im sequence; each
//! tilted by `(λ/5500 Å)^α` with `α = 0.5 [Z/H] + 0.3 log(age/5 Gyr)` (metal-rich and old
//! populations are redder). Normalised so that rest 5500 Å carries L_V = M*/(M/L)_V with the Sun
//! at M_V(AB) = 4.81.
//!
//! Emission lines (disk only): L(Hα) = SFR / 7.9e-42 erg/s (Kennicutt 1998); Case-B Balmer
//! ratios (Hβ/Hα = 1/2.86, Hγ 0.468, Hδ 0.259 of Hβ); metallicity-dependent [NII]/Hα and
//! [OIII]/Hβ; [OII] and [SII] scaled to Hβ and Hα; dust A(Hα) rising with mass, other lines
//! with Calzetti-like k(λ)/k(Hα). Gaussian profiles with σ_v = 70 km/s plus 1 Å instrumental.

use super::cosmology::{Cosmology, MPC_CM};
use super::population::{Galaxy, log_mass_to_light};
use super::templates::{C_ANGSTROM_S, Templates};

/// (rest vacuum wavelength Å, name) of the emission lines modelled.
pub const LINES: [(f64, &str); 12] = [
    (3727.09, "[OII]3727"),
    (3729.88, "[OII]3729"),
    (4102.89, "Hδ"),
    (4341.68, "Hγ"),
    (4862.68, "Hβ"),
    (4960.30, "[OIII]4960"),
    (5008.24, "[OIII]5008"),
    (6549.86, "[NII]6550"),
    (6564.61, "Hα"),
    (6585.27, "[NII]6585"),
    (6718.29, "[SII]6718"),
    (6732.67, "[SII]6733"),
];

#[derive(Debug, Clone)]
pub struct ObservedSed<'a> {
    templates: &'a Templates,
    z: f64,
    bt: f64,
    disk_type: f64,
    alpha: f64,
    /// Observed f_λ of the rest-frame template unit, in erg/s/cm²/Å.
    scale: f64,
    /// Observed line fluxes (erg/s/cm²) and observed-frame centres/sigmas (Å).
    pub lines: Vec<(f64, f64, f64)>,
}

impl<'a> ObservedSed<'a> {
    pub fn new(templates: &'a Templates, cosmo: &Cosmology, g: &Galaxy) -> Self {
        let z = g.redshift;
        let dl_cm = cosmo.luminosity_distance(z) * MPC_CM;
        let log_l = g.log_mass - log_mass_to_light(g.age, g.metallicity);
        // Absolute AB magnitude at rest 5500 Å, then f_λ at 10 pc, then observed.
        let abs_mag = 4.81 - 2.5 * log_l;
        let fnu_10pc = 3631e-23 * 10f64.powf(-0.4 * abs_mag);
        let flam_10pc = fnu_10pc * C_ANGSTROM_S / (5500.0 * 5500.0);
        let ten_pc_cm = 10.0 * 3.085_677_581e18;
        let scale = flam_10pc * (ten_pc_cm / dl_cm).powi(2) / (1.0 + z);

        let sfr = 10f64.powf(g.log_mass + g.log_ssfr);
        let l_ha = sfr / 7.9e-42;
        let f_ha = l_ha / (4.0 * std::f64::consts::PI * dl_cm * dl_cm);
        let a_ha = (0.3 + 0.5 * (g.log_mass - 9.5)).clamp(0.0, 2.0);
        let att = |k_ratio: f64| 10f64.powf(-0.4 * a_ha * k_ratio);
        let hb = f_ha / 2.86;
        let log_n2 = (-0.45 + 0.9 * g.metallicity).clamp(-1.5, -0.2);
        let log_r3 = (0.1 - 1.0 * g.metallicity + 0.3 * (g.log_ssfr + 10.0)).clamp(-1.0, 0.8);
        let oii = hb * 2.5 * 10f64.powf(0.1 - 0.3 * g.metallicity);
        let fluxes = [
            oii / 2.3 * att(1.9),
            oii * 1.3 / 2.3 * att(1.9),
            hb * 0.259 * att(1.6),
            hb * 0.468 * att(1.55),
            hb * att(1.43),
            hb * 10f64.powf(log_r3) / 2.98 * att(1.41),
            hb * 10f64.powf(log_r3) * att(1.40),
            f_ha * 10f64.powf(log_n2) / 3.0 * att(1.0),
            f_ha * att(1.0),
            f_ha * 10f64.powf(log_n2) * att(1.0),
            f_ha * 0.14 * att(0.98),
            f_ha * 0.11 * att(0.98),
        ];
        let disk = 1.0 - g.bt_ratio;
        let lines = LINES
            .iter()
            .zip(fluxes)
            .map(|(&(lam, _), f)| {
                let center = lam * (1.0 + z);
                let sigma = ((center * 70.0 / 299_792.458).powi(2) + 1.0).sqrt();
                (f * disk, center, sigma)
            })
            .collect();
        Self {
            templates,
            z,
            bt: g.bt_ratio,
            disk_type: g.disk_type,
            alpha: 0.5 * g.metallicity + 0.3 * (g.age / 5.0).log10(),
            scale,
            lines,
        }
    }

    /// Continuum f_λ (erg/s/cm²/Å) of the bulge and the disk at observed wavelength `lam`.
    #[inline]
    pub fn continuum_parts(&self, lam: f64) -> (f64, f64) {
        let rest = lam / (1.0 + self.z);
        let tilt = (rest / 5500.0).powf(self.alpha);
        let bulge = self.bt * self.templates.at(0, rest) * tilt * self.scale;
        let disk = (1.0 - self.bt) * self.templates.mix_at(self.disk_type, rest) * tilt * self.scale;
        (bulge, disk)
    }

    /// Total AB flux density (nanomaggies) in each of `filters`, continuum tails extended
    /// redward of the templates (see [`Templates::at_ext`]): the photometry modality.
    pub fn photometry(&self, filters: &[super::templates::Filter]) -> Vec<f64> {
        const NANOMAGGY_FNU: f64 = 3.631e-29;
        let cont = |lam: f64| {
            let rest = lam / (1.0 + self.z);
            let tilt = (rest / 5500.0).powf(self.alpha);
            (self.bt * self.templates.at_ext(0, rest)
                + (1.0 - self.bt) * self.templates.mix_at_ext(self.disk_type, rest))
                * tilt
                * self.scale
        };
        filters
            .iter()
            .map(|f| {
                let mut total = 0.0;
                for i in 1..f.wavelength.len() {
                    let (l0, l1) = (f.wavelength[i - 1], f.wavelength[i]);
                    total += 0.5 * (cont(l0) * f.response[i - 1] * l0 + cont(l1) * f.response[i] * l1) * (l1 - l0);
                }
                for &(flux, center, _) in &self.lines {
                    total += flux * f.at(center) * center;
                }
                total / f.ab_norm / NANOMAGGY_FNU
            })
            .collect()
    }

    /// AB flux densities (nanomaggies) of (bulge, disk incl. lines) in every filter.
    pub fn band_fluxes(&self) -> Vec<(f64, f64)> {
        const NANOMAGGY_FNU: f64 = 3.631e-29;
        self.templates
            .filters
            .iter()
            .map(|f| {
                let (mut b, mut d) = (0.0, 0.0);
                for i in 1..f.wavelength.len() {
                    let (l0, l1) = (f.wavelength[i - 1], f.wavelength[i]);
                    let (b0, d0) = self.continuum_parts(l0);
                    let (b1, d1) = self.continuum_parts(l1);
                    let (w0, w1) = (f.response[i - 1] * l0, f.response[i] * l1);
                    b += 0.5 * (b0 * w0 + b1 * w1) * (l1 - l0);
                    d += 0.5 * (d0 * w0 + d1 * w1) * (l1 - l0);
                }
                for &(flux, center, _) in &self.lines {
                    d += flux * f.at(center) * center;
                }
                (b / f.ab_norm / NANOMAGGY_FNU, d / f.ab_norm / NANOMAGGY_FNU)
            })
            .collect()
    }

    /// Noise-free spectrum on `wavelength` (Å), in 1e-17 erg/s/cm²/Å, lines integrated over
    /// each pixel of width `dlam`.
    pub fn spectrum(&self, wavelength: &[f32], dlam: f64) -> Vec<f32> {
        let lo = wavelength[0] as f64;
        let mut out: Vec<f64> = wavelength
            .iter()
            .map(|&l| {
                let (b, d) = self.continuum_parts(l as f64);
                (b + d) * 1e17
            })
            .collect();
        for &(flux, center, sigma) in &self.lines {
            let i0 = (((center - 5.0 * sigma - lo) / dlam).floor().max(0.0)) as usize;
            let i1 = ((((center + 5.0 * sigma - lo) / dlam).ceil()) as usize).min(out.len());
            for (i, o) in out.iter_mut().enumerate().take(i1).skip(i0) {
                let x = (lo + i as f64 * dlam - center) / sigma;
                *o += flux * 1e17 * (-0.5 * x * x).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt());
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }
}

/// AB magnitude of a flux in nanomaggies.
pub fn ab_mag(nanomaggies: f64) -> f64 {
    22.5 - 2.5 * nanomaggies.max(1e-12).log10()
}
