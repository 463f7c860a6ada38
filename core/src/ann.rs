//! Approximate nearest neighbours for large embedded catalogues: a hierarchical navigable
//! small-world graph (HNSW; Malkov & Yashunin, "Efficient and robust approximate nearest
//! neighbor search using Hierarchical Navigable Small World graphs", IEEE TPAMI 2020,
//! arXiv:1603.09320) built by the `hnsw_rs` crate over unit-length embeddings, cosine
//! distance `1 − q·x`.
//!
//! An index is built once per catalogue and modality and stored next to the catalogue, in
//! `<catalogue>.<modality>.hnsw/`: hnsw_rs's two dump files (`index.hnsw.graph`,
//! `index.hnsw.data`) and `meta.json` (construction parameters, the catalogue it indexes by
//! size and SHA-256, the dump files' SHA-256, and the recall@10 against exact search measured
//! when it was built). Loading checks all of them first: a stale index (the catalogue changed)
//! or a damaged one is refused with the command that rebuilds it, never searched, and the
//! loader (whose own checks are assertions) only ever sees files this module wrote.
//!
//! The exact search of [`crate::search`] stays the reference: `astroclip search --index`
//! answers from the graph, `astroclip search index build` reports recall@10 of the graph
//! against exact top-10 over sampled catalogue rows.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use serde::{Deserialize, Serialize};

use crate::embed::Modality;
use crate::search::Embedded;

/// Version of the on-disk layout (`meta.json` and the dump files beside it).
pub const INDEX_FORMAT: u32 = 1;
const BASENAME: &str = "index";
/// hnsw_rs's `NB_LAYER_MAX` (crate-private): its dump refuses graphs with fewer layers.
const HNSW_LAYERS: usize = 16;

/// Cosine distance `1 − q·x` of unit-length rows, clamped at 0 (rounding can put `q·x` a
/// hair above 1, which anndists' `DistDot` asserts against).
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Lanes of [`dot_lanes`]: two zmm, four ymm or eight xmm registers of independent sums.
const LANES: usize = 32;

/// `a · b` summed in [`LANES`] lanes, then the lanes in order: the same arithmetic on every
/// CPU (Rust never reassociates or fuses float operations), compiled for AVX-512 or AVX2 where
/// the CPU has them (the search spends nearly all its time here; the baseline x86-64 build
/// has only SSE2).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            #[allow(unsafe_code)]
            return unsafe { dot_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            #[allow(unsafe_code)]
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // target_feature functions are unsafe to call; the body is safe code
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // as dot_avx512
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// hnsw_rs prints on stdout (a `println!` every 50 000 inserted points, and on some errors),
/// which would interleave with `--json` output: while one of these guards lives, file
/// descriptor 1 is a copy of 2 (stderr); dropping it restores stdout. Without a guard (`dup`
/// failed) stdout is left as it was.
struct StdoutToStderr {
    saved: i32,
}

impl StdoutToStderr {
    #[allow(unsafe_code)] // dup/dup2 of the process's own standard descriptors
    fn new() -> Option<Self> {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: plain descriptor calls on 1 and 2; every failure is checked and undone.
        let saved = unsafe { libc::dup(1) };
        if saved < 0 {
            return None;
        }
        if unsafe { libc::dup2(2, 1) } < 0 {
            unsafe { libc::close(saved) };
            return None;
        }
        Some(Self { saved })
    }
}

impl Drop for StdoutToStderr {
    #[allow(unsafe_code)] // restores the descriptor saved by `new`
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: `saved` is the descriptor `new` duplicated from stdout and still owns.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}

/// Construction parameters (hnswlib's names: `M`, `ef_construction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node and layer.
    pub m: usize,
    /// Candidate list length while inserting.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200 }
    }
}

