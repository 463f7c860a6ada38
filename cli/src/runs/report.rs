//! `astroclip runs report`: one static HTML page comparing runs — run table, diff, metric
//! curves, the evaluation (R²) table, a 2-D map of held-out image embeddings coloured by
//! redshift (PCA), and cross-modal retrieval examples (an image cutout next to the spectra
//! its embedding retrieves). Self-contained: plots are inline SVG, cutouts PNG data URIs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use astroclip_registry::{Registry, RunDetail};

use crate::runs::plot::{Chart, Series};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn base64(data: &[u8]) -> String {
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

/// Viridis, five control points, linear in between.
fn viridis(t: f64) -> (u8, u8, u8) {
    const C: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (C[i], C[i + 1]);
    ((a.0 + (b.0 - a.0) * f) as u8, (a.1 + (b.1 - a.1) * f) as u8, (a.2 + (b.2 - a.2) * f) as u8)
}

/// The two leading principal axes of `rows` (power iteration with deflation).
fn pca2(rows: &[Vec<f64>]) -> Vec<(f64, f64)> {
    let d = rows[0].len();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().zip(&mean).map(|(a, m)| a - m).collect()).collect();
    let mut cov = vec![0f64; d * d];
    for r in &x {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += r[i] * r[j];
            }
        }
    }
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for _ in 0..2 {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
        for _ in 0..200 {
            let mut w: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum()).collect();
            for a in &axes {
                let p: f64 = w.iter().zip(a).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(a).for_each(|(x, y)| *x -= p * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            v = w.into_iter().map(|x| x / norm).collect();
        }
        axes.push(v);
    }
    x.iter()
        .map(|r| {
            let p = |a: &Vec<f64>| r.iter().zip(a).map(|(x, y)| x * y).sum::<f64>();
            (p(&axes[0]), p(&axes[1]))
        })
        .collect()
}

struct Embeddings {
    image: Vec<Vec<f64>>,
    spectrum: Vec<Vec<f64>>,
    test: Vec<usize>,
}

