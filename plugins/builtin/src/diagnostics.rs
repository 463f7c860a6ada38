//! Diagnostics of an embedding space, recorded on every run so a collapsed or nearly
//! one-dimensional embedding shows in the registry, not only in a plot:
//!
//! - **Effective rank** (Roy & Vetterli, "The effective rank: a measure of effective
//!   dimensionality", EUSIPCO 2007; used for self-supervised embeddings as RankMe, Garrido et
//!   al., ICML 2023): `exp(−Σ pₖ ln pₖ)` with `pₖ = σₖ / Σσ` the normalised singular values of
//!   the `(n, dim)` embedding matrix. 1 for embeddings on one line, `dim` for isotropic ones.
//!   (RankMe's code adds 1e-7 to every `pₖ`; we use the exact formula, `0 ln 0 = 0`.)
//! - **Alignment and uniformity** (Wang & Isola, "Understanding Contrastive Representation
//!   Learning through Alignment and Uniformity on the Hypersphere", ICML 2020, their reference
//!   code `align_loss` / `uniform_loss` with α = 2, t = 2): alignment `mean ‖aᵢ − bᵢ‖²` over
//!   the pairs of the two modalities (0 when paired embeddings coincide, lower is better),
//!   uniformity `log mean_{i<j} exp(−t ‖xᵢ − xⱼ‖²)` within one modality (−t·2 = −4 for points
//!   spread uniformly over a high-dimensional sphere, 0 when all points coincide; lower is
//!   more uniform).
//! - **PCA variance**: the fraction of the (centred) variance each leading principal
//!   component holds, as scikit-learn's `PCA.explained_variance_ratio_`.
//!
//! Rows are used as given; the evaluation passes L2-normalised embeddings, as the two
//! losses and the probe see them. Gram and covariance matrices are formed in f64 and their
//! eigenvalues taken by nalgebra (three crates the build did not have yet, 20 s of a cold
//! build on two cores, measured alone). `tests/golden/reference.py` checks every value against
//! NumPy's SVD and `eigvalsh` and scikit-learn's PCA.

use rayon::prelude::*;

/// Principal components whose variance fractions are kept.
pub const PCA_COMPONENTS: usize = 10;

/// The diagnostics of one modality's embeddings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModalityDiagnostics {
    /// `image` or `spectrum`.
    pub source: String,
    pub n: usize,
    pub dim: usize,
    pub effective_rank: f64,
    pub uniformity: f64,
    /// Variance fraction of the leading principal components, largest first (at most
    /// [`PCA_COMPONENTS`]).
    pub pca_variance: Vec<f64>,
}

/// Why a diagnostic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagnosticsError {
    #[error("embedding diagnostics: {rows} rows × {dim} columns do not fit {len} values")]
    Shape { rows: usize, dim: usize, len: usize },
    #[error("embedding diagnostics: {what} needs at least {need} rows, got {rows}")]
    TooFew { what: &'static str, need: usize, rows: usize },
    #[error("embedding diagnostics: a non-finite value in row {row}")]
    NonFinite { row: usize },
    #[error(
        "embedding diagnostics: the eigenvalues of a {n} × {n} matrix did not converge in {iterations} QL iterations"
    )]
    NoConvergence { n: usize, iterations: usize },
}

fn check(x: &[f32], n: usize, dim: usize) -> Result<(), DiagnosticsError> {
    if n.checked_mul(dim) != Some(x.len()) {
        return Err(DiagnosticsError::Shape { rows: n, dim, len: x.len() });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(DiagnosticsError::NonFinite { row: i / dim.max(1) });
    }
    Ok(())
}

/// All diagnostics of one modality (`n ≥ 2` rows).
pub fn diagnose(source: &str, x: &[f32], n: usize, dim: usize) -> Result<ModalityDiagnostics, DiagnosticsError> {
    Ok(ModalityDiagnostics {
        source: source.to_string(),
        n,
        dim,
        effective_rank: effective_rank(x, n, dim)?,
        uniformity: uniformity(x, n, dim)?,
        pca_variance: pca_variance(x, n, dim, PCA_COMPONENTS)?,
    })
}