/// What `meta.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format: u32,
    pub modality: Modality,
    pub rows: usize,
    pub dim: usize,
    pub params: HnswParams,
    /// The catalogue's file name, byte size and SHA-256 when the index was built.
    pub catalogue: String,
    pub catalogue_bytes: u64,
    pub catalogue_sha256: String,
    /// SHA-256 of `index.hnsw.graph` and `index.hnsw.data`.
    pub graph_sha256: String,
    pub data_sha256: String,
    pub build_seconds: f64,
    /// Recall@10 against exact search, measured at build time (see [`IndexMeta::ef_search`]).
    pub recall_at_10: f64,
    pub recall_queries: usize,
    /// The search breadth the recall was measured with, and the default for searches.
    pub ef_search: usize,
}

/// A built (or loaded) graph over one modality's unit-length rows; data ids are row numbers.
pub struct AnnIndex {
    hnsw: Hnsw<'static, f32, CosineDistance>,
    pub rows: usize,
    pub dim: usize,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("rows", &self.rows).field("dim", &self.dim).finish()
    }
}

impl AnnIndex {
    /// Inserts every row (row-major, unit length), over all cores.
    pub fn build(rows: &[f32], dim: usize, params: HnswParams) -> anyhow::Result<Self> {
        if dim == 0 || rows.len() % dim != 0 {
            bail!("{} values do not make rows of {dim}", rows.len());
        }
        let n = rows.len() / dim;
        if n == 0 {
            bail!("cannot index an empty catalogue");
        }
        if params.m < 2 || params.m > 255 || params.ef_construction == 0 {
            bail!(
                "HNSW parameters out of range: m {} (2..=255), ef_construction {} (≥ 1)",
                params.m,
                params.ef_construction
            );
        }
        // hnsw_rs dumps only graphs of its maximum layer count (16); the layers a node gets
        // are drawn with scale 1/ln(M), so the upper ones stay empty for small catalogues.
        let mut hnsw =
            Hnsw::<f32, CosineDistance>::new(params.m, n, HNSW_LAYERS, params.ef_construction, CosineDistance);
        let data: Vec<(&[f32], usize)> = rows.chunks_exact(dim).zip(0..).collect();
        {
            let _quiet = StdoutToStderr::new();
            hnsw.parallel_insert_slice(&data);
        }
        hnsw.set_searching_mode(true);
        Ok(Self { hnsw, rows: n, dim })
    }

    /// `(cosine, row)` of the `k` best rows per query (row-major, unit length), best first;
    /// `ef` is the search breadth (≥ k; larger is slower and closer to exact).
    pub fn search(&self, queries: &[f32], k: usize, ef: usize) -> Vec<Vec<(f32, usize)>> {
        let qs: Vec<Vec<f32>> = queries.chunks_exact(self.dim.max(1)).map(<[f32]>::to_vec).collect();
        self.hnsw
            .parallel_search(&qs, k, ef.max(k))
            .into_iter()
            .map(|ns| {
                let mut v: Vec<(f32, usize)> = ns.iter().map(|n| (1.0 - n.distance, n.d_id)).collect();
                v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                v
            })
            .collect()
    }
}

/// Where the index of `catalogue`'s `modality` lives.
pub fn index_dir(catalogue: &Path, modality: Modality) -> PathBuf {
    let mut name = catalogue.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.hnsw", modality.as_str()));
    catalogue.with_file_name(name)
}

/// Fraction of exact top-`k` rows the approximate lists contain, averaged over queries.
pub fn recall_at(exact: &[Vec<(f32, usize)>], approx: &[Vec<(f32, usize)>], k: usize) -> f64 {
    if exact.is_empty() {
        return 0.0;
    }
    let hits: usize = exact
        .iter()
        .zip(approx)
        .map(|(e, a)| {
            let want: Vec<usize> = e.iter().take(k).map(|p| p.1).collect();
            a.iter().take(k).filter(|p| want.contains(&p.1)).count()
        })
        .sum();
    let denom: usize = exact.iter().map(|e| e.len().min(k)).sum();
    hits as f64 / denom.max(1) as f64
}

