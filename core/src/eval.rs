//! Evaluation on the held-out split, as AstroCLIP's zero-shot protocol: embeddings of both
//! modalities, k-NN regression (k = 64, distance-weighted, standardised) of each truth property
//! from image embeddings, spectrum embeddings, and cross-modally (image queries against the
//! spectrum embeddings of the training set); R² per property; and image→spectrum retrieval
//! recall@k among the held-out pairs.
//!
//! Every evaluation also measures the embedding space itself
//! ([`astroclip_builtin::diagnostics`]: effective rank, uniformity and PCA variance per
//! modality, alignment of the pairs) on the held-out objects, so a collapsed embedding shows
//! in the registry.
//!
//! Embeddings are L2-normalised before the probe: the contrastive loss only constrains their
//! direction, and it puts both modalities on one sphere so cross-modal neighbours make sense.

use astroclip_builtin::diagnostics::{DiagnosticsError, ModalityDiagnostics};
use astroclip_plugin_api::{ModalityEncoder, ProbeInput};
use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;

use crate::components::{Model, knn_probe};
use crate::dataset::TrainingData;

/// Row-major `(n, dim)` embeddings of one modality.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub n: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    pub fn select(&self, idx: &[usize]) -> Embeddings {
        let mut values = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            values.extend_from_slice(self.row(i));
        }
        Embeddings { n: idx.len(), dim: self.dim, values }
    }

    /// Rows scaled to unit L2 norm.
    pub fn normalized(mut self) -> Self {
        for row in self.values.chunks_mut(self.dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        self
    }
}

/// Runs `encode` over every object of `data` in batches; `encode` returns one row-major
/// `(n, dims[j])` block per output. Rows of skipped objects stay zero.
fn embed_batches(
    data: &TrainingData,
    batch: usize,
    device: &Device,
    dims: &[usize],
    mut encode: impl FnMut(burn::tensor::Tensor<2>, burn::tensor::Tensor<2>) -> Vec<Vec<f32>>,
) -> Result<Vec<Embeddings>, crate::data::DataError> {
    let n = data.len();
    let mut out: Vec<Embeddings> = dims.iter().map(|&dim| Embeddings { n, dim, values: vec![0f32; n * dim] }).collect();
    let batch = batch.max(1);
    let plan: crate::data::loader::Plan = std::sync::Arc::new(move |k| (k * batch..((k + 1) * batch).min(n)).collect());
    let (il, sl) = (data.tokenizers.image_len(), data.tokenizers.spectrum_len());
    for b in data.batches(plan, n.div_ceil(batch)) {
        let b = b?;
        if b.is_empty() {
            continue;
        }
        let idx = b.indices.clone();
        let (imgs, specs) = b.tensors(il, sl, device);
        for (e, block) in out.iter_mut().zip(encode(imgs, specs)) {
            let dim = e.dim;
            for (r, &i) in idx.iter().enumerate() {
                e.values[i * dim..(i + 1) * dim].copy_from_slice(&block[r * dim..(r + 1) * dim]);
            }
        }
    }
    Ok(out)
}