/// Roy & Vetterli's effective rank of the `(n, dim)` matrix `x` (uncentred).
pub fn effective_rank(x: &[f32], n: usize, dim: usize) -> Result<f64, DiagnosticsError> {
    check(x, n, dim)?;
    if n == 0 || dim == 0 {
        return Err(DiagnosticsError::TooFew { what: "the effective rank", need: 1, rows: n });
    }
    // Singular values are the square roots of the eigenvalues of the smaller Gram matrix.
    let gram = if dim <= n { gram_columns(x, n, dim, None) } else { gram_rows(x, n, dim) };
    let m = dim.min(n);
    let ev = symmetric_eigenvalues(gram, m)?;
    // Eigenvalues of the Gram matrix below its rounding level are zero singular values (the
    // square root would turn 1e-16 noise into 1e-8 and a rank-1 matrix into rank 1.00001).
    let floor = m as f64 * f64::EPSILON * ev.iter().fold(0.0f64, |a, &l| a.max(l));
    let sigma: Vec<f64> = ev.into_iter().map(|l| if l > floor { l.sqrt() } else { 0.0 }).collect();
    let total: f64 = sigma.iter().sum();
    if total == 0.0 {
        return Ok(0.0);
    }
    let entropy: f64 = sigma.iter().map(|s| s / total).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
    Ok(entropy.exp())
}

/// Fraction of the centred variance held by each of the first `keep` principal components.
pub fn pca_variance(x: &[f32], n: usize, dim: usize, keep: usize) -> Result<Vec<f64>, DiagnosticsError> {
    check(x, n, dim)?;
    if n < 2 {
        return Err(DiagnosticsError::TooFew { what: "PCA", need: 2, rows: n });
    }
    let mean: Vec<f64> = (0..dim).map(|j| (0..n).map(|i| x[i * dim + j] as f64).sum::<f64>() / n as f64).collect();
    let mut ev = symmetric_eigenvalues(gram_columns(x, n, dim, Some(&mean)), dim)?;
    ev.iter_mut().for_each(|l| *l = l.max(0.0));
    ev.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = ev.iter().sum();
    Ok(ev.iter().take(keep).map(|l| if total > 0.0 { l / total } else { 0.0 }).collect())
}

/// Wang & Isola's uniformity (t = 2) of the rows of `x`, over all pairs `i < j`.
pub fn uniformity(x: &[f32], n: usize, dim: usize) -> Result<f64, DiagnosticsError> {
    check(x, n, dim)?;
    if n < 2 {
        return Err(DiagnosticsError::TooFew { what: "uniformity", need: 2, rows: n });
    }
    const T: f64 = 2.0;
    let row = |i: usize| &x[i * dim..(i + 1) * dim];
    let sum: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let a = row(i);
            (i + 1..n)
                .map(|j| {
                    let d2: f64 = a.iter().zip(row(j)).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum();
                    (-T * d2).exp()
                })
                .sum::<f64>()
        })
        .sum();
    Ok((sum / (n * (n - 1) / 2) as f64).ln())
}

/// Wang & Isola's alignment (α = 2): `mean ‖aᵢ − bᵢ‖²` over paired rows.
pub fn alignment(a: &[f32], b: &[f32], n: usize, dim: usize) -> Result<f64, DiagnosticsError> {
    check(a, n, dim)?;
    check(b, n, dim)?;
    if n == 0 {
        return Err(DiagnosticsError::TooFew { what: "alignment", need: 1, rows: 0 });
    }
    let total: f64 = a
        .chunks(dim.max(1))
        .zip(b.chunks(dim.max(1)))
        .map(|(p, q)| p.iter().zip(q).map(|(u, v)| (*u as f64 - *v as f64).powi(2)).sum::<f64>())
        .sum();
    Ok(total / n as f64)
}

