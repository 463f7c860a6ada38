//! A probe as a native plugin (array interface 1.1): ridge regression on standardised
//! embeddings, w = (XᵀX + λ·n·I)⁻¹ Xᵀ(y − ȳ), λ = 1e-3, solved by Cholesky in f64. A linear
//! probe is the cheapest few-shot baseline next to AstroCLIP's k-NN and MLP probes.
use astroclip_plugin_sdk::{ArrayProbe, export_plugin};

const LAMBDA: f64 = 1e-3;

#[derive(Default)]
pub struct Ridge {
    mean: Vec<f64>,
    scale: Vec<f64>,
    w: Vec<f64>,
    bias: f64,
}

impl ArrayProbe for Ridge {
    const NAME: &'static str = "ridge";

    fn new() -> Self {
        Self::default()
    }

    fn fit(&mut self, x: &[f32], rows: usize, cols: usize, y: &[f32]) -> Result<(), String> {
        if rows < 2 || cols == 0 {
            return Err(format!("need at least 2 rows and 1 column, got {rows} × {cols}"));
        }
        if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
            return Err(format!("non-finite training value at flat index {i}"));
        }
        let n = rows as f64;
        self.mean = (0..cols).map(|c| (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() / n).collect();
        self.scale = (0..cols)
            .map(|c| {
                let v = (0..rows).map(|r| (x[r * cols + c] as f64 - self.mean[c]).powi(2)).sum::<f64>() / n;
                v.sqrt().max(1e-12)
            })
            .collect();
        let z = |r: usize, c: usize| (x[r * cols + c] as f64 - self.mean[c]) / self.scale[c];
        self.bias = y.iter().map(|&v| v as f64).sum::<f64>() / n;
        // Normal equations A w = b with A = ZᵀZ + λ n I.
        let mut a = vec![0f64; cols * cols];
        let mut b = vec![0f64; cols];
        for r in 0..rows {
            let yr = y[r] as f64 - self.bias;
            for i in 0..cols {
                let zi = z(r, i);
                b[i] += zi * yr;
                for j in 0..=i {
                    a[i * cols + j] += zi * z(r, j);
                }
            }
        }
        for i in 0..cols {
            a[i * cols + i] += LAMBDA * n;
        }
        // Cholesky: A = L Lᵀ (lower triangle in place).
        for j in 0..cols {
            let mut d = a[j * cols + j];
            for k in 0..j {
                d -= a[j * cols + k] * a[j * cols + k];
            }
            if d <= 0.0 {
                return Err("normal equations not positive definite".into());
            }
            let d = d.sqrt();
            a[j * cols + j] = d;
            for i in j + 1..cols {
                let mut s = a[i * cols + j];
                for k in 0..j {
                    s -= a[i * cols + k] * a[j * cols + k];
                }
                a[i * cols + j] = s / d;
            }
        }
        let mut w = b;
        for i in 0..cols {
            for k in 0..i {
                w[i] -= a[i * cols + k] * w[k];
            }
            w[i] /= a[i * cols + i];
        }
        for i in (0..cols).rev() {
            for k in i + 1..cols {
                w[i] -= a[k * cols + i] * w[k];
            }
            w[i] /= a[i * cols + i];
        }
        self.w = w;
        Ok(())
    }

    fn predict(&self, x: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Result<(), String> {
        if self.w.is_empty() {
            return Err("predict called before fit".into());
        }
        if cols != self.w.len() {
            return Err(format!("fitted on {} columns, asked to predict {cols}", self.w.len()));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(format!("non-finite query value in row {} (column {})", i / cols, i % cols));
        }
        for r in 0..rows {
            let mut s = self.bias;
            for c in 0..cols {
                s += (x[r * cols + c] as f64 - self.mean[c]) / self.scale[c] * self.w[c];
            }
            out[r] = s as f32;
        }
        Ok(())
    }
}

export_plugin!(id: "ridge-probe", version: "0.1.0", tokenizers: [], probes: [Ridge]);