/// Builds the index of one modality of an embedded catalogue, measures its recall@10 against
/// exact search on up to `recall_queries` catalogue rows spread over it (each row's own
/// neighbours), and stores it in [`index_dir`], replacing an older one only once the new one
/// is complete.
pub fn build_for(
    catalogue: &Path,
    modality: Modality,
    params: HnswParams,
    ef_search: usize,
    recall_queries: usize,
) -> anyhow::Result<IndexMeta> {
    let (catalogue_sha256, catalogue_bytes) = crate::train::file_sha256(catalogue)
        .with_context(|| format!("cannot read the catalogue {}", catalogue.display()))?;
    let emb = Embedded::read(catalogue, modality)?;
    let t = std::time::Instant::now();
    let index = AnnIndex::build(&emb.rows, emb.dim, params)?;
    let build_seconds = t.elapsed().as_secs_f64();
    let n = emb.len();
    let count = recall_queries.clamp(1, n);
    let sample: Vec<f32> = (0..count).flat_map(|j| emb.row(j * n / count).iter().copied()).collect();
    let exact = crate::search::exact(&emb, &sample, 10);
    let approx = index.search(&sample, 10, ef_search);
    let recall_at_10 = recall_at(&exact, &approx, 10);

    let dir = index_dir(catalogue, modality);
    let tmp = dir.with_extension(format!("hnsw.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // hnsw_rs panics when it cannot create its files: caught and reported as an error.
    let dumped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _quiet = StdoutToStderr::new();
        index.hnsw.file_dump(&tmp, BASENAME)
    }));
    let written = match dumped {
        Ok(r) => r.map_err(|e| anyhow::anyhow!("writing the index under {}: {e:#}", tmp.display()))?,
        Err(_) => bail!("cannot write the index files under {}", tmp.display()),
    };
    if written != BASENAME {
        bail!("hnsw_rs wrote the index as {written:?} under {}, expected {BASENAME:?}", tmp.display());
    }
    let (graph_sha256, _) = crate::train::file_sha256(&tmp.join(format!("{BASENAME}.hnsw.graph")))?;
    let (data_sha256, _) = crate::train::file_sha256(&tmp.join(format!("{BASENAME}.hnsw.data")))?;
    let meta = IndexMeta {
        format: INDEX_FORMAT,
        modality,
        rows: n,
        dim: emb.dim,
        params,
        catalogue: catalogue.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        catalogue_bytes,
        catalogue_sha256,
        graph_sha256,
        data_sha256,
        build_seconds,
        recall_at_10,
        recall_queries: exact.len(),
        ef_search,
    };
    std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir).with_context(|| format!("cannot move the index to {}", dir.display()))?;
    Ok(meta)
}