/// `(dim × dim)` matrix `Σᵢ (xᵢ − m)(xᵢ − m)ᵀ` (`m` = 0 when `mean` is `None`), row-major.
fn gram_columns(x: &[f32], n: usize, dim: usize, mean: Option<&[f64]>) -> Vec<f64> {
    let centred: Vec<f64> = (0..n * dim).map(|k| x[k] as f64 - mean.map_or(0.0, |m| m[k % dim])).collect();
    let mut g = vec![0f64; dim * dim];
    g.par_chunks_mut(dim).enumerate().for_each(|(p, out)| {
        for i in 0..n {
            let r = &centred[i * dim..(i + 1) * dim];
            let rp = r[p];
            out.iter_mut().zip(r).for_each(|(o, v)| *o += rp * v);
        }
    });
    g
}

/// `(n × n)` matrix `x xᵀ`, row-major.
fn gram_rows(x: &[f32], n: usize, dim: usize) -> Vec<f64> {
    let mut g = vec![0f64; n * n];
    g.par_chunks_mut(n).enumerate().for_each(|(i, out)| {
        let a = &x[i * dim..(i + 1) * dim];
        for (j, o) in out.iter_mut().enumerate() {
            *o = a.iter().zip(&x[j * dim..(j + 1) * dim]).map(|(p, q)| *p as f64 * *q as f64).sum();
        }
    });
    g
}

/// Eigenvalues (unordered) of the symmetric row-major `n × n` matrix `a` (nalgebra's
/// `SymmetricEigen`: Householder tridiagonalisation, then implicit QR with Wilkinson shifts).
pub fn symmetric_eigenvalues(a: Vec<f64>, n: usize) -> Result<Vec<f64>, DiagnosticsError> {
    assert_eq!(a.len(), n * n, "symmetric_eigenvalues: {n} × {n} matrix");
    if n == 0 {
        return Ok(vec![]);
    }
    const MAX_ITER: usize = 10_000;
    let m = nalgebra::DMatrix::from_row_slice(n, n, &a);
    nalgebra::SymmetricEigen::try_new(m, f64::EPSILON, MAX_ITER)
        .map(|e| e.eigenvalues.iter().copied().collect())
        .ok_or(DiagnosticsError::NoConvergence { n, iterations: MAX_ITER })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embeddings on one line have effective rank 1 and all their variance on one axis;
    /// the `dim` unit vectors have effective rank `dim`.
    #[test]
    fn effective_rank_spans_one_to_the_dimension() {
        let (n, dim) = (40, 6);
        let line: Vec<f32> = (0..n).flat_map(|i| (0..dim).map(move |j| (i as f32 - 20.0) * (j as f32 + 1.0))).collect();
        assert!((effective_rank(&line, n, dim).unwrap() - 1.0).abs() < 1e-9);
        let pca = pca_variance(&line, n, dim, 3).unwrap();
        assert!((pca[0] - 1.0).abs() < 1e-12 && pca[1].abs() < 1e-12, "{pca:?}");
        let eye: Vec<f32> = (0..dim * dim).map(|k| if k / dim == k % dim { 1.0 } else { 0.0 }).collect();
        assert!((effective_rank(&eye, dim, dim).unwrap() - dim as f64).abs() < 1e-9);
    }

    /// Identical rows: uniformity 0 (its maximum) and alignment 0 with themselves.
    #[test]
    fn coincident_points_have_zero_uniformity_and_alignment() {
        let x = vec![0.6f32, 0.8, 0.6, 0.8, 0.6, 0.8];
        assert_eq!(uniformity(&x, 3, 2).unwrap(), 0.0);
        assert_eq!(alignment(&x, &x, 3, 2).unwrap(), 0.0);
    }

    /// A wrong shape or a NaN is an error naming it, never a silent number.
    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(effective_rank(&[1.0, 2.0, 3.0], 2, 2), Err(DiagnosticsError::Shape { .. })));
        assert!(matches!(uniformity(&[1.0, f32::NAN, 0.0, 1.0], 2, 2), Err(DiagnosticsError::NonFinite { row: 0 })));
        assert!(matches!(pca_variance(&[1.0, 2.0], 1, 2, 2), Err(DiagnosticsError::TooFew { .. })));
    }
}
