//! The one top-k kernel of the platform, shared by `astroclip search` (cosine similarity over
//! an embedded catalogue) and the `knn` probe (Euclidean neighbours): scores of a block of
//! queries against a block of database rows by one matrix product (on CPUs with AVX-512 our
//! own BLIS-style kernel, [`avx512`]; elsewhere the `gemm` crate that burn-flex multiplies
//! with, the database read in place), the best `k` per query kept across
//! database blocks by partial selection against a running k-th-best bar, query rows spread
//! over the cores. faiss's `IndexFlatIP`/`IndexFlatL2` work the same way (BLAS products of
//! query and database blocks, a heap per query); `astroclip bench search` compares the two.
//! Memory is bounded by one `QUERY_BLOCK × DB_BLOCK` score block (and, on the AVX-512 path, one
//! packed `DB_BLOCK × 384` panel) whatever the database size.
//!
//! Ties are broken by the lower database index, so results do not depend on blocking or
//! threads.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Queries per matrix product.
pub const QUERY_BLOCK: usize = 1024;
/// Database rows per matrix product.
pub const DB_BLOCK: usize = 4096;

/// What "best" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Largest `q·x` first (cosine similarity for unit rows).
    InnerProduct,
    /// Smallest `‖q − x‖²` first, computed as `‖q‖² + ‖x‖² − 2 q·x` in f32.
    SquaredL2,
}

/// A row-major `(n, dim)` database.
#[derive(Debug, Clone)]
pub struct Database<'a> {
    pub rows: &'a [f32],
    pub n: usize,
    pub dim: usize,
    /// `‖x‖²` of every row (computed when absent; only [`Metric::SquaredL2`] uses them).
    pub norms: Option<&'a [f32]>,
}

/// The matrix-product kernel that computes the score blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Our AVX-512 kernel ([`avx512`]), on x86-64 CPUs with `avx512f`.
    Avx512,
    /// The `gemm` crate, on every CPU.
    Gemm,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        if Self::Avx512.available() { Self::Avx512 } else { Self::Gemm }
    }

    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => avx512::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 => false,
            Self::Gemm => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Gemm => "gemm",
        }
    }
}

/// `(score, database index)` of the best `k` rows per query, best first. For
/// [`Metric::SquaredL2`] the score is the (f32, approximate) squared distance.
pub fn top_k(db: &Database<'_>, queries: &[f32], k: usize, metric: Metric) -> Vec<Vec<(f32, usize)>> {
    top_k_with(Kernel::detect(), db, queries, k, metric)
}

/// [`top_k`] with a chosen score kernel (tests and benchmarks compare the two).
///
/// # Panics
/// When the kernel is not [`Kernel::available`] on this CPU.
pub fn top_k_with(
    kernel: Kernel,
    db: &Database<'_>,
    queries: &[f32],
    k: usize,
    metric: Metric,
) -> Vec<Vec<(f32, usize)>> {
    assert!(kernel.available(), "the {} top-k kernel does not run on this CPU", kernel.name());
    let dim = db.dim;
    let nq = queries.len().checked_div(dim).unwrap_or(0);
    let k = k.min(db.n);
    if k == 0 || nq == 0 {
        return vec![Vec::new(); nq];
    }
    let mut out: Vec<Kept> = (0..nq).map(|_| Kept::new()).collect();
    let owned_norms: Vec<f32>;
    let norms = match (metric, db.norms) {
        (Metric::SquaredL2, Some(n)) => n,
        (Metric::SquaredL2, None) => {
            owned_norms = db.rows.chunks(dim).map(|r| r.iter().map(|v| v * v).sum()).collect();
            &owned_norms
        }
        (Metric::InnerProduct, _) => &[],
    };
    let threads = rayon::current_num_threads().max(1);
    let mut dots = vec![0f32; QUERY_BLOCK.min(nq) * DB_BLOCK.min(db.n)];
    for start in (0..db.n).step_by(DB_BLOCK) {
        let nb = DB_BLOCK.min(db.n - start);
        let block = &db.rows[start * dim..(start + nb) * dim];
        for (qb, slots) in out.chunks_mut(QUERY_BLOCK).enumerate() {
            let nqb = slots.len();
            let q0 = qb * QUERY_BLOCK;
            let q = &queries[q0 * dim..(q0 + nqb) * dim];
            let dots = &mut dots[..nqb * nb];
            match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => avx512::scores(q, nqb, block, nb, dim, dots, threads),
                _ => scores(q, nqb, block, nb, dim, dots, threads),
            }
            let dots = &*dots;
            slots.par_iter_mut().enumerate().for_each(|(row, best)| {
                let d = &dots[row * nb..(row + 1) * nb];
                let qr = &q[row * dim..(row + 1) * dim];
                let qn: f32 = qr.iter().map(|v| v * v).sum();
                for (j, &dot) in d.iter().enumerate() {
                    let score = match metric {
                        Metric::InnerProduct => dot,
                        Metric::SquaredL2 => qn + norms[start + j] - 2.0 * dot,
                    };
                    // Kept by the same total order as the final sort (score, then lower
                    // index), so the result equals a full sort.
                    let cand = (score, start + j);
                    if best.worst.is_some_and(|w| order(metric, &cand, &w) != std::cmp::Ordering::Less) {
                        continue;
                    }
                    best.rows.push(cand);
                    if best.rows.len() >= 2 * k.max(8) {
                        best.shrink(k, metric);
                    }
                }
                best.shrink(k, metric);
            });
        }
    }
    out.into_iter()
        .map(|mut best| {
            best.rows.sort_by(|a, b| order(metric, a, b));
            best.rows
        })
        .collect()
}

