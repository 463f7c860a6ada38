//! The embedded default data: a synthetic survey of paired g,r,z images and DESI-grid spectra
//! whose two modalities are rendered from one SED per galaxy, deterministic from a seed.
//!
//! Galaxy `i` of seed `s` draws all its randomness from its own ChaCha8 stream, so a survey is
//! bit-identical whatever the thread count, and the first `n` galaxies of a larger survey are
//! the galaxies of the smaller one.

pub mod cosmology;
pub mod population;
pub mod render;
pub mod sed;
pub mod templates;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use cosmology::Cosmology;
use population::TableSampler;
use sed::{ObservedSed, ab_mag};
use templates::Templates;

/// The DESI grid the survey renders spectra on, the in-memory catalogue it fills and its
/// `.safetensors` storage are defined with the data formats (`crate::data`).
pub use crate::data::catalog::{Photometry, Survey, TRUTH_COLUMNS};
pub use crate::data::grid::{DESI_DLAMBDA, DESI_LAMBDA_MIN, DESI_NBINS};
pub use crate::data::storage;

/// How to generate a synthetic survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    pub n_galaxies: usize,
    pub seed: u64,
    /// Side of the square cutouts in pixels (Legacy Survey cutouts in AstroCLIP: 152).
    pub image_size: usize,
    /// arcsec per pixel (Legacy Survey: 0.262).
    pub pixel_scale: f64,
    /// r-band magnitude limit (DESI BGS bright: 19.5).
    pub r_limit: f64,
    pub z_max: f64,
    /// Per-pixel sky noise σ in nanomaggies for g, r, z.
    pub sky_sigma: [f64; 3],
    /// Spectrum noise floor σ in 1e-17 erg/s/cm²/Å.
    pub spectrum_sigma: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            n_galaxies: 2048,
            seed: 42,
            image_size: 152,
            pixel_scale: 0.262,
            r_limit: 19.5,
            z_max: 0.6,
            sky_sigma: [0.0068, 0.0107, 0.027],
            spectrum_sigma: 0.8,
        }
    }
}

/// 5σ depths (AB) of the synthetic photometry: Legacy Survey DR9 g, r, z (Dey et al. 2019)
/// and unWISE W1, W2 (Schlafly et al. 2019, Vega→AB +2.70/+3.34), rounded.
pub const PHOTOMETRY_DEPTH_5SIGMA: [f64; 5] = [24.0, 23.4, 22.5, 20.3, 19.6];
/// Relative calibration floor added in quadrature to the photometric errors.
pub const PHOTOMETRY_CALIBRATION: f64 = 0.01;

fn galaxy_rng(seed: u64, index: u64) -> ChaCha8Rng {
    // SplitMix64 of (seed, index) so neighbouring seeds give unrelated streams.
    let mut x = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(x ^ (x >> 31))
}

/// Shared, read-only generation context.
struct Context {
    cfg: SynthConfig,
    cosmo: Cosmology,
    templates: Templates,
    z_sampler: TableSampler,
    mass_sampler: TableSampler,
    wavelength: Vec<f32>,
}

struct Generated {
    image: Vec<f32>,
    spectrum: Vec<f32>,
    ivar: Vec<f32>,
    truth: [f32; TRUTH_COLUMNS.len()],
    photometry: Vec<f32>,
    photometry_ivar: Vec<f32>,
}

/// Wavelengths (Å) of bright OH sky lines that inflate the spectrum noise.
const SKY_LINES: [f64; 18] = [
    5577.3, 5889.9, 5895.9, 6300.3, 6363.8, 7340.9, 7750.6, 7913.7, 8344.6, 8399.2, 8430.2, 8827.1, 8885.8, 8919.6,
    8988.4, 9375.9, 9439.7, 9792.3,
];

fn noise_sigma(cfg: &SynthConfig, lam: f64) -> f64 {
    let mut s = cfg.spectrum_sigma
        * (1.0 + 1.5 * (-((lam - 3800.0) / 250.0).powi(2)).exp() + 0.8 * ((lam - 6500.0) / 3300.0).powi(2));
    for &l in &SKY_LINES {
        s *= 1.0 + 4.0 * (-((lam - l) / 1.2).powi(2)).exp();
    }
    s
}

impl Context {
    fn new(cfg: &SynthConfig) -> Self {
        let cosmo = Cosmology::default();
        let z_sampler = TableSampler::new(0.005, cfg.z_max, 2000, |z| cosmo.dv_dz(z));
        // Schechter in log M: dN/dlogM ∝ 10^((logM - Mc)(α+1)) exp(-10^(logM - Mc)).
        let mass_sampler = TableSampler::new(8.5, 12.0, 2000, |m| {
            let x = 10f64.powf(m - 10.8);
            x.powf(1.0 - 1.3) * (-x).exp()
        });
        Self {
            cfg: cfg.clone(),
            cosmo,
            templates: Templates::default(),
            z_sampler,
            mass_sampler,
            wavelength: (0..DESI_NBINS).map(|i| (DESI_LAMBDA_MIN + DESI_DLAMBDA * i as f64) as f32).collect(),
        }
    }

