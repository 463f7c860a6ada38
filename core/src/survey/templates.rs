//! Embedded reference data: CWW galaxy templates, DECam g, r, z and WISE W1, W2 throughputs.
//!
//! * SEDs: Coleman, Wu & Weedman (1980) E, Sbc, Scd, Im templates as extended by Bolzonella,
//!   Miralles & Pelló (2000), the copies shipped in GalSim 2.8.5 (`galsim/share/SEDs`, BSD
//!   licence; `core/data/seds/`).
//! * Filters: DECam 2014 g, r, z total throughput at airmass 1.3 (William Wester / Ting Li),
//!   the copies shipped in speclite 1.0.0 (`speclite/data/filters`, BSD-3; `core/data/filters/`).
//! * WISE W1 (3.4 µm) and W2 (4.6 µm) relative spectral responses (Wright et al. 2010, AJ 140,
//!   1868, Fig. 6), also from speclite 1.0.0 (`wise2010-W1/W2.ecsv`).
//! * The templates end at 2.205 µm rest; W1/W2 photometry of a z ≲ 0.6 galaxy needs rest
//!   2.1–5.3 µm. Beyond the last tabulated point each template continues as a power law
//!   f_λ ∝ λ^s with its own log-log slope between 1.5 and 2.2 µm (the stellar continuum's
//!   Rayleigh–Jeans-like tail; no dust emission). Only the photometry modality uses this.

/// Rest-frame grid shared by all templates: 900–25000 Å in 2 Å steps.
pub const REST_MIN: f64 = 900.0;
pub const REST_STEP: f64 = 2.0;
pub const REST_N: usize = 12_051;

const SEDS: [(&str, &str); 4] = [
    ("E", include_str!("../../data/seds/CWW_E_ext.sed")),
    ("Sbc", include_str!("../../data/seds/CWW_Sbc_ext.sed")),
    ("Scd", include_str!("../../data/seds/CWW_Scd_ext.sed")),
    ("Im", include_str!("../../data/seds/CWW_Im_ext.sed")),
];

const FILTERS: [(&str, &str); 3] = [
    ("g", include_str!("../../data/filters/decam2014-g.ecsv")),
    ("r", include_str!("../../data/filters/decam2014-r.ecsv")),
    ("z", include_str!("../../data/filters/decam2014-z.ecsv")),
];

/// Near-infrared filters of the photometry modality (wavelengths in µm in the files).
const WISE_FILTERS: [(&str, &str); 2] = [
    ("W1", include_str!("../../data/filters/wise2010-W1.ecsv")),
    ("W2", include_str!("../../data/filters/wise2010-W2.ecsv")),
];

/// Rest wavelengths (Å) between which each template's red power-law tail slope is fitted.
const TAIL_FIT: (f64, f64) = (15_000.0, 22_000.0);

/// A filter throughput curve, wavelength in Å.
#[derive(Debug, Clone)]
pub struct Filter {
    pub name: String,
    pub wavelength: Vec<f64>,
    pub response: Vec<f64>,
    /// ∫ T(λ) c/λ dλ with c in Å/s: the AB normalisation of photon-counting photometry.
    pub ab_norm: f64,
}

pub const C_ANGSTROM_S: f64 = 2.997_924_58e18;

impl Filter {
    /// Throughput at λ (Å), linear interpolation, 0 outside the curve.
    pub fn at(&self, lam: f64) -> f64 {
        interp(&self.wavelength, &self.response, lam)
    }
}

/// The four templates on [`REST_MIN`]..: each normalised to mean f_λ = 1 over 5450–5550 Å.
#[derive(Debug, Clone)]
pub struct Templates {
    pub names: Vec<&'static str>,
    pub flux: Vec<Vec<f64>>,
    pub filters: Vec<Filter>,
    /// Filters of the photometry modality: g, r, z (as above), W1, W2.
    pub photometry_filters: Vec<Filter>,
    /// Log-log slope of each template's red tail (see the module doc).
    tail_slope: Vec<f64>,
    /// Last tabulated rest wavelength of each template (Å) and the flux there.
    tail_start: Vec<(f64, f64)>,
}

fn filter_from(name: &str, text: &str, to_angstrom: f64) -> Filter {
    let (w, response) = parse_columns(text);
    let wavelength: Vec<f64> = w.iter().map(|v| v * to_angstrom).collect();
    let mut ab_norm = 0.0;
    for i in 1..wavelength.len() {
        let (l0, l1) = (wavelength[i - 1], wavelength[i]);
        ab_norm += 0.5 * (response[i - 1] * C_ANGSTROM_S / l0 + response[i] * C_ANGSTROM_S / l1) * (l1 - l0);
    }
    Filter { name: name.to_string(), wavelength, response, ab_norm }
}

fn interp(x: &[f64], y: &[f64], v: f64) -> f64 {
    if v <= x[0] || v >= x[x.len() - 1] {
        return if v == x[0] { y[0] } else { 0.0 };
    }
    let i = x.partition_point(|&a| a <= v) - 1;
    let t = (v - x[i]) / (x[i + 1] - x[i]);
    y[i] * (1.0 - t) + y[i + 1] * t
}