/// `dots[i, j] = q_i · x_j` for `nq` query rows and `nb` database rows (both row-major, width
/// `dim`), [`Kernel::Gemm`]: one matrix product by the `gemm` crate (burn-flex's own kernel),
/// reading the database rows in place as the columns of the right-hand side, so no block is
/// copied or transposed.
#[allow(unsafe_code)] // gemm's one entry point is unsafe (raw pointers and strides); see SAFETY
fn scores(q: &[f32], nq: usize, x: &[f32], nb: usize, dim: usize, dots: &mut [f32], threads: usize) {
    assert!(q.len() >= nq * dim && x.len() >= nb * dim && dots.len() >= nq * nb, "top-k block sizes");
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserted lengths bound every element the strides reach: dst (nq × nb,
    // row-major), lhs (nq × dim, row-major), rhs (dim × nb) element (kk, j) at x[j·dim + kk].
    unsafe {
        gemm::gemm(
            nq,
            nb,
            dim,
            dots.as_mut_ptr(),
            1,
            nb as isize,
            false,
            q.as_ptr(),
            1,
            dim as isize,
            x.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The best rows kept so far for one query, and the k-th of them once `k` have been kept: a
/// new row must rank before it (the k-th of an earlier pass is a valid, if loose, bar).
struct Kept {
    rows: Vec<(f32, usize)>,
    worst: Option<(f32, usize)>,
}

impl Kept {
    fn new() -> Self {
        Self { rows: Vec::new(), worst: None }
    }

    /// Keeps the best `k` rows and remembers the k-th.
    fn shrink(&mut self, k: usize, metric: Metric) {
        keep_best(&mut self.rows, k, metric);
        if self.rows.len() >= k {
            self.worst = self.rows.iter().max_by(|a, b| order(metric, a, b)).copied();
        }
    }
}

fn order(metric: Metric, a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    let by_score = match metric {
        Metric::InnerProduct => b.0.total_cmp(&a.0),
        Metric::SquaredL2 => a.0.total_cmp(&b.0),
    };
    by_score.then(a.1.cmp(&b.1))
}

fn keep_best(v: &mut Vec<(f32, usize)>, k: usize, metric: Metric) {
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, |a, b| order(metric, a, b));
        v.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocked, threaded selection equals a full sort, ties by index, for both metrics and for
    /// databases larger than one block.
    #[test]
    fn top_k_equals_a_full_sort() {
        let (n, dim, nq) = (DB_BLOCK + 700, 3, QUERY_BLOCK + 5);
        let rows: Vec<f32> = (0..n * dim).map(|i| ((i * 7919 % 1009) as f32 / 97.0).sin()).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|i| ((i * 104_729 % 997) as f32 / 31.0).cos()).collect();
        let db = Database { rows: &rows, n, dim, norms: None };
        for (kernel, metric) in kernels().into_iter().flat_map(|k| [(k, Metric::InnerProduct), (k, Metric::SquaredL2)])
        {
            let got = top_k_with(kernel, &db, &queries, 7, metric);
            for (qi, g) in got.iter().enumerate().step_by(37) {
                let q = &queries[qi * dim..(qi + 1) * dim];
                let qn: f32 = q.iter().map(|v| v * v).sum();
                let mut all: Vec<(f32, usize)> = (0..n)
                    .map(|j| {
                        let x = &rows[j * dim..(j + 1) * dim];
                        let dot: f32 = x.iter().zip(q).map(|(a, b)| a * b).sum();
                        match metric {
                            Metric::InnerProduct => (dot, j),
                            Metric::SquaredL2 => (qn + x.iter().map(|v| v * v).sum::<f32>() - 2.0 * dot, j),
                        }
                    })
                    .collect();
                all.sort_by(|a, b| order(metric, a, b));
                let mut want: Vec<usize> = all[..7].iter().map(|p| p.1).collect();
                let mut have: Vec<usize> = g.iter().map(|p| p.1).collect();
                want.sort_unstable();
                have.sort_unstable();
                // Scores from the matrix product and from the loop may differ in the last bit;
                // compare the sets where the 7th and 8th scores are clearly apart.
                if (all[6].0 - all[7].0).abs() > 1e-4 {
                    assert_eq!(have, want, "{kernel:?} {metric:?} query {qi}");
                }
            }
        }
    }

    /// Every kernel this CPU runs (the AVX-512 one is checked wherever the CPU has it).
    fn kernels() -> Vec<Kernel> {
        [Kernel::Avx512, Kernel::Gemm].into_iter().filter(|k| k.available()).collect()
    }

    /// Inner products of the score kernels equal f64 sums to f32 rounding for shapes that
    /// leave partial micro-tiles and panels on every side (1 query, fewer queries than
    /// threads × 14, dims across the 384-long panel boundary).
    #[test]
    fn kernels_compute_inner_products_for_any_shape() {
        for (nq, nb, dim) in [(1, 1, 1), (1, 70, 385), (13, 33, 383), (29, 31, 768), (200, 97, 5), (45, 4096, 1024)] {
            let rows: Vec<f32> = (0..nb * dim).map(|i| ((i * 7919 % 1009) as f32 / 97.0).sin()).collect();
            let queries: Vec<f32> = (0..nq * dim).map(|i| ((i * 104_729 % 997) as f32 / 31.0).cos()).collect();
            let db = Database { rows: &rows, n: nb, dim, norms: None };
            for kernel in kernels() {
                let got = top_k_with(kernel, &db, &queries, nb, Metric::InnerProduct);
                for (qi, g) in got.iter().enumerate() {
                    assert_eq!(g.len(), nb);
                    for &(score, j) in g {
                        let want: f64 = (0..dim).map(|d| queries[qi * dim + d] as f64 * rows[j * dim + d] as f64).sum();
                        let tol = 1e-5 * (dim as f64).sqrt().max(1.0);
                        assert!(
                            (score as f64 - want).abs() <= tol,
                            "{kernel:?} {nq}×{nb}×{dim} q{qi} row {j}: {score} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// A query's neighbours and scores are bit-identical whether it is searched alone, in a
    /// batch, or on one thread: the AVX-512 kernel sums every product in one fixed order.
    #[test]
    fn a_querys_result_does_not_depend_on_its_batch_or_threads() {
        if !Kernel::Avx512.available() {
            eprintln!("this CPU has no avx512f; the gemm crate's order is its own");
            return;
        }
        let (n, dim, nq) = (DB_BLOCK + 300, 400, 60);
        let rows: Vec<f32> = (0..n * dim).map(|i| ((i * 7919 % 1009) as f32 / 97.0).sin()).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|i| ((i * 104_729 % 997) as f32 / 31.0).cos()).collect();
        let db = Database { rows: &rows, n, dim, norms: None };
        let batch = top_k_with(Kernel::Avx512, &db, &queries, 25, Metric::SquaredL2);
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for qi in [0, 13, 59] {
            let alone = top_k_with(Kernel::Avx512, &db, &queries[qi * dim..(qi + 1) * dim], 25, Metric::SquaredL2);
            assert_eq!(alone[0], batch[qi], "query {qi} alone vs in a batch of {nq}");
        }
        let serial = one_thread.install(|| top_k_with(Kernel::Avx512, &db, &queries, 25, Metric::SquaredL2));
        assert_eq!(serial, batch, "one thread vs the pool");
    }

    /// Equal scores across blocks and threads keep the lowest indices, in order.
    #[test]
    fn ties_keep_the_lowest_indices() {
        let (n, dim) = (2 * DB_BLOCK + 3, 2);
        let rows = vec![0.5f32; n * dim];
        let queries = vec![1.0f32; 3 * dim];
        let db = Database { rows: &rows, n, dim, norms: None };
        for (kernel, metric) in kernels().into_iter().flat_map(|k| [(k, Metric::InnerProduct), (k, Metric::SquaredL2)])
        {
            for got in top_k_with(kernel, &db, &queries, 20, metric) {
                assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>(), "{metric:?}");
            }
        }
    }
}