fn rows(t: burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// Embeds every object of `data` with both encoders (evaluation mode, no autodiff). Rows of
/// objects the loader skipped (`data.on_bad = "skip"`) stay zero; callers drop them through
/// [`TrainingData::excluded`].
pub fn embed_all(
    model: &Model,
    data: &TrainingData,
    batch: usize,
    device: &Device,
) -> Result<(Embeddings, Embeddings), crate::data::DataError> {
    let model = model.valid();
    let dim = model.image.embed_dim();
    let mut e = embed_batches(data, batch, &device.clone().inner(), &[dim, dim], |imgs, specs| {
        vec![rows(model.image.encode(imgs)), rows(model.spectrum.encode(specs))]
    })?;
    let spectrum = e.pop().expect("two outputs");
    Ok((e.pop().expect("two outputs"), spectrum))
}

/// Runs `encode` (one row-major `(batch, dim)` block per call) over every object of `data`.
pub fn embed_with(
    data: &TrainingData,
    batch: usize,
    device: &Device,
    dim: usize,
    mut encode: impl FnMut(burn::tensor::Tensor<2>, burn::tensor::Tensor<2>) -> Vec<f32>,
) -> Result<Embeddings, crate::data::DataError> {
    let mut e = embed_batches(data, batch, device, &[dim], |imgs, specs| vec![encode(imgs, specs)])?;
    Ok(e.pop().expect("one output"))
}

/// Embeds every object's image with `encoder` (evaluation mode, no autodiff).
pub fn embed_images<E: ModalityEncoder + Module>(
    encoder: &E,
    data: &TrainingData,
    batch: usize,
    device: &Device,
) -> Result<Embeddings, crate::data::DataError> {
    let encoder = encoder.valid();
    let mut e = embed_batches(data, batch, &device.clone().inner(), &[encoder.embed_dim()], |imgs, _| {
        vec![rows(encoder.encode(imgs))]
    })?;
    Ok(e.pop().expect("one output"))
}

#[derive(Debug, Clone, Serialize)]
pub struct R2Row {
    /// `image`, `spectrum` or `image→spectrum`.
    pub source: String,
    /// `(property, R²)` in the configured order.
    pub r2: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub n_train: usize,
    pub n_test: usize,
    pub rows: Vec<R2Row>,
    /// `(k, recall)` of image→spectrum retrieval among the test pairs.
    pub recall: Vec<(usize, f64)>,
    /// Few-shot protocol: MLP probe R² per source (empty when `eval.few_shot` is off).
    #[serde(default)]
    pub few_shot: Vec<R2Row>,
    /// Supervised baselines: R² of the model's own predictions per source.
    #[serde(default)]
    pub supervised: Vec<R2Row>,
    /// The embedding space's diagnostics on the held-out objects (absent for the photometry
    /// MLP and with fewer than two held-out objects).
    #[serde(default)]
    pub diagnostics: Option<EmbeddingDiagnostics>,
}

/// Held-out objects the diagnostics use: the first ones of the test split (uniformity costs
/// n² distances).
pub const DIAGNOSTIC_ROWS: usize = 4096;

/// Diagnostics of the embedding space ([`astroclip_builtin::diagnostics`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EmbeddingDiagnostics {
    /// One per modality embedded (`image`, `spectrum`).
    pub modalities: Vec<ModalityDiagnostics>,
    /// Wang & Isola's alignment of each object's image and spectrum embeddings (models that
    /// embed both).
    pub alignment: Option<f64>,
}

/// The diagnostics of already normalised embeddings over the first [`DIAGNOSTIC_ROWS`] of
/// `test`; `None` with fewer than two.
pub fn diagnose(modalities: &[(&str, &Embeddings)], test: &[usize]) -> Result<Option<EmbeddingDiagnostics>, EvalError> {
    let rows = &test[..test.len().min(DIAGNOSTIC_ROWS)];
    if rows.len() < 2 {
        return Ok(None);
    }
    let selected: Vec<(&str, Embeddings)> = modalities.iter().map(|(s, e)| (*s, e.select(rows))).collect();
    let mut out = EmbeddingDiagnostics { modalities: vec![], alignment: None };
    for (source, e) in &selected {
        out.modalities.push(astroclip_builtin::diagnostics::diagnose(source, &e.values, e.n, e.dim)?);
    }
    if let [(_, a), (_, b)] = selected.as_slice()
        && a.dim == b.dim
    {
        out.alignment = Some(astroclip_builtin::diagnostics::alignment(&a.values, &b.values, a.n, a.dim)?);
    }
    Ok(Some(out))
}