/// Loads the stored index of `catalogue`'s `modality` after checking that it is complete,
/// undamaged and built from this very catalogue.
pub fn load_for(catalogue: &Path, modality: Modality) -> anyhow::Result<(AnnIndex, IndexMeta)> {
    let dir = index_dir(catalogue, modality);
    let rebuild = format!(
        "build it with `astroclip search index build --catalogue {} --modality {}`",
        catalogue.display(),
        modality.as_str()
    );
    let meta_path = dir.join("meta.json");
    if !meta_path.is_file() {
        bail!("{}: no {} index next to the catalogue; {rebuild}", dir.display(), modality.as_str());
    }
    let meta: IndexMeta = serde_json::from_slice(
        &std::fs::read(&meta_path).with_context(|| format!("cannot read {}", meta_path.display()))?,
    )
    .with_context(|| format!("{}: not an index description; {rebuild}", meta_path.display()))?;
    if meta.format != INDEX_FORMAT || meta.modality != modality {
        bail!(
            "{}: index format {} for {} (this build reads format {INDEX_FORMAT}, asked for {}); {rebuild}",
            dir.display(),
            meta.format,
            meta.modality.as_str(),
            modality.as_str()
        );
    }
    let (sha, bytes) = crate::train::file_sha256(catalogue)
        .with_context(|| format!("cannot read the catalogue {}", catalogue.display()))?;
    if sha != meta.catalogue_sha256 || bytes != meta.catalogue_bytes {
        bail!(
            "{}: the index is stale: it was built from a catalogue of {} bytes (SHA-256 {}), {} is now {bytes} bytes (SHA-256 {}); re{rebuild}",
            dir.display(),
            meta.catalogue_bytes,
            &meta.catalogue_sha256[..meta.catalogue_sha256.len().min(12)],
            catalogue.display(),
            &sha[..12]
        );
    }
    for (suffix, want) in [("graph", &meta.graph_sha256), ("data", &meta.data_sha256)] {
        let p = dir.join(format!("{BASENAME}.hnsw.{suffix}"));
        let (got, _) =
            crate::train::file_sha256(&p).with_context(|| format!("cannot read {}; {rebuild}", p.display()))?;
        if &got != want {
            bail!(
                "{}: damaged (SHA-256 {} where meta.json records {}); re{rebuild}",
                p.display(),
                &got[..12],
                &want[..want.len().min(12)]
            );
        }
    }
    // The loader borrows its reader for the graph's lifetime: one small reader per load lives
    // as long as the process (the graph owns its data, no memory map).
    let loaded = std::panic::catch_unwind(|| {
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dir, BASENAME)));
        io.load_hnsw::<f32, CosineDistance>()
    });
    let mut hnsw = match loaded {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => bail!("{}: cannot load the index ({e:#}); re{rebuild}", dir.display()),
        Err(_) => bail!("{}: the index files are inconsistent; re{rebuild}", dir.display()),
    };
    if hnsw.get_nb_point() != meta.rows {
        bail!(
            "{}: the graph holds {} points, meta.json says {}; re{rebuild}",
            dir.display(),
            hnsw.get_nb_point(),
            meta.rows
        );
    }
    hnsw.set_searching_mode(true);
    Ok((AnnIndex { hnsw, rows: meta.rows, dim: meta.dim }, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// Unit rows of 50 clusters in an 8-d latent space mapped to `dim` with 5 % noise (the
    /// shape of `astroclip bench search`'s rows, small).
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut g = ChaCha8Rng::seed_from_u64(7);
        let normal = |g: &mut ChaCha8Rng| -> f32 { StandardNormal.sample(g) };
        let centres: Vec<f32> = (0..50 * 8).map(|_| normal(&mut g)).collect();
        let proj: Vec<f32> = (0..8 * dim).map(|_| normal(&mut g)).collect();
        let mut g = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = i % 50;
            let z: Vec<f32> = (0..8).map(|l| centres[c * 8 + l] + 0.3 * normal(&mut g)).collect();
            for j in 0..dim {
                rows.push((0..8).map(|l| z[l] * proj[l * dim + j]).sum::<f32>() + 0.05 * normal(&mut g));
            }
        }
        crate::search::normalize(&mut rows, dim);
        rows
    }

    fn emb(rows: Vec<f32>, dim: usize) -> Embedded {
        let ids = (0..rows.len() / dim).map(|i| format!("obj-{i}")).collect();
        Embedded { ids, rows, dim }
    }

    /// The distance's CPU-specific builds compute the portable sum bit for bit, and that sum
    /// is the inner product, for widths on both sides of the lane count.
    #[test]
    fn the_dot_product_is_the_same_on_every_cpu_path() {
        for dim in [1, 7, 31, 32, 33, 100, 128, 1024] {
            let a: Vec<f32> = (0..dim).map(|i| ((i * 7919 % 1009) as f32 / 97.0).sin()).collect();
            let b: Vec<f32> = (0..dim).map(|i| ((i * 104_729 % 997) as f32 / 31.0).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits(), "dim {dim}");
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "dim {dim}");
        }
    }

    /// The graph's top-10 holds ≥ 95 % of the exact top-10 of fresh queries, and the cosines it
    /// reports are the rows' true cosines.
    #[test]
    fn the_index_finds_the_exact_neighbours() {
        let (n, dim) = (4000, 32);
        let db = emb(clustered(n, dim, 1), dim);
        let queries = clustered(200, dim, 2);
        let index = AnnIndex::build(&db.rows, dim, HnswParams::default()).unwrap();
        let exact = crate::search::exact(&db, &queries, 10);
        let approx = index.search(&queries, 10, 64);
        let r = recall_at(&exact, &approx, 10);
        assert!(r >= 0.95, "recall@10 {r}");
        for (q, best) in queries.chunks(dim).zip(&approx) {
            assert_eq!(best.len(), 10);
            assert!(best.windows(2).all(|w| w[0].0 >= w[1].0));
            for &(cos, i) in best {
                assert!((cos - dot(q, db.row(i))).abs() < 1e-5);
            }
        }
        // A random answer would score about 10 / 4000.
        let shuffled: Vec<Vec<(f32, usize)>> =
            approx.iter().map(|b| b.iter().map(|&(c, i)| (c, (i * 7 + 1) % n)).collect()).collect();
        assert!(recall_at(&exact, &shuffled, 10) < 0.2);
    }

    /// A stored index answers like the in-memory one; a missing, damaged or stale one (the
    /// catalogue rewritten) is refused with the command that rebuilds it.
    #[test]
    fn a_stored_index_is_refused_when_missing_damaged_or_stale() {
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join("cat.parquet");
        let (n, dim) = (1200, 16);
        let rows = clustered(n, dim, 3);
        let ids: Vec<String> = (0..n).map(|i| format!("obj-{i}")).collect();
        crate::embed::write_catalogue(&cat, &ids, vec![(Modality::Image, rows.clone())], dim).unwrap();
        let meta = build_for(&cat, Modality::Image, HnswParams::default(), 64, 300).unwrap();
        assert_eq!((meta.rows, meta.dim, meta.recall_queries), (n, dim, 300));
        assert!(meta.recall_at_10 >= 0.95, "{meta:?}");
        let (index, _) = load_for(&cat, Modality::Image).unwrap();
        let q = &rows[17 * dim..18 * dim];
        let best = index.search(q, 5, 64);
        assert_eq!(best[0][0].1, 17);
        assert!((best[0][0].0 - 1.0).abs() < 1e-5);

        let err = |e: anyhow::Error| format!("{e:#}");
        let e = err(load_for(&cat, Modality::Spectrum).unwrap_err());
        assert!(e.contains("no spectrum index") && e.contains("astroclip search index build"), "{e}");

        let graph = index_dir(&cat, Modality::Image).join("index.hnsw.graph");
        let mut bytes = std::fs::read(&graph).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(&graph, &bytes).unwrap();
        let e = err(load_for(&cat, Modality::Image).unwrap_err());
        assert!(e.contains("damaged") && e.contains("index build"), "{e}");

        let meta_path = index_dir(&cat, Modality::Image).join("meta.json");
        std::fs::write(&meta_path, b"{not json").unwrap();
        let e = err(load_for(&cat, Modality::Image).unwrap_err());
        assert!(e.contains("not an index description"), "{e}");

        build_for(&cat, Modality::Image, HnswParams::default(), 64, 100).unwrap();
        load_for(&cat, Modality::Image).unwrap();
        let mut other = rows.clone();
        other[0] = -other[0];
        crate::embed::write_catalogue(&cat, &ids, vec![(Modality::Image, other)], dim).unwrap();
        let e = err(load_for(&cat, Modality::Image).unwrap_err());
        assert!(e.contains("stale") && e.contains("index build"), "{e}");
    }
}
