//! Image rendering: Sérsic bulge (n = 4) and exponential disk (n = 1) profiles, each
//! normalised to unit flux on the cutout, convolved with a circular Gaussian seeing PSF
//! (same FWHM in g, r, z), scaled by the band fluxes of the galaxy's SED, plus Gaussian sky
//! noise at Legacy Survey DR9-like depths.

use super::population::Galaxy;

/// Sérsic b_n (Ciotti & Bertin 1999 expansion), accurate to < 1e-4 for n ≥ 0.5.
fn sersic_b(n: f64) -> f64 {
    2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)
}

/// Renders a unit-flux Sérsic profile on a `size`×`size` grid, supersampled 5×5 within 4 px of
/// the centre where the profile is steep.
pub fn sersic(size: usize, scale: f64, re_arcsec: f64, n: f64, q: f64, pa: f64, offset: (f64, f64)) -> Vec<f64> {
    let re = (re_arcsec / scale).max(0.3);
    let b = sersic_b(n);
    let (s, c) = pa.sin_cos();
    let cx = (size as f64 - 1.0) / 2.0 + offset.0;
    let cy = (size as f64 - 1.0) / 2.0 + offset.1;
    let profile = |x: f64, y: f64| {
        let (dx, dy) = (x - cx, y - cy);
        let u = dx * c + dy * s;
        let v = (-dx * s + dy * c) / q;
        let r = (u * u + v * v).sqrt() / re;
        if n == 1.0 { (-b * (r - 1.0)).exp() } else { (-b * (r.powf(1.0 / n) - 1.0)).exp() }
    };
    let mut img = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let (xf, yf) = (x as f64, y as f64);
            img[y * size + x] = if (xf - cx).abs() < 4.0 && (yf - cy).abs() < 4.0 {
                let mut acc = 0.0;
                for sy in 0..5 {
                    for sx in 0..5 {
                        acc += profile(xf + (sx as f64 - 2.0) / 5.0, yf + (sy as f64 - 2.0) / 5.0);
                    }
                }
                acc / 25.0
            } else {
                profile(xf, yf)
            };
        }
    }
    let total: f64 = img.iter().sum();
    img.iter_mut().for_each(|v| *v /= total);
    img
}

/// One pass of a 1-D convolution along x (`along_x`) or y, zero padding outside the image.
fn convolve_axis(img: &[f64], size: usize, kernel: &[f64], along_x: bool) -> Vec<f64> {
    let n = size as isize;
    let radius = (kernel.len() / 2) as isize;
    let mut out = vec![0.0; img.len()];
    for y in 0..n {
        for x in 0..n {
            let mut acc = 0.0;
            for (k, w) in kernel.iter().enumerate() {
                let (xx, yy) = if along_x { (x + k as isize - radius, y) } else { (x, y + k as isize - radius) };
                if (0..n).contains(&xx) && (0..n).contains(&yy) {
                    acc += w * img[(yy * n + xx) as usize];
                }
            }
            out[(y * n + x) as usize] = acc;
        }
    }
    out
}

/// Separable Gaussian convolution with zero padding.
pub fn gaussian_blur(img: &[f64], size: usize, sigma_px: f64) -> Vec<f64> {
    let radius = (4.0 * sigma_px).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius).map(|i| (-0.5 * (i as f64 / sigma_px).powi(2)).exp()).collect();
    let norm: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / norm).collect();
    convolve_axis(&convolve_axis(img, size, &kernel, true), size, &kernel, false)
}

/// Noise-free (bulge, disk) unit-flux images after the PSF.
pub fn components(g: &Galaxy, size: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let sigma = g.seeing / 2.354_82 / scale;
    let bulge = sersic(size, scale, g.bulge_re, 4.0, g.bulge_q, g.position_angle, g.offset);
    let disk = sersic(size, scale, g.disk_re, 1.0, g.disk_q, g.position_angle, g.offset);
    (gaussian_blur(&bulge, size, sigma), gaussian_blur(&disk, size, sigma))
}