pub struct EvalInput<'a> {
    pub image: &'a Embeddings,
    pub spectrum: &'a Embeddings,
    pub train_idx: &'a [usize],
    pub test_idx: &'a [usize],
    /// `(property name, values for all objects)`.
    pub targets: Vec<(String, &'a [f32])>,
    pub k: usize,
    pub recall_at: &'a [usize],
    /// Also train the few-shot MLP probe.
    pub few_shot: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("evaluation: {0}")]
    Probe(#[from] astroclip_plugin_api::ComponentError),
    #[error("evaluation: {0}")]
    Diagnostics(#[from] DiagnosticsError),
}

pub fn evaluate(input: &EvalInput<'_>) -> Result<EvalReport, EvalError> {
    let img = input.image.clone().normalized();
    let spec = input.spectrum.clone().normalized();
    let pairs: [(&str, &Embeddings, &Embeddings); 3] =
        [("image", &img, &img), ("spectrum", &spec, &spec), ("image→spectrum", &spec, &img)];
    let mut rows = Vec::new();
    for (source, neighbours, queries) in pairs {
        rows.push(r2_row(source, neighbours, queries, input)?);
    }
    let recall = retrieval_recall(&img.select(input.test_idx), &spec.select(input.test_idx), input.recall_at);
    let diagnostics = diagnose(&[("image", &img), ("spectrum", &spec)], input.test_idx)?;
    let mut few_shot = Vec::new();
    if input.few_shot {
        for (source, e) in [("image", &img), ("spectrum", &spec)] {
            few_shot.push(r2_row_with(source, e, e, input, &mlp_probe)?);
        }
    }
    Ok(EvalReport {
        n_train: input.train_idx.len(),
        n_test: input.test_idx.len(),
        rows,
        recall,
        few_shot,
        supervised: vec![],
        diagnostics,
    })
}

/// k-NN R² of every target, neighbours from the training rows of `neighbours`, queries the
/// test rows of `queries` (both already normalised).
fn r2_row(
    source: &str,
    neighbours: &Embeddings,
    queries: &Embeddings,
    input: &EvalInput<'_>,
) -> Result<R2Row, EvalError> {
    r2_row_with(source, neighbours, queries, input, &|| knn_probe(input.k))
}

/// The few-shot probe of the evaluation (AstroCLIP: MLP [64, 64], dropout 0.1, Adam 1e-3).
pub fn mlp_probe() -> Box<dyn astroclip_plugin_api::Probe> {
    Box::new(astroclip_builtin::mlp_probe::MlpProbe::new(Default::default()))
}

fn r2_row_with(
    source: &str,
    neighbours: &Embeddings,
    queries: &Embeddings,
    input: &EvalInput<'_>,
    probe: &dyn Fn() -> Box<dyn astroclip_plugin_api::Probe>,
) -> Result<R2Row, EvalError> {
    let r2 = probe_r2(neighbours, queries, input.train_idx, input.test_idx, &input.targets, &|| Ok(probe()))?;
    Ok(R2Row { source: source.to_string(), r2 })
}

/// R² per target of a fresh probe (from `probe`) fitted on the `train` rows of `neighbours`
/// and predicting the `test` rows of `queries`: every protocol of the evaluation (k-NN, MLP,
/// plugin probes; in-modal and cross-modal) is this.
pub fn probe_r2(
    neighbours: &Embeddings,
    queries: &Embeddings,
    train: &[usize],
    test: &[usize],
    targets: &[(String, &[f32])],
    probe: &dyn Fn() -> Result<Box<dyn astroclip_plugin_api::Probe>, astroclip_plugin_api::ComponentError>,
) -> Result<Vec<(String, f64)>, EvalError> {
    let (tr, te) = (neighbours.select(train), queries.select(test));
    let mut r2 = Vec::new();
    for (name, values) in targets {
        let y_train: Vec<f32> = train.iter().map(|&i| values[i]).collect();
        let y_test: Vec<f32> = test.iter().map(|&i| values[i]).collect();
        let mut probe = probe()?;
        probe.fit(ProbeInput::new(&tr.values, tr.n, tr.dim)?, &y_train)?;
        let pred = probe.predict(ProbeInput::new(&te.values, te.n, te.dim)?)?;
        r2.push((name.clone(), astroclip_builtin::knn::r2_score(&y_test, &pred)));
    }
    Ok(r2)
}

/// The rows of one modality alone (single-modality models: no cross-modal row, no
/// retrieval): `input.image` holds the embeddings, labelled `source`; `input.spectrum` is
/// ignored.
pub fn evaluate_single(input: &EvalInput<'_>, source: &str) -> Result<EvalReport, EvalError> {
    let img = input.image.clone().normalized();
    let row = r2_row(source, &img, &img, input)?;
    let few_shot = if input.few_shot { vec![r2_row_with(source, &img, &img, input, &mlp_probe)?] } else { vec![] };
    Ok(EvalReport {
        n_train: input.train_idx.len(),
        n_test: input.test_idx.len(),
        rows: vec![row],
        recall: vec![],
        few_shot,
        supervised: vec![],
        diagnostics: diagnose(&[(source, &img)], input.test_idx)?,
    })
}

/// Fraction of queries (rows of `queries`) whose own pair (same row of `keys`) ranks within
/// the top k by cosine similarity. Ties count against the query (strictly-greater ranking).
pub fn retrieval_recall(queries: &Embeddings, keys: &Embeddings, ks: &[usize]) -> Vec<(usize, f64)> {
    let n = queries.n;
    let mut ranks = Vec::with_capacity(n);
    for i in 0..n {
        let q = queries.row(i);
        let sim = |j: usize| keys.row(j).iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
        let own = sim(i);
        let better = (0..n).filter(|&j| j != i && sim(j) >= own).count();
        ranks.push(better);
    }
    ks.iter().map(|&k| (k, ranks.iter().filter(|&&r| r < k).count() as f64 / n.max(1) as f64)).collect()
}

impl EvalReport {
    /// The R² table as aligned text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(first) = self.supervised.first().filter(|_| self.rows.is_empty()) {
            out.push_str(&format!(
                "supervised baseline R² on {} held-out galaxies ({} training)\n{:<16}",
                self.n_test, self.n_train, "input"
            ));
            for (p, _) in &first.r2 {
                out.push_str(&format!("{p:>12}"));
            }
            out.push_str(&format!("{:>12}\n", "mean"));
            for row in &self.supervised {
                out.push_str(&format!("{:<16}", row.source));
                for (_, v) in &row.r2 {
                    out.push_str(&format!("{v:>12.3}"));
                }
                let mean = row.r2.iter().map(|(_, v)| v).sum::<f64>() / row.r2.len().max(1) as f64;
                out.push_str(&format!("{mean:>12.3}\n"));
            }
            if let Some(d) = &self.diagnostics {
                out.push_str(&d.table());
            }
            return out;
        }
        let props: Vec<&str> =
            self.rows.first().map(|r| r.r2.iter().map(|(p, _)| p.as_str()).collect()).unwrap_or_default();
        out.push_str(&format!(
            "zero-shot k-NN R² on {} held-out galaxies ({} neighbours pool)\n",
            self.n_test, self.n_train
        ));
        out.push_str(&format!("{:<16}", "embedding"));
        for p in &props {
            out.push_str(&format!("{p:>12}"));
        }
        out.push_str(&format!("{:>12}\n", "mean"));
        for row in &self.rows {
            out.push_str(&format!("{:<16}", row.source));
            for (_, v) in &row.r2 {
                out.push_str(&format!("{v:>12.3}"));
            }
            let mean = row.r2.iter().map(|(_, v)| v).sum::<f64>() / row.r2.len().max(1) as f64;
            out.push_str(&format!("{mean:>12.3}\n"));
        }
        if !self.few_shot.is_empty() {
            out.push_str("few-shot MLP probe R² (hidden [64, 64], dropout 0.1, Adam 1e-3)\n");
            for row in &self.few_shot {
                out.push_str(&format!("{:<16}", row.source));
                for (_, v) in &row.r2 {
                    out.push_str(&format!("{v:>12.3}"));
                }
                let mean = row.r2.iter().map(|(_, v)| v).sum::<f64>() / row.r2.len().max(1) as f64;
                out.push_str(&format!("{mean:>12.3}\n"));
            }
        }
        if !self.recall.is_empty() {
            out.push_str("image→spectrum retrieval:");
            for (k, r) in &self.recall {
                out.push_str(&format!("  recall@{k} = {r:.3}"));
            }
            out.push_str(&format!("  (chance @1 = {:.4})\n", 1.0 / self.n_test.max(1) as f64));
        }
        if let Some(d) = &self.diagnostics {
            out.push_str(&d.table());
        }
        out
    }
}

