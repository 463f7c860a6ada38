//! Flat ΛCDM distances and ages (H0 = 70 km/s/Mpc, Ωm = 0.3), tabulated once.

pub const H0: f64 = 70.0;
pub const OMEGA_M: f64 = 0.3;
const C_KM_S: f64 = 299_792.458;
pub const MPC_CM: f64 = 3.085_677_581e24;
const TABLE_ZMAX: f64 = 1.0;
const TABLE_N: usize = 2001;

#[derive(Debug, Clone)]
pub struct Cosmology {
    /// Comoving distance (Mpc) on a uniform grid in z from 0 to `TABLE_ZMAX`.
    dc: Vec<f64>,
}

fn e_of_z(z: f64) -> f64 {
    (OMEGA_M * (1.0 + z).powi(3) + 1.0 - OMEGA_M).sqrt()
}

impl Default for Cosmology {
    fn default() -> Self {
        let dz = TABLE_ZMAX / (TABLE_N - 1) as f64;
        let dh = C_KM_S / H0;
        let mut dc = vec![0.0; TABLE_N];
        for i in 1..TABLE_N {
            // Simpson on each cell.
            let (a, b) = ((i - 1) as f64 * dz, i as f64 * dz);
            let f = |z: f64| 1.0 / e_of_z(z);
            dc[i] = dc[i - 1] + dh * (b - a) / 6.0 * (f(a) + 4.0 * f(0.5 * (a + b)) + f(b));
        }
        Self { dc }
    }
}

impl Cosmology {
    /// Line-of-sight comoving distance in Mpc.
    pub fn comoving_distance(&self, z: f64) -> f64 {
        let x = (z / TABLE_ZMAX * (TABLE_N - 1) as f64).clamp(0.0, (TABLE_N - 2) as f64);
        let i = x.floor() as usize;
        let t = x - i as f64;
        self.dc[i] * (1.0 - t) + self.dc[i + 1] * t
    }

    pub fn luminosity_distance(&self, z: f64) -> f64 {
        (1.0 + z) * self.comoving_distance(z)
    }

    pub fn angular_diameter_distance(&self, z: f64) -> f64 {
        self.comoving_distance(z) / (1.0 + z)
    }

    /// Comoving volume element per unit z per steradian, up to a constant: D_C² / E(z).
    pub fn dv_dz(&self, z: f64) -> f64 {
        self.comoving_distance(z).powi(2) / e_of_z(z)
    }

    /// Age of the universe at redshift z in Gyr (closed form for flat ΛCDM).
    pub fn age_gyr(&self, z: f64) -> f64 {
        let h0_per_gyr = H0 / 977.792_221;
        let ol = 1.0 - OMEGA_M;
        2.0 / (3.0 * h0_per_gyr * ol.sqrt()) * ((ol / OMEGA_M).sqrt() * (1.0 + z).powf(-1.5)).asinh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: astropy `FlatLambdaCDM(H0=70, Om0=0.3, Tcmb0=0)`:
    /// D_C(0.1) = 418.45 Mpc, D_C(0.5) = 1888.6 Mpc, age(0) = 13.47 Gyr.
    #[test]
    fn distances_match_astropy() {
        let c = Cosmology::default();
        assert!((c.comoving_distance(0.1) - 418.45).abs() < 0.5, "{}", c.comoving_distance(0.1));
        assert!((c.comoving_distance(0.5) - 1888.6).abs() < 1.5, "{}", c.comoving_distance(0.5));
        assert!((c.age_gyr(0.0) - 13.47).abs() < 0.02, "{}", c.age_gyr(0.0));
    }
}
