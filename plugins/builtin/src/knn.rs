//! k-nearest-neighbour regression probe `knn`, as AstroCLIP's zero-shot evaluation
//! (`astroclip/downstream_tasks/property_estimation`): features standardised with the training
//! set's mean and standard deviation (scikit-learn `StandardScaler`, population std, a zero std
//! left as 1), then scikit-learn `KNeighborsRegressor(n_neighbors=k, weights="distance")`:
//! Euclidean distance, prediction `Σ wᵢ yᵢ / Σ wᵢ` with `wᵢ = 1/dᵢ`, and where a query has
//! neighbours at distance 0 only those count, equally.

use astroclip_plugin_api::{ComponentError, ComponentInfo, ComponentKind, Probe, ProbeInput};

#[derive(Debug, Clone)]
pub struct KnnRegressor {
    pub k: usize,
    pub standardize: bool,
    mean: Vec<f32>,
    scale: Vec<f32>,
    train: Vec<f32>,
    targets: Vec<f32>,
    cols: usize,
}

impl KnnRegressor {
    pub fn new(k: usize, standardize: bool) -> Self {
        Self { k, standardize, mean: vec![], scale: vec![], train: vec![], targets: vec![], cols: 0 }
    }

    fn err(detail: String) -> ComponentError {
        ComponentError::Other { component: "knn".into(), detail }
    }

    fn transform_row(&self, row: &[f32], out: &mut [f32]) {
        for j in 0..self.cols {
            out[j] = (row[j] - self.mean[j]) / self.scale[j];
        }
    }
}

impl Probe for KnnRegressor {
    fn info(&self) -> ComponentInfo {
        crate::info("knn", ComponentKind::Probe, None)
    }

    fn fit(&mut self, x: ProbeInput<'_>, y: &[f32]) -> Result<(), ComponentError> {
        if x.rows != y.len() {
            return Err(Self::err(format!("{} rows but {} targets", x.rows, y.len())));
        }
        if x.rows == 0 {
            return Err(Self::err("no training rows".into()));
        }
        if let Some(i) = x.values.iter().chain(y).position(|v| !v.is_finite()) {
            return Err(Self::err(format!("non-finite training value at flat index {i}")));
        }
        self.cols = x.cols;
        let n = x.rows as f64;
        self.mean = vec![0.0; x.cols];
        self.scale = vec![1.0; x.cols];
        if self.standardize {
            for j in 0..x.cols {
                let m = (0..x.rows).map(|i| x.row(i)[j] as f64).sum::<f64>() / n;
                let v = (0..x.rows).map(|i| (x.row(i)[j] as f64 - m).powi(2)).sum::<f64>() / n;
                self.mean[j] = m as f32;
                self.scale[j] = if v > 0.0 { v.sqrt() as f32 } else { 1.0 };
            }
        }
        let mut train = vec![0.0; x.values.len()];
        for (i, out) in train.chunks_mut(x.cols).enumerate() {
            self.transform_row(x.row(i), out);
        }
        self.train = train;
        self.targets = y.to_vec();
        Ok(())
    }

    fn predict(&self, x: ProbeInput<'_>) -> Result<Vec<f32>, ComponentError> {
        if self.targets.is_empty() {
            return Err(Self::err("predict called before fit".into()));
        }
        if x.cols != self.cols {
            return Err(Self::err(format!("fitted on {} columns, asked to predict {}", self.cols, x.cols)));
        }
        // A NaN query would silently become a NaN prediction (found by the conformance kit).
        if let Some(i) = x.values.iter().position(|v| !v.is_finite()) {
            return Err(Self::err(format!(
                "non-finite query value in row {} (column {})",
                i / x.cols.max(1),
                i % x.cols.max(1)
            )));
        }
        let n_train = self.targets.len();
        let k = self.k.min(n_train);
        let mut q = vec![0f32; self.cols];
        let mut dist: Vec<(f32, usize)> = Vec::with_capacity(n_train);
        let mut out = Vec::with_capacity(x.rows);
        for i in 0..x.rows {
            self.transform_row(x.row(i), &mut q);
            dist.clear();
            for t in 0..n_train {
                let row = &self.train[t * self.cols..(t + 1) * self.cols];
                let d2: f32 = row.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
                dist.push((d2, t));
            }
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            let near = &dist[..k];
            let exact: Vec<_> = near.iter().filter(|(d, _)| *d == 0.0).collect();
            let pred = if !exact.is_empty() {
                exact.iter().map(|(_, t)| self.targets[*t] as f64).sum::<f64>() / exact.len() as f64
            } else {
                let (mut num, mut den) = (0f64, 0f64);
                for &(d2, t) in near {
                    let w = 1.0 / (d2 as f64).sqrt();
                    num += w * self.targets[t] as f64;
                    den += w;
                }
                num / den
            };
            out.push(pred as f32);
        }
        Ok(out)
    }
}

/// Coefficient of determination, as scikit-learn's `r2_score`: `1 - Σ(y-ŷ)² / Σ(y-ȳ)²`.
pub fn r2_score(y: &[f32], pred: &[f32]) -> f64 {
    let n = y.len() as f64;
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
    let ss_res: f64 = y.iter().zip(pred).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|&a| (a as f64 - mean).powi(2)).sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}