fn read_embeddings(path: &Path) -> anyhow::Result<Embeddings> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let rows = |name: &str| -> anyhow::Result<Vec<Vec<f64>>> {
        let t = st.tensor(name)?;
        let (n, d) = (t.shape()[0], t.shape()[1]);
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        Ok((0..n).map(|i| v[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect()).collect())
    };
    let t = st.tensor("is_test")?;
    let flags: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
    Ok(Embeddings {
        image: rows("image")?,
        spectrum: rows("spectrum")?,
        test: flags.iter().enumerate().filter(|(_, f)| **f > 0.5).map(|(i, _)| i).collect(),
    })
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// A cutout `(h, w, 3)` in nanomaggies as an RGB PNG (z, r, g → R, G, B; asinh stretch).
fn cutout_png(img: &[f32], size: usize) -> Vec<u8> {
    let mut px = vec![0u8; size * size * 3];
    for p in 0..size * size {
        for (c, band) in [2usize, 1, 0].iter().enumerate() {
            let v = (img[p * 3 + band] as f64 / 0.02).asinh() / (30.0f64).asinh();
            px[p * 3 + c] = (v.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    crate::runs::plot::encode_rgb_png(size, size, &px)
}

/// A spectrum as a small inline SVG (binned to ~300 points).
fn spectrum_svg(wave: &[f32], flux: &[f32], label: &str, highlight: bool) -> String {
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

/// Builds the page for `ids` (runs in the registry under `home`).
pub fn report(reg: &Registry, home: &Path, ids: &[String]) -> anyhow::Result<String> {
    let details: Vec<RunDetail> = ids.iter().map(|i| reg.run(i)).collect::<Result<_, _>>()?;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>astroclip report</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:3px 8px;font-size:13px}}
th{{background:#f4f4f4}} pre{{font-size:12px;background:#fafafa;padding:1em;overflow-x:auto}} .ex{{display:flex;gap:12px;align-items:center;margin:8px 0}}
</style></head><body><h1>astroclip runs report</h1><p>{} run(s), generated by <code>astroclip runs report</code>.</p>"#,
        details.len()
    );
    // Run table.
    h.push_str(r#"<h2>Runs</h2><table id="runs"><tr><th>id</th><th>experiment</th><th>name</th><th>status</th><th>final train.loss</th><th>R² redshift (image)</th><th>R² redshift (spectrum)</th></tr>"#);
    for d in &details {
        let m = |key: &str, ctx: &str| {
            d.latest_metrics
                .iter()
                .find(|x| x.key == key && x.context.split(',').any(|c| c == ctx))
                .map(|x| format!("{:.4}", x.value))
                .unwrap_or_else(|| "—".into())
        };
        let loss = d
            .latest_metrics
            .iter()
            .find(|x| x.key == "train.loss")
            .map(|x| format!("{:.4}", x.value))
            .unwrap_or("—".into());
        let s = &d.summary;
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{loss}</td><td>{}</td><td>{}</td></tr>",
            &s.id[..8],
            esc(&s.experiment),
            esc(&s.name),
            esc(&s.status),
            m("eval.r2.redshift", "source=image"),
            m("eval.r2.redshift", "source=spectrum")
        );
    }
    h.push_str("</table>");
    // Diff.
    if details.len() > 1 {
        let d = crate::runs::diff::diff(reg, ids, false)?;
        let _ = write!(h, "<h2>Diff</h2><pre id=\"diff\">{}</pre>", esc(&d.table(false)));
    }
    // Curves.
    h.push_str("<h2>Metrics</h2>");
    for key in ["train.loss", "train.samples_per_sec"] {
        let mut series = Vec::new();
        for d in &details {
            let pts: Vec<(f64, f64)> =
                reg.metric_history(&d.summary.id, key)?.into_iter().map(|m| (m.step as f64, m.value)).collect();
            if !pts.is_empty() {
                series.push(Series { label: format!("{} {}", &d.summary.id[..8], d.summary.name), points: pts });
            }
        }
        if !series.is_empty() {
            let chart = Chart { title: key.into(), x_label: "step".into(), y_label: key.into(), series };
            let _ = write!(h, "<div class=\"plot\">{}</div>", chart.svg());
        }
    }
    // Evaluation table.
    h.push_str(r#"<h2>Evaluation (zero-shot k-NN R², held-out)</h2><table id="r2">"#);
    let mut props: Vec<String> = Vec::new();
    let mut rows: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for d in &details {
        for m in d.latest_metrics.iter().filter(|m| m.key.starts_with("eval.r2.")) {
            let prop = m.key.trim_start_matches("eval.r2.").to_string();
            let source = m.context.split(',').find_map(|c| c.strip_prefix("source=")).unwrap_or("?").to_string();
            if !props.contains(&prop) {
                props.push(prop.clone());
            }
            rows.entry((d.summary.id[..8].to_string(), source)).or_default().insert(prop, m.value);
        }
    }
    h.push_str("<tr><th>run</th><th>embedding</th>");
    for p in &props {
        let _ = write!(h, "<th>{}</th>", esc(p));
    }
    h.push_str("</tr>");
    for ((run, source), vals) in &rows {
        let _ = write!(h, "<tr><td><code>{run}</code></td><td>{}</td>", esc(source));
        for p in &props {
            let _ = write!(h, "<td>{}</td>", vals.get(p).map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into()));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    // Embedding map and retrieval examples from the first run with stored embeddings.
    if let Some(d) = details
        .iter()
        .find(|d| d.artifacts.iter().any(|a| a.kind == "embeddings" && a.path.ends_with("embeddings.safetensors")))
    {
        let art = d.artifacts.iter().find(|a| a.kind == "embeddings").expect("checked");
        // Bind runs store only the new modality's embeddings: no map for them.
        let emb = match read_embeddings(&home.join(&art.path)) {
            Ok(e) => e,
            Err(e) => {
                let _ = write!(
                    h,
                    "<p>No embedding map: run <code>{}</code> has no image/spectrum embeddings ({}).</p>",
                    &d.summary.id[..8],
                    esc(&format!("{e:#}"))
                );
                return Ok(finish(h));
            }
        };
        let cfg = astroclip_core::config::from_stored(&d.config)
            .with_context(|| format!("run {} has an unreadable stored configuration", d.summary.id))?;
        let (source, _) = astroclip_core::run::load_source(&cfg)?;
        let z = source.truth_column("redshift").map(<[f32]>::to_vec);
        let test: Vec<usize> = emb.test.iter().copied().take(1000).collect();
        if let (Some(z), false) = (z, test.is_empty()) {
            let pts = pca2(&test.iter().map(|&i| unit(&emb.image[i])).collect::<Vec<_>>());
            let (zmin, zmax) =
                test.iter().fold((f64::MAX, f64::MIN), |(a, b), &i| (a.min(z[i] as f64), b.max(z[i] as f64)));
            let (x0, x1, y0, y1) = pts.iter().fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(a, b, c, e), p| {
                (a.min(p.0), b.max(p.0), c.min(p.1), e.max(p.1))
            });
            let _ = write!(
                h,
                r##"<h2>Embedding map</h2><p>Held-out image embeddings of run <code>{}</code>, first two principal axes, coloured by redshift ({zmin:.3} dark → {zmax:.3} yellow).</p><svg id="embedding-map" width="520" height="520" viewBox="0 0 520 520"><rect width="520" height="520" fill="white" stroke="#ccc"/>"##,
                &d.summary.id[..8]
            );
            for (k, p) in pts.iter().enumerate() {
                let (r, g, b) = viridis((z[test[k]] as f64 - zmin) / (zmax - zmin).max(1e-9));
                let sx = 10.0 + (p.0 - x0) / (x1 - x0).max(1e-9) * 500.0;
                let sy = 510.0 - (p.1 - y0) / (y1 - y0).max(1e-9) * 500.0;
                let _ = write!(h, r#"<circle class="pt" cx="{sx:.1}" cy="{sy:.1}" r="3" fill="rgb({r},{g},{b})"/>"#);
            }
            h.push_str("</svg>");
            // Retrieval: image query → top-3 spectra among held-out objects.
            h.push_str("<h2>Cross-modal retrieval examples</h2><p>An image cutout (z, r, g as R, G, B) and the three held-out spectra whose embeddings are closest to its image embedding; green = its own spectrum.</p>");
            let mut reader = source.reader()?;
            let (il, sl) =
                (source.image_size() * source.image_size() * source.bands().len(), source.wavelength().len());
            let spec_units: Vec<Vec<f64>> = test.iter().map(|&i| unit(&emb.spectrum[i])).collect();
            for &q in test.iter().take(4) {
                let qv = unit(&emb.image[q]);
                let mut scored: Vec<(f64, usize)> = spec_units
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (s.iter().zip(&qv).map(|(a, b)| a * b).sum::<f64>(), test[k]))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                let (mut img, mut flux, mut ivar) = (vec![0f32; il], vec![0f32; sl], vec![0f32; sl]);
                reader.read(q, &mut img, &mut flux, &mut ivar)?;
                let png = cutout_png(&img, source.image_size());
                let _ = write!(
                    h,
                    r#"<div class="ex"><figure><img class="cutout" width="120" height="120" alt="cutout {}" src="data:image/png;base64,{}"/><figcaption>{} (z = {:.3})</figcaption></figure>"#,
                    esc(&source.object_ids()[q]),
                    base64(&png),
                    esc(&source.object_ids()[q]),
                    z[q]
                );
                for &(sim, j) in scored.iter().take(3) {
                    reader.read(j, &mut img, &mut flux, &mut ivar)?;
                    let label = format!("{} z = {:.3} cos = {sim:.2}", source.object_ids()[j], z[j]);
                    h.push_str(&spectrum_svg(source.wavelength(), &flux, &label, j == q));
                }
                h.push_str("</div>");
            }
        }
    }
    Ok(finish(h))
}

/// Closes the page with a self-check for headless browsers (and curious readers): how many
/// plot curves rendered, how many map points, whether every image decoded — written onto
/// <body> once the page has loaded.
fn finish(mut h: String) -> String {
    h.push_str(
        "<script>window.addEventListener('load',()=>{const b=document.body;\
         b.dataset.svgPlots=document.querySelectorAll('div.plot svg polyline.series').length;\
         b.dataset.mapPoints=document.querySelectorAll('#embedding-map circle').length;\
         b.dataset.images=document.images.length;\
         b.dataset.brokenImages=[...document.images].filter(i=>!(i.complete&&i.naturalWidth>0)).length;});</script>",
    );
    h.push_str("</body></html>\n");
    h
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

    #[test]
    fn pca_finds_the_dominant_axis() {
        // Points along (1, 1, 0) with small noise along (0, 0, 1): the first axis carries the spread.
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![i as f64, i as f64, 0.01 * ((i * 7) % 5) as f64]).collect();
        let p = pca2(&rows);
        let spread = |k: usize| p.iter().map(|q| if k == 0 { q.0 } else { q.1 }).map(|v| v * v).sum::<f64>();
        assert!(spread(0) > 1000.0 * spread(1), "{} vs {}", spread(0), spread(1));
    }
}
