//! `astroclip bench search`: the similarity search of `astroclip search` against faiss, on this
//! machine in one run.
//!
//! - **Exact top-k** (inner product of unit rows = cosine) by the platform's one top-k kernel
//!   (`astroclip_builtin::topk`) against faiss-cpu's `IndexFlatIP` (`bench/faiss_search.py`,
//!   BLAS matrix products plus a heap per query), same rows, same queries, all cores for both;
//!   the two answers are compared (mean overlap of the top-k sets).
//! - **HNSW** (`astroclip_core::ann`, the `hnsw_rs` crate): build time, then recall@k against
//!   the exact answer and queries per second for a range of search breadths `ef`, as a multiple
//!   of exact search's queries per second.
//!
//! The rows imitate embeddings, not noise: points of 1000 Gaussian clusters in a 32-d latent
//! space, mapped linearly to the embedding width, plus 5 % isotropic noise, normalised
//! (queries are fresh draws from the same distribution). Uniform random directions in 1024-d
//! have no near neighbours for any index to find; trained embeddings have a low intrinsic
//! dimension.

use std::path::Path;
use std::time::Instant;

use astroclip_builtin::topk::{Database, Kernel, Metric, top_k_with};
use astroclip_core::ann::{AnnIndex, HnswParams, recall_at};
use astroclip_core::search::normalize;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;

use super::perf::run_reference;
use crate::in_range;

