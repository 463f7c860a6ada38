//! Embedded reference data: CWW galaxy templates and DECam g, r, z throughputs.
//!
//! * SEDs: Coleman, Wu & Weedman (1980) E, Sbc, Scd, Im templates as extended by Bolzonella,
//!   Miralles & Pelló (2000), the copies shipped in GalSim 2.8.5 (`galsim/share/SEDs`, BSD
//!   licence; `core/data/seds/`).
//! * Filters: DECam 2014 g, r, z total throughput at airmass 1.3 (William Wester / Ting Li),
//!   the copies shipped in speclite 1.0.0 (`speclite/data/filters`, BSD-3; `core/data/filters/`).

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
        let mut flux = Vec::new();
        for (name, text) in SEDS {
            let (lam, f) = parse_columns(text);
            let mut on_grid: Vec<f64> = grid.iter().map(|&l| interp(&lam, &f, l)).collect();
            let (lo, hi) = (((5450.0 - REST_MIN) / REST_STEP) as usize, ((5550.0 - REST_MIN) / REST_STEP) as usize);
            let norm = on_grid[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64;
            on_grid.iter_mut().for_each(|v| *v /= norm);
            names.push(name);
            flux.push(on_grid);
        }
        let filters = FILTERS
            .iter()
            .map(|(name, text)| {
                let (nm, response) = parse_columns(text);
                let wavelength: Vec<f64> = nm.iter().map(|v| v * 10.0).collect();
                let mut ab_norm = 0.0;
                for i in 1..wavelength.len() {
                    let (l0, l1) = (wavelength[i - 1], wavelength[i]);
                    ab_norm +=
                        0.5 * (response[i - 1] * C_ANGSTROM_S / l0 + response[i] * C_ANGSTROM_S / l1) * (l1 - l0);
                }
                Filter { name: name.to_string(), wavelength, response, ab_norm }
            })
            .collect();
        Self { names, flux, filters }
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
    }
}