fn parse_columns(text: &str) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace().map(str::parse::<f64>);
        if let (Some(Ok(x)), Some(Ok(y))) = (it.next(), it.next()) {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

impl Default for Templates {
    fn default() -> Self {
        let grid: Vec<f64> = (0..REST_N).map(|i| REST_MIN + REST_STEP * i as f64).collect();
        let mut names = Vec::new();
        let mut tail_start = Vec::new();
        let mut flux = Vec::new();
        for (name, text) in SEDS {
            let (lam, f) = parse_columns(text);
            let last = lam[lam.len() - 1];
            let mut on_grid: Vec<f64> = grid.iter().map(|&l| interp(&lam, &f, l)).collect();
            let (lo, hi) = (((5450.0 - REST_MIN) / REST_STEP) as usize, ((5550.0 - REST_MIN) / REST_STEP) as usize);
            let norm = on_grid[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64;
            on_grid.iter_mut().for_each(|v| *v /= norm);
            // The grid point just inside the table (the interpolant drops to 0 at its end).
            let k = ((last - REST_MIN) / REST_STEP).floor() as usize - 1;
            tail_start.push((grid[k], on_grid[k]));
            names.push(name);
            flux.push(on_grid);
        }
        let filters: Vec<Filter> = FILTERS.iter().map(|(name, text)| filter_from(name, text, 10.0)).collect();
        let mut photometry_filters = filters.clone();
        photometry_filters.extend(WISE_FILTERS.iter().map(|(name, text)| filter_from(name, text, 1e4)));
        let idx = |lam: f64| ((lam - REST_MIN) / REST_STEP).round() as usize;
        let tail_slope = flux
            .iter()
            .map(|f: &Vec<f64>| {
                let (a, b) = (idx(TAIL_FIT.0), idx(TAIL_FIT.1));
                (f[b] / f[a]).ln() / (TAIL_FIT.1 / TAIL_FIT.0).ln()
            })
            .collect();
        Self { names, flux, filters, photometry_filters, tail_slope, tail_start }
    }
}

impl Templates {
    /// Template `t` at rest wavelength `lam` (Å), linear interpolation on the shared grid.
    #[inline]
    pub fn at(&self, t: usize, lam: f64) -> f64 {
        let x = (lam - REST_MIN) / REST_STEP;
        if x <= 0.0 || x >= (REST_N - 1) as f64 {
            return 0.0;
        }
        let i = x as usize;
        let f = x - i as f64;
        let row = &self.flux[t];
        row[i] * (1.0 - f) + row[i + 1] * f
    }

    /// Like [`Templates::at`], continued redward of the grid by the template's power-law tail.
    #[inline]
    pub fn at_ext(&self, t: usize, lam: f64) -> f64 {
        let (last, end) = self.tail_start[t];
        if lam < last {
            return self.at(t, lam);
        }
        end * (lam / last).powf(self.tail_slope[t])
    }

    /// [`Templates::mix_at`] with the red tails of [`Templates::at_ext`].
    #[inline]
    pub fn mix_at_ext(&self, p: f64, lam: f64) -> f64 {
        let p = p.clamp(0.0, 3.0);
        let i = (p.floor() as usize).min(2);
        let t = p - i as f64;
        self.at_ext(i, lam) * (1.0 - t) + self.at_ext(i + 1, lam) * t
    }

    /// A continuous template sequence: position `p` in [0, 3] interpolates E → Sbc → Scd → Im.
    #[inline]
    pub fn mix_at(&self, p: f64, lam: f64) -> f64 {
        let p = p.clamp(0.0, 3.0);
        let i = (p.floor() as usize).min(2);
        let t = p - i as f64;
        self.at(i, lam) * (1.0 - t) + self.at(i + 1, lam) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_data_parses() {
        let t = Templates::default();
        assert_eq!(t.flux.len(), 4);
        assert_eq!(t.filters.len(), 3);
        // E template is redder than Im: larger 7000/4000 Å flux ratio.
        let ratio = |k| t.at(k, 7000.0) / t.at(k, 4000.0);
        assert!(ratio(0) > 2.0 * ratio(3), "E {} Im {}", ratio(0), ratio(3));
        // g filter peaks in 4000–5500 Å, z above 8000 Å.
        let peak =
            |f: &Filter| f.wavelength[f.response.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0];
        assert!((4000.0..5500.0).contains(&peak(&t.filters[0])));
        assert!(peak(&t.filters[2]) > 8000.0);
        let names: Vec<&str> = t.photometry_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["g", "r", "z", "W1", "W2"]);
        assert!((30_000.0..36_000.0).contains(&peak(&t.photometry_filters[3])));
        assert!((40_000.0..50_000.0).contains(&peak(&t.photometry_filters[4])));
        // The tails continue the templates smoothly and fall to the red (stellar continua).
        for k in 0..4 {
            let last = t.tail_start[k].0;
            let (a, b) = (t.at_ext(k, last - 2.0 * REST_STEP), t.at_ext(k, last + 1.0));
            assert!((a / b - 1.0).abs() < 0.05, "template {k}: {a} vs {b}");
            assert!(t.at_ext(k, 40_000.0) < t.at_ext(k, 22_000.0), "template {k} rises to the red");
        }
    }
}