impl EmbeddingDiagnostics {
    /// Effective rank, uniformity and PCA variance per modality, then the alignment, as text.
    pub fn table(&self) -> String {
        let Some(first) = self.modalities.first() else { return String::new() };
        let mut out = format!(
            "embedding diagnostics on {} held-out galaxies (effective rank of at most {}; uniformity: 0 = one point, lower = more spread)\n",
            first.n, first.dim
        );
        out.push_str(&format!(
            "{:<16}{:>16}{:>12}{:>12}{:>12}{:>12}\n",
            "embedding", "effective rank", "uniformity", "PC1 var", "PC2 var", "PC1-10 var"
        ));
        for m in &self.modalities {
            let pc = |i: usize| m.pca_variance.get(i).copied().unwrap_or(0.0);
            out.push_str(&format!(
                "{:<16}{:>16.2}{:>12.3}{:>12.3}{:>12.3}{:>12.3}\n",
                m.source,
                m.effective_rank,
                m.uniformity,
                pc(0),
                pc(1),
                m.pca_variance.iter().sum::<f64>()
            ));
        }
        if let Some(a) = self.alignment {
            out.push_str(&format!(
                "image↔spectrum alignment (mean squared distance of paired unit embeddings) = {a:.3}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_own_pair_rank() {
        // Query 0 matches key 0 best; query 1's best key is 0, its own pair ranks second.
        let q = Embeddings { n: 2, dim: 2, values: vec![1.0, 0.0, 0.8, 0.6] };
        let k = Embeddings { n: 2, dim: 2, values: vec![1.0, 0.0, 0.0, 1.0] };
        assert_eq!(retrieval_recall(&q, &k, &[1, 2]), vec![(1, 0.5), (2, 1.0)]);
    }
}
