//! The galaxy population: a magnitude-limited sample (DESI BGS-like, r < r_lim) of galaxies
//! with physically linked properties.
//!
//! Recipes (phenomenological, chosen to reproduce the qualitative trends of the local galaxy
//! population, not fitted to data):
//! * z ∝ dV/dz on (0.005, z_max); log M* from a Schechter mass function (M_c = 10.8, α = −1.3)
//!   on [8.5, 12]; both kept only if the galaxy's r magnitude passes the survey limit;
//! * red/blue bimodality: quenched fraction `1 / (1 + exp(-(log M* − 10.5)/0.25))`; star-forming
//!   sSFR on a main sequence `−9.7 − 0.35 (log M* − 10) + 2.5 log(1+z)` (σ 0.3 dex), quenched
//!   `−11.9` (σ 0.35 dex);
//! * mass-weighted age a fraction of the age of the universe at z, older for lower sSFR;
//! * stellar metallicity on a mass–metallicity relation with a weak sSFR dependence;
//! * morphology: bulge-to-total ratio rising with mass and falling with sSFR; Sérsic n = 4
//!   bulge and n = 1 disk with mass–size relations; random axis ratios and position angle.

use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use super::cosmology::Cosmology;

/// Physical properties of one galaxy: the truth catalogue row.
#[derive(Debug, Clone, Copy)]
pub struct Galaxy {
    pub redshift: f64,
    pub log_mass: f64,
    pub log_ssfr: f64,
    /// log10 of stellar metallicity in solar units.
    pub metallicity: f64,
    /// Mass-weighted stellar age, Gyr.
    pub age: f64,
    pub bt_ratio: f64,
    /// Position of the disk's SED on the E → Sbc → Scd → Im sequence, in [0, 3].
    pub disk_type: f64,
    /// Half-light radii in arcsec.
    pub disk_re: f64,
    pub bulge_re: f64,
    pub disk_q: f64,
    pub bulge_q: f64,
    /// Position angle in radians.
    pub position_angle: f64,
    /// Seeing FWHM of the image, arcsec.
    pub seeing: f64,
    /// Sub-pixel centre offset, pixels.
    pub offset: (f64, f64),
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn normal<R: Rng>(rng: &mut R, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
}

/// Inverse-CDF sampler on a tabulated density.
#[derive(Debug, Clone)]
pub struct TableSampler {
    x: Vec<f64>,
    cdf: Vec<f64>,
}

impl TableSampler {
    pub fn new(lo: f64, hi: f64, n: usize, density: impl Fn(f64) -> f64) -> Self {
        let x: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect();
        let mut cdf = vec![0.0; n];
        for i in 1..n {
            cdf[i] = cdf[i - 1] + 0.5 * (density(x[i - 1]) + density(x[i])) * (x[i] - x[i - 1]);
        }
        let total = cdf[n - 1];
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { x, cdf }
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c < u).clamp(1, self.x.len() - 1);
        let t = (u - self.cdf[i - 1]) / (self.cdf[i] - self.cdf[i - 1]).max(1e-300);
        self.x[i - 1] + t * (self.x[i] - self.x[i - 1])
    }
}

/// Draws the intrinsic properties of a galaxy at (z, log M*); the magnitude cut is applied by
/// the caller, which knows the SED.
pub fn draw_properties<R: Rng>(rng: &mut R, cosmo: &Cosmology, z: f64, log_mass: f64) -> Galaxy {
    let quenched = rng.random::<f64>() < sigmoid((log_mass - 10.5) / 0.25);
    let log_ssfr = if quenched {
        normal(rng, -11.9, 0.35)
    } else {
        normal(rng, -9.7 - 0.35 * (log_mass - 10.0) + 2.5 * (1.0 + z).log10(), 0.3)
    };
    let age_frac = sigmoid(-1.3 * (log_ssfr + 10.6) + normal(rng, 0.0, 0.3));
    let age = cosmo.age_gyr(z) * (0.15 + 0.75 * age_frac);
    let metallicity =
        (-0.05 + 0.3 * (log_mass - 10.5) - 0.1 * (log_ssfr + 10.0) + normal(rng, 0.0, 0.08)).clamp(-1.0, 0.35);
    let disk_type = ((log_ssfr + 12.0) / 2.6 * 3.0 + normal(rng, 0.0, 0.15)).clamp(0.0, 3.0);
    let bt_ratio = (sigmoid(-2.2 * (log_ssfr + 10.8)) * (0.35 + 0.5 * ((log_mass - 9.5) / 2.5).clamp(0.0, 1.0))
        + normal(rng, 0.0, 0.05))
    .clamp(0.0, 0.95);
    let kpc_per_arcsec = cosmo.angular_diameter_distance(z) * 1e3 / 206_264.806;
    let disk_re_kpc = 10f64.powf(0.65 + 0.22 * (log_mass - 10.0) + normal(rng, 0.0, 0.15));
    let bulge_re_kpc = 10f64.powf(0.25 + 0.5 * (log_mass - 10.5) + normal(rng, 0.0, 0.12));
    let sn: f64 = rng.sample(StandardNormal);
    Galaxy {
        redshift: z,
        log_mass,
        log_ssfr,
        metallicity,
        age,
        bt_ratio,
        disk_type,
        disk_re: disk_re_kpc / kpc_per_arcsec,
        bulge_re: bulge_re_kpc / kpc_per_arcsec,
        disk_q: rng.random_range(0.2..1.0),
        bulge_q: rng.random_range(0.6..1.0),
        position_angle: rng.random_range(0.0..std::f64::consts::PI),
        seeing: (1.25 + 0.15 * sn).clamp(0.9, 1.8),
        offset: (rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5)),
    }
}

/// log10 of the V-band stellar mass-to-light ratio (solar units): older and more metal-rich
/// populations are dimmer per unit mass.
pub fn log_mass_to_light(age_gyr: f64, metallicity: f64) -> f64 {
    -0.75 + 0.95 * age_gyr.max(0.05).log10() + 0.15 * metallicity
}
