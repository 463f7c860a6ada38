//! k-nearest-neighbour regression probe `knn`, as AstroCLIP's zero-shot evaluation
//! (`astroclip/downstream_tasks/property_estimation`): features standardised with the training
//! set's mean and standard deviation (scikit-learn `StandardScaler`, population std, a zero std
//! left as 1), then scikit-learn `KNeighborsRegressor(n_neighbors=k, weights="distance")`:
//! Euclidean distance, prediction `Σ wᵢ yᵢ / Σ wᵢ` with `wᵢ = 1/dᵢ`, and where a query has
//! neighbours at distance 0 only those count, equally.

use crate::topk::{Database, Metric, top_k};
use astroclip_plugin_api::{ComponentError, ComponentInfo, ComponentKind, Probe, ProbeInput};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct KnnRegressor {
    pub k: usize,
    pub standardize: bool,
    mean: Vec<f32>,
    scale: Vec<f32>,
    train: Vec<f32>,
    /// `|t|²` of each standardised training row.
    train_norms: Vec<f32>,
    targets: Vec<f32>,
    cols: usize,
}

impl KnnRegressor {
    pub fn new(k: usize, standardize: bool) -> Self {
        Self {
            k,
            standardize,
            mean: vec![],
            scale: vec![],
            train: vec![],
            train_norms: vec![],
            targets: vec![],
            cols: 0,
        }
    }

    fn err(detail: String) -> ComponentError {
        ComponentError::Other { component: "knn".into(), detail }
    }

    fn transform_row(&self, row: &[f32], out: &mut [f32]) {
        for j in 0..self.cols {
            out[j] = (row[j] - self.mean[j]) / self.scale[j];
        }
    }

    /// Predictions for query rows `first..first + out.len()`, whose standardised values are
    /// `q` and whose dot products with every training row are `dots` (row-major).
    ///
    /// Candidates come from `|q|² + |t|² - 2 q·t` (one matrix product for the whole block, as
    /// scikit-learn's brute-force search does); the nearest [`CANDIDATE_MARGIN`] beyond `k` are
    /// then re-measured directly as `Σ (q - t)²`, so rounding in the expansion can neither
    /// reorder the k-th neighbour nor hide an exact duplicate (distance 0).
    /// The prediction for standardised query `qr` from its candidate neighbours (indices
    /// into the training rows), re-ranked by exact f64 distance.
    fn predict_one(&self, qr: &[f32], candidates: &[(f32, usize)], k: usize) -> f32 {
        let cols = self.cols;
        let mut exact: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&(_, t)| {
                let row = &self.train[t * cols..(t + 1) * cols];
                (row.iter().zip(qr).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(), t)
            })
            .collect();
        self.weighted_mean(&mut exact, k)
    }

    fn weighted_mean(&self, dist: &mut [(f64, usize)], k: usize) -> f32 {
        dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        let near = &dist[..k];
        let exact: Vec<_> = near.iter().filter(|(d, _)| *d == 0.0).collect();
        let pred = if !exact.is_empty() {
            exact.iter().map(|(_, t)| self.targets[*t] as f64).sum::<f64>() / exact.len() as f64
        } else {
            let (mut num, mut den) = (0f64, 0f64);
            for &(d2, t) in near {
                let w = 1.0 / d2.sqrt();
                num += w * self.targets[t] as f64;
                den += w;
            }
            num / den
        };
        pred as f32
    }
}

/// Neighbours beyond `k` taken by f32 distance from the shared top-k kernel
/// ([`crate::topk`]) and re-measured exactly in f64 ([`KnnRegressor::predict_one`]).
const CANDIDATE_MARGIN: usize = 16;

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
            // Row by row (the rows are contiguous), two passes in f64 as before.
            let mut sum = vec![0f64; x.cols];
            for i in 0..x.rows {
                sum.iter_mut().zip(x.row(i)).for_each(|(s, v)| *s += *v as f64);
            }
            let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
            let mut sq = vec![0f64; x.cols];
            for i in 0..x.rows {
                sq.iter_mut().zip(x.row(i)).zip(&mean).for_each(|((s, v), m)| *s += (*v as f64 - m).powi(2));
            }
            for j in 0..x.cols {
                let v = sq[j] / n;
                self.mean[j] = mean[j] as f32;
                self.scale[j] = if v > 0.0 { v.sqrt() as f32 } else { 1.0 };
            }
        }
        let mut train = vec![0.0; x.values.len()];
        for (i, out) in train.chunks_mut(x.cols).enumerate() {
            self.transform_row(x.row(i), out);
        }
        self.train_norms = train.chunks(x.cols.max(1)).map(|r| r.iter().map(|v| v * v).sum()).collect();
        if x.cols == 0 {
            self.train_norms = vec![0.0; x.rows];
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
        let cols = self.cols;
        let n_train = self.targets.len();
        let k = self.k.min(n_train);
        let mut q = vec![0f32; x.rows * cols];
        for (r, qr) in q.chunks_mut(cols.max(1)).enumerate().take(x.rows) {
            self.transform_row(x.row(r), qr);
        }
        let candidates = if cols == 0 {
            // No features: every training row is at distance 0.
            vec![(0..n_train).map(|t| (0.0, t)).take(k + CANDIDATE_MARGIN).collect::<Vec<_>>(); x.rows]
        } else {
            let db = Database { rows: &self.train, n: n_train, dim: cols, norms: Some(&self.train_norms) };
            top_k(&db, &q, k + CANDIDATE_MARGIN, Metric::SquaredL2)
        };
        // The exact (f64) re-ranking of each query's candidates, queries over the cores.
        let out = (0..x.rows)
            .into_par_iter()
            .map(|r| self.predict_one(&q[r * cols..(r + 1) * cols], &candidates[r], k))
            .collect();
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
