//! Pieces of the self-contained HTML pages (`runs report`, `search --html`): escaping,
//! base64 data URIs, cutouts as RGB PNGs and spectra as inline SVG.

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A cutout `(h, w, bands)` in nanomaggies as an RGB PNG (bands 2, 1, 0 — z, r, g — as R, G,
/// B, the last band repeated when there are fewer; asinh stretch).
pub fn cutout_png(img: &[f32], size: usize) -> Vec<u8> {
    let nb = (img.len() / (size * size).max(1)).max(1);
    let mut px = vec![0u8; size * size * 3];
    for p in 0..size * size {
        for (c, band) in [2usize.min(nb - 1), 1.min(nb - 1), 0].iter().enumerate() {
            let v = (img[p * nb + band] as f64 / 0.02).asinh() / (30.0f64).asinh();
            px[p * 3 + c] = (v.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    crate::runs::plot::encode_rgb_png(size, size, &px)
}

/// A spectrum as a small inline SVG (binned to ~300 points).
pub fn spectrum_svg(wave: &[f32], flux: &[f32], label: &str, highlight: bool) -> String {
    let bins = 300.min(flux.len().max(1));
    let per = flux.len().div_ceil(bins);
    let pts: Vec<(f64, f64)> = (0..bins)
        .filter_map(|b| {
            let s = &flux[b * per..((b + 1) * per).min(flux.len())];
            (!s.is_empty()).then(|| (wave[b * per] as f64, s.iter().map(|&v| v as f64).sum::<f64>() / s.len() as f64))
        })
        .collect();
    let (lo, hi) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = (pts.first().map(|p| p.0).unwrap_or(0.0), pts.last().map(|p| p.0).unwrap_or(1.0));
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| {
            let sx = 5.0 + (x - x0) / (x1 - x0).max(1e-9) * 290.0;
            let sy = 75.0 - (y - lo) / (hi - lo).max(1e-9) * 60.0;
            format!("{sx:.1},{sy:.1}")
        })
        .collect();
    let colour = if highlight { "#2ca02c" } else { "#1f77b4" };
    format!(
        r#"<svg class="spectrum" width="300" height="90" viewBox="0 0 300 90"><rect width="300" height="90" fill="white" stroke="{}"/><polyline fill="none" stroke="{colour}" points="{}"/><text x="6" y="12" font-size="11">{}</text></svg>"#,
        if highlight { "#2ca02c" } else { "#ccc" },
        path.join(" "),
        esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