    fn generate(&self, index: u64) -> Generated {
        let cfg = &self.cfg;
        let mut rng = galaxy_rng(cfg.seed, index);
        // Magnitude-limited selection by rejection: draw (z, M*), keep if r < r_limit.
        let (galaxy, sed, bands) = loop {
            let z = self.z_sampler.sample(&mut rng);
            let m = self.mass_sampler.sample(&mut rng);
            let g = population::draw_properties(&mut rng, &self.cosmo, z, m);
            let sed = ObservedSed::new(&self.templates, &self.cosmo, &g);
            let bands = sed.band_fluxes();
            if ab_mag(bands[1].0 + bands[1].1) < cfg.r_limit {
                break (g, sed, bands);
            }
        };
        let size = cfg.image_size;
        let (bulge, disk) = render::components(&galaxy, size, cfg.pixel_scale);
        let nb = bands.len();
        let mut image = vec![0f32; size * size * nb];
        for p in 0..size * size {
            for (b, &(fb, fd)) in bands.iter().enumerate() {
                let noise: f64 = rng.sample::<f64, _>(StandardNormal) * cfg.sky_sigma[b];
                image[p * nb + b] = (fb * bulge[p] + fd * disk[p] + noise) as f32;
            }
        }
        let clean = sed.spectrum(&self.wavelength, DESI_DLAMBDA);
        let mut spectrum = Vec::with_capacity(clean.len());
        let mut ivar = Vec::with_capacity(clean.len());
        for (&f, &lam) in clean.iter().zip(&self.wavelength) {
            let sigma = (noise_sigma(cfg, lam as f64).powi(2) + 0.02 * (f as f64).max(0.0)).sqrt();
            let n: f64 = StandardNormal.sample(&mut rng);
            spectrum.push((f as f64 + sigma * n) as f32);
            ivar.push((1.0 / (sigma * sigma)) as f32);
        }
        let g = &galaxy;
        let total = |b: usize| bands[b].0 + bands[b].1;
        // Flux-weighted axis ratio of the two components in r.
        let q = (bands[1].0 * g.bulge_q + bands[1].1 * g.disk_q) / total(1);
        let truth = [
            g.redshift,
            g.log_mass,
            g.log_ssfr,
            g.metallicity,
            g.age,
            g.bt_ratio,
            g.disk_re,
            g.bulge_re,
            q,
            g.position_angle,
            ab_mag(total(0)),
            ab_mag(total(1)),
            ab_mag(total(2)),
        ]
        .map(|v| v as f32);
        // Photometry draws its noise from its own stream, so adding it changed nothing else.
        let mut prng = galaxy_rng(cfg.seed ^ 0x5048_4f54_4f4d_4554, index);
        let mut photometry = Vec::with_capacity(PHOTOMETRY_DEPTH_5SIGMA.len());
        let mut photometry_ivar = Vec::with_capacity(PHOTOMETRY_DEPTH_5SIGMA.len());
        for (f, m5) in sed.photometry(&self.templates.photometry_filters).into_iter().zip(PHOTOMETRY_DEPTH_5SIGMA) {
            let sigma_depth = 10f64.powf(-0.4 * (m5 - 22.5)) / 5.0;
            let sigma = (sigma_depth.powi(2) + (PHOTOMETRY_CALIBRATION * f).powi(2)).sqrt();
            let n: f64 = StandardNormal.sample(&mut prng);
            photometry.push((f + sigma * n) as f32);
            photometry_ivar.push((1.0 / (sigma * sigma)) as f32);
        }
        Generated { image, spectrum, ivar, truth, photometry, photometry_ivar }
    }
}

