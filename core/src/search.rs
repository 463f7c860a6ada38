//! `astroclip search`: nearest neighbours by cosine similarity in an embedded catalogue
//! (`astroclip embed`'s Parquet), in one modality or across (image → spectrum, spectrum →
//! image), exact, by blocked matrix products through the shared top-k kernel
//! ([`astroclip_builtin::topk`], the k-NN probe's too).
//!
//! Rows are L2-normalised on reading, so the inner product is the cosine similarity the
//! contrastive loss trained (AstroCLIP's `CLIPLoss` normalises both sides the same way).

use std::path::Path;

use anyhow::bail;
use astroclip_builtin::topk::{Database, Metric, top_k};
use serde::Serialize;

use crate::embed::{Modality, read_column};

/// One modality's unit-length embeddings of a catalogue.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub ids: Vec<String>,
    pub rows: Vec<f32>,
    pub dim: usize,
}

impl Embedded {
    pub fn read(path: &Path, modality: Modality) -> anyhow::Result<Self> {
        let (ids, mut rows, dim) = read_column(path, modality)?;
        normalize(&mut rows, dim);
        Ok(Self { ids, rows, dim })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// The row of `id`.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    fn database(&self) -> Database<'_> {
        Database { rows: &self.rows, n: self.len(), dim: self.dim, norms: None }
    }
}

/// Scales every row to unit length (a zero row stays zero).
pub fn normalize(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_mut(dim.max(1)) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|v| *v /= n);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Match {
    pub rank: usize,
    pub object_id: String,
    pub cosine: f32,
    /// The match's catalogue row.
    #[serde(skip)]
    pub row: usize,
}

/// `(cosine, row)` of the `k` rows of `targets` most similar to each of `queries` (row-major,
/// unit length), best first: the exact answer the approximate index is measured against.
pub fn exact(targets: &Embedded, queries: &[f32], k: usize) -> Vec<Vec<(f32, usize)>> {
    top_k(&targets.database(), queries, k, Metric::InnerProduct)
}

/// The `k` rows of `targets` most similar to each of `queries` (row-major, unit length).
pub fn nearest(targets: &Embedded, queries: &[f32], k: usize) -> Vec<Vec<Match>> {
    matches(exact(targets, queries, k), &targets.ids)
}

fn matches(best: Vec<Vec<(f32, usize)>>, ids: &[String]) -> Vec<Vec<Match>> {
    best.into_iter()
        .map(|best| {
            best.into_iter()
                .enumerate()
                .map(|(r, (cos, i))| Match { rank: r + 1, object_id: ids[i].clone(), cosine: cos, row: i })
                .collect()
        })
        .collect()
}

/// How a search is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every catalogue row scored (blocked matrix products).
    Exact,
    /// The stored HNSW index of the searched modality ([`crate::ann`]); `ef` defaults to the
    /// breadth its recall was measured with.
    Index { ef: Option<usize> },
}

/// The `k` best catalogue rows of modality `to` for each query (row-major, unit length, the
/// catalogue's width).
pub fn by_rows(
    path: &Path,
    queries: &[f32],
    to: Modality,
    k: usize,
    method: Method,
) -> anyhow::Result<Vec<Vec<Match>>> {
    match method {
        Method::Exact => {
            let t = Embedded::read(path, to)?;
            check_width(path, queries, t.dim, to)?;
            Ok(nearest(&t, queries, k))
        }
        Method::Index { ef } => {
            let (index, meta) = crate::ann::load_for(path, to)?;
            check_width(path, queries, meta.dim, to)?;
            let ids = crate::embed::read_ids(path)?;
            if ids.len() != index.rows {
                bail!("{}: {} objects, the index {} rows; rebuild the index", path.display(), ids.len(), index.rows);
            }
            Ok(matches(index.search(queries, k, ef.unwrap_or(meta.ef_search)), &ids))
        }
    }
}

fn check_width(path: &Path, queries: &[f32], dim: usize, to: Modality) -> anyhow::Result<()> {
    if dim == 0 || queries.len() % dim != 0 {
        bail!(
            "{}: queries of {} values do not fit the {dim}-d {} embeddings",
            path.display(),
            queries.len(),
            to.as_str()
        );
    }
    Ok(())
}

/// Queries by object id: each id's `from` embedding against the catalogue's `to` embeddings.
pub fn by_ids(
    path: &Path,
    ids: &[String],
    from: Modality,
    to: Modality,
    k: usize,
    method: Method,
) -> anyhow::Result<Vec<Vec<Match>>> {
    let q = Embedded::read(path, from)?;
    let queries = query_rows(path, &q, ids)?;
    if from == to && method == Method::Exact {
        return Ok(nearest(&q, &queries, k));
    }
    by_rows(path, &queries, to, k, method)
}

fn query_rows(path: &Path, q: &Embedded, ids: &[String]) -> anyhow::Result<Vec<f32>> {
    let mut queries = Vec::with_capacity(ids.len() * q.dim);
    for id in ids {
        let Some(i) = q.find(id) else {
            bail!("{}: no object {id:?} in the catalogue ({} objects)", path.display(), q.len());
        };
        queries.extend_from_slice(q.row(i));
    }
    Ok(queries)
}

/// Retrieval of each object's own `to` embedding from its `from` embedding.
#[derive(Debug, Clone, Serialize)]
pub struct Recall {
    pub from: Modality,
    pub to: Modality,
    pub queries: usize,
    pub catalogue: usize,
    /// `(k, fraction of queries whose own object is among the first k)`.
    pub recall: Vec<(usize, f64)>,
    /// The same for a random ranking: `k / catalogue`.
    pub chance: Vec<(usize, f64)>,
}

/// Recall@k of the paired object for up to `max_queries` queries (every
/// `⌈n / max_queries⌉`-th row).
pub fn recall(path: &Path, from: Modality, to: Modality, ks: &[usize], max_queries: usize) -> anyhow::Result<Recall> {
    let q = Embedded::read(path, from)?;
    let t = if from == to { q.clone() } else { Embedded::read(path, to)? };
    let n = q.len();
    if n == 0 {
        bail!("{}: the catalogue is empty", path.display());
    }
    let step = n.div_ceil(max_queries.max(1)).max(1);
    let rows: Vec<usize> = (0..n).step_by(step).collect();
    let queries: Vec<f32> = rows.iter().flat_map(|&i| q.row(i).iter().copied()).collect();
    let kmax = ks.iter().copied().max().unwrap_or(1);
    let best = top_k(&t.database(), &queries, kmax, Metric::InnerProduct);
    let recall = ks
        .iter()
        .map(|&k| {
            let hits = rows.iter().zip(&best).filter(|(i, b)| b.iter().take(k).any(|&(_, j)| j == **i)).count();
            (k, hits as f64 / rows.len() as f64)
        })
        .collect();
    let chance = ks.iter().map(|&k| (k, (k.min(n)) as f64 / n as f64)).collect();
    Ok(Recall { from, to, queries: rows.len(), catalogue: n, recall, chance })
}