#[derive(clap::Args, Debug, Clone)]
pub struct SearchBenchArgs {
    /// Database rows.
    #[arg(long, default_value_t = 1_000_000, value_parser = in_range(1..=100_000_000))]
    pub rows: usize,
    /// Embedding widths timed (one database each).
    #[arg(long, default_value = "1024,128", value_delimiter = ',', value_parser = in_range(1..=65_536))]
    pub dims: Vec<usize>,
    #[arg(long, default_value_t = 1000, value_parser = in_range(1..=1_000_000))]
    pub queries: usize,
    #[arg(long, default_value_t = 10, value_parser = in_range(1..=10_000))]
    pub k: usize,
    /// Widths whose database also gets an HNSW index (building one over 1 M × 1024 takes
    /// tens of minutes on two cores).
    #[arg(long, default_value = "128", value_delimiter = ',', value_parser = in_range(1..=65_536))]
    pub hnsw_dims: Vec<usize>,
    #[arg(long, default_value_t = HnswParams::default().m, value_parser = in_range(2..=255))]
    pub m: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_construction, value_parser = in_range(1..=100_000))]
    pub ef_construction: usize,
    /// Search breadths timed.
    #[arg(long, default_value = "16,32,64,128,256", value_delimiter = ',', value_parser = in_range(1..=1_000_000))]
    pub ef_search: Vec<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Python interpreter with faiss-cpu (default: .venv-torch/bin/python when present).
    #[arg(long, env = "ASTROCLIP_BENCH_PYTHON")]
    pub python: Option<std::path::PathBuf>,
    /// Skip the faiss reference.
    #[arg(long)]
    pub no_reference: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExactRow {
    pub rows: usize,
    pub dim: usize,
    pub queries: usize,
    pub k: usize,
    pub ours_s: f64,
    /// The same search through the `gemm` crate's product (the kernel used where the CPU has
    /// no AVX-512), when ours used another one.
    pub gemm_s: Option<f64>,
    pub faiss_s: Option<f64>,
    pub faiss_version: Option<String>,
    /// Mean fraction of faiss's top-k that ours holds too.
    pub agreement: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HnswRow {
    pub rows: usize,
    pub dim: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub build_s: f64,
    pub ef_search: usize,
    pub search_s: f64,
    pub recall: f64,
    pub queries_per_s: f64,
    /// Queries per second as a multiple of exact search's (ours).
    pub speedup: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchReport {
    pub threads: usize,
    /// The score kernel of the platform's top-k on this CPU (`avx512` or `gemm`).
    pub kernel: String,
    pub exact: Vec<ExactRow>,
    pub hnsw: Vec<HnswRow>,
    pub missing: Vec<String>,
}

/// `n` unit rows of width `dim` from the clustered distribution of the module doc; the same
/// `seed` gives the same rows whatever the thread count. Stream 0 is the database, 1 queries.
pub fn clustered_rows(n: usize, dim: usize, seed: u64, stream: u64) -> Vec<f32> {
    const LATENT: usize = 32;
    const CLUSTERS: usize = 1000;
    const CHUNK: usize = 4096;
    let mut g = ChaCha8Rng::seed_from_u64(seed);
    let normal = |g: &mut ChaCha8Rng| -> f32 { StandardNormal.sample(g) };
    let centres: Vec<f32> = (0..CLUSTERS * LATENT).map(|_| normal(&mut g)).collect();
    let proj: Vec<f32> = (0..LATENT * dim).map(|_| normal(&mut g) / (LATENT as f32).sqrt()).collect();
    let mut rows = vec![0f32; n * dim];
    rows.par_chunks_mut(CHUNK * dim).enumerate().for_each(|(c, block)| {
        let mut g =
            ChaCha8Rng::seed_from_u64(seed ^ (stream << 40) ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut z = [0f32; LATENT];
        for row in block.chunks_mut(dim) {
            let centre = (rand::Rng::random::<u32>(&mut g) as usize) % CLUSTERS;
            for (l, zl) in z.iter_mut().enumerate() {
                *zl = centres[centre * LATENT + l] + 0.3 * normal(&mut g);
            }
            for v in row.iter_mut() {
                *v = 0.05 * normal(&mut g);
            }
            for (l, zl) in z.iter().enumerate() {
                let p = &proj[l * dim..(l + 1) * dim];
                row.iter_mut().zip(p).for_each(|(v, pv)| *v += zl * pv);
            }
        }
        normalize(block, dim);
    });
    rows
}

fn write_f32(path: &Path, v: &[f32]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for chunk in v.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
        f.write_all(&bytes)?;
    }
    f.flush()
}

fn python(args: &SearchBenchArgs) -> std::path::PathBuf {
    if let Some(p) = &args.python {
        return p.clone();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-torch/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

fn ids(best: &[Vec<(f32, usize)>]) -> Vec<Vec<usize>> {
    best.iter().map(|b| b.iter().map(|p| p.1).collect()).collect()
}

pub fn execute(args: &SearchBenchArgs) -> anyhow::Result<SearchReport> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let py = (!args.no_reference).then(|| python(args));
    let kernel = Kernel::detect();
    let mut report = SearchReport { threads, kernel: kernel.name().into(), ..SearchReport::default() };
    let (n, nq, k) = (args.rows, args.queries, args.k);
    for &dim in &args.dims {
        tracing::info!("generating {n} × {dim} rows");
        let db = clustered_rows(n, dim, args.seed, 0);
        let queries = clustered_rows(nq, dim, args.seed, 1);
        tracing::info!("exact top-{k} of {nq} queries over {n} × {dim}");
        let database = Database { rows: &db, n, dim, norms: None };
        let t = Instant::now();
        let exact = top_k_with(kernel, &database, &queries, k, Metric::InnerProduct);
        let ours_s = t.elapsed().as_secs_f64();
        let gemm_s = (kernel != Kernel::Gemm).then(|| {
            tracing::info!("the same search through the gemm crate");
            let t = Instant::now();
            let again = top_k_with(Kernel::Gemm, &database, &queries, k, Metric::InnerProduct);
            let s = t.elapsed().as_secs_f64();
            if ids(&again) != ids(&exact) {
                tracing::warn!("the gemm crate's top-{k} differs from the {} kernel's (near-ties)", kernel.name());
            }
            s
        });
        let mut row = ExactRow {
            rows: n,
            dim,
            queries: nq,
            k,
            ours_s,
            gemm_s,
            faiss_s: None,
            faiss_version: None,
            agreement: None,
        };
        if let Some(py) = &py {
            let dir = tempfile::tempdir()?;
            write_f32(&dir.path().join("db.f32"), &db)?;
            write_f32(&dir.path().join("queries.f32"), &queries)?;
            let a: Vec<String> =
                vec![dir.path().display().to_string(), n.to_string(), nq.to_string(), dim.to_string(), k.to_string()];
            tracing::info!("faiss IndexFlatIP on the same rows");
            match run_reference(py, "faiss_search.py", &a) {
                Ok(v) => {
                    row.faiss_s = v.get("search_seconds").and_then(|x| x.as_f64());
                    row.faiss_version = v.get("faiss").and_then(|x| x.as_str()).map(str::to_string);
                    let bytes = std::fs::read(dir.path().join("faiss_ids.i64"))?;
                    let theirs: Vec<i64> =
                        bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
                    let ours = ids(&exact);
                    let overlap: usize = theirs
                        .chunks(k)
                        .zip(&ours)
                        .map(|(t, o)| t.iter().filter(|&&i| i >= 0 && o.contains(&(i as usize))).count())
                        .sum();
                    row.agreement = Some(overlap as f64 / (nq * k.min(n)) as f64);
                }
                Err(e) => report.missing.push(format!("faiss: {e}")),
            }
        }
        report.exact.push(row);
        if args.hnsw_dims.contains(&dim) {
            let params = HnswParams { m: args.m, ef_construction: args.ef_construction };
            tracing::info!(
                "building HNSW (M {}, ef_construction {}) over {n} × {dim}",
                params.m,
                params.ef_construction
            );
            let t = Instant::now();
            let index = AnnIndex::build(&db, dim, params)?;
            let build_s = t.elapsed().as_secs_f64();
            for &ef in &args.ef_search {
                let t = Instant::now();
                let approx = index.search(&queries, k, ef);
                let search_s = t.elapsed().as_secs_f64();
                let qps = nq as f64 / search_s;
                report.hnsw.push(HnswRow {
                    rows: n,
                    dim,
                    m: params.m,
                    ef_construction: params.ef_construction,
                    build_s,
                    ef_search: ef,
                    search_s,
                    recall: recall_at(&exact, &approx, k),
                    queries_per_s: qps,
                    speedup: qps / (nq as f64 / ours_s),
                });
            }
        }
    }
    report.missing.dedup();
    Ok(report)
}

impl SearchReport {
    pub fn markdown(&self) -> String {
        let opt = |v: Option<f64>, p: usize| v.map_or("—".to_string(), |x| format!("{x:.p$}"));
        let mut s = format!(
            "Exact top-k by inner product (unit rows), {} CPU threads, the {} score kernel\n\n",
            self.threads, self.kernel
        );
        s += "| rows × dim | queries | k | astroclip s | gemm crate s | faiss IndexFlatIP s | astroclip / faiss time | top-k agreement |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for r in &self.exact {
            s += &format!(
                "| {} × {} | {} | {} | {:.2} | {} | {} | {} | {} |\n",
                r.rows,
                r.dim,
                r.queries,
                r.k,
                r.ours_s,
                opt(r.gemm_s, 2),
                opt(r.faiss_s, 2),
                opt(r.faiss_s.map(|f| r.ours_s / f), 2),
                opt(r.agreement, 4)
            );
        }
        if let Some(v) = self.exact.iter().find_map(|r| r.faiss_version.clone()) {
            s += &format!("\nfaiss-cpu {v}\n");
        }
        if !self.hnsw.is_empty() {
            s += "\nHNSW (hnsw_rs): recall@k against the exact answer, queries/s against exact search's\n\n";
            s += "| rows × dim | M | ef_construction | build s | ef_search | recall@k | queries/s | × exact queries/s |\n";
            s += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
            for r in &self.hnsw {
                s += &format!(
                    "| {} × {} | {} | {} | {:.1} | {} | {:.4} | {:.0} | {:.1} |\n",
                    r.rows, r.dim, r.m, r.ef_construction, r.build_s, r.ef_search, r.recall, r.queries_per_s, r.speedup
                );
            }
        }
        for m in &self.missing {
            s += &format!("\nreference not run — {m}; install it with scripts/setup-bench.sh\n");
        }
        s
    }
}