/// Generates a survey; `progress` is called with the number of galaxies done so far.
pub fn synthesize(cfg: &SynthConfig, progress: impl Fn(usize) + Sync) -> Survey {
    let ctx = Context::new(cfg);
    let size = cfg.image_size;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let gals: Vec<Generated> = (0..cfg.n_galaxies as u64)
        .into_par_iter()
        .map(|i| {
            let g = ctx.generate(i);
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if d.is_multiple_of(64) || d == cfg.n_galaxies {
                progress(d);
            }
            g
        })
        .collect();
    let n = gals.len();
    let mut images = Vec::with_capacity(n * size * size * 3);
    let mut spectra = Vec::with_capacity(n * DESI_NBINS);
    let mut ivar = Vec::with_capacity(n * DESI_NBINS);
    let mut truth: Vec<(String, Vec<f32>)> =
        TRUTH_COLUMNS.iter().map(|c| (c.to_string(), Vec::with_capacity(n))).collect();
    let mut phot = Photometry {
        bands: ctx.templates.photometry_filters.iter().map(|f| f.name.clone()).collect(),
        flux: Vec::with_capacity(n * 5),
        ivar: Vec::with_capacity(n * 5),
    };
    for g in gals {
        phot.flux.extend_from_slice(&g.photometry);
        phot.ivar.extend_from_slice(&g.photometry_ivar);
        images.extend_from_slice(&g.image);
        spectra.extend_from_slice(&g.spectrum);
        ivar.extend_from_slice(&g.ivar);
        for (col, v) in truth.iter_mut().zip(g.truth) {
            col.1.push(v);
        }
    }
    Survey {
        object_ids: (0..n).map(|i| format!("synth-{}-{i:06}", cfg.seed)).collect(),
        bands: vec!["g".into(), "r".into(), "z".into()],
        image_size: size,
        pixel_scale: cfg.pixel_scale as f32,
        images,
        wavelength: ctx.wavelength,
        spectra,
        ivar,
        truth,
        provenance: format!(
            "astroclip synthetic survey v{} {}",
            env!("CARGO_PKG_VERSION"),
            serde_json::to_string(cfg).unwrap_or_default()
        ),
        photometry: Some(phot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: usize) -> Survey {
        synthesize(&SynthConfig { n_galaxies: n, image_size: 48, ..Default::default() }, |_| {})
    }

    #[test]
    fn deterministic_and_prefix_stable() {
        let a = small(6);
        let b = small(4);
        assert_eq!(a.content_hash(), small(6).content_hash());
        assert_eq!(&a.spectra[..4 * DESI_NBINS], &b.spectra[..]);
    }

    #[test]
    fn magnitude_limit_and_physics() {
        let s = small(64);
        let r = s.truth_column("mag_r").unwrap();
        assert!(r.iter().all(|&m| m < 19.5));
        let z = s.truth_column("redshift").unwrap();
        assert!(z.iter().all(|&v| v > 0.0 && v < 0.6));
        assert!(s.spectra.iter().all(|v| v.is_finite()) && s.images.iter().all(|v| v.is_finite()));
        // Star-forming galaxies are bluer in g - r than quenched ones.
        let g = s.truth_column("mag_g").unwrap();
        let ssfr = s.truth_column("log_ssfr").unwrap();
        let mean_color = |pick: &dyn Fn(f32) -> bool| {
            let v: Vec<f32> = (0..s.len()).filter(|&i| pick(ssfr[i])).map(|i| g[i] - r[i]).collect();
            v.iter().sum::<f32>() / v.len().max(1) as f32
        };
        assert!(mean_color(&|x| x > -10.5) < mean_color(&|x| x < -11.0));
    }

    #[test]
    fn photometry_agrees_with_truth_and_has_plausible_infrared_colours() {
        let s = small(200);
        let p = s.photometry.as_ref().unwrap();
        assert_eq!(p.bands, ["g", "r", "z", "W1", "W2"]);
        let mag = |f: f32| 22.5 - 2.5 * (f.max(1e-6) as f64).log10();
        let (mut w12, mut zw1) = (Vec::new(), Vec::new());
        for i in 0..s.len() {
            let (f, iv) = p.row(i);
            // g, r, z photometry is the truth magnitude plus its own noise (≤ 5σ).
            for (b, col) in ["mag_g", "mag_r", "mag_z"].iter().enumerate() {
                let truth = 10f64.powf(-0.4 * (s.truth_column(col).unwrap()[i] as f64 - 22.5));
                let sigma = 1.0 / (iv[b] as f64).sqrt();
                assert!((f[b] as f64 - truth).abs() < 5.0 * sigma, "object {i} band {col}: {} vs {truth}", f[b]);
            }
            w12.push(mag(f[3]) - mag(f[4]));
            zw1.push(mag(f[2]) - mag(f[3]));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        // Stellar continua: W1−W2 ≈ −0.6 AB (≈ 0 Vega), z−W1 ≈ 0–1 AB at these redshifts.
        let (a, b) = (median(&mut w12), median(&mut zw1));
        assert!((-0.9..-0.2).contains(&a), "median W1−W2 {a}");
        assert!((-0.5..1.5).contains(&b), "median z−W1 {b}");
    }

    #[test]
    fn image_flux_matches_sed_photometry() {
        let s = synthesize(&SynthConfig { n_galaxies: 8, image_size: 152, ..Default::default() }, |_| {});
        let r = s.truth_column("mag_r").unwrap();
        let re = s.truth_column("disk_re").unwrap();
        for i in 0..s.len() {
            if re[i] > 4.0 {
                continue; // large disks lose flux off the cutout
            }
            // The cutout holds the SED's r flux up to sky noise: σ_sum = σ_pix·√(pixels).
            let sum: f64 = s.image(i).chunks(3).map(|p| p[1] as f64).sum();
            let sed_flux = 10f64.powf(-0.4 * (r[i] as f64 - 22.5));
            let tol = 5.0 * 0.0107 * 152.0;
            assert!((sum - sed_flux).abs() < tol, "object {i}: image {sum} vs SED {sed_flux} nanomaggies");
        }
    }
}
