//! The score blocks of [`super::top_k`] on CPUs with AVX-512: `dots = Q · Xᵀ` for row-major
//! query rows `Q` (`nq × dim`) and database rows `X` (`nb × dim`), by the BLIS loop nest
//! (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality",
//! ACM TOMS 2015; Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
//! ACM TOMS 2008): the inner dimension cut into `KC`-long panels, database rows packed as
//! `KC × NR` micro-panels, query rows as `MC × KC` blocks of `MR`-row micro-panels, and a
//! `MR × NR` register-blocked micro-kernel (14 × 32 floats: 28 of the 32 zmm registers hold
//! the accumulators, 2 the database micro-panel row, 1 the broadcast query value).
//!
//! Why our own kernel rather than a library: the `gemm` crate (0.19, what burn-flex multiplies
//! with) has AVX-512 micro-kernels only behind its nightly feature, and stable Rust's AVX-2
//! kernels reach about two thirds of this kernel's speed on the same block shape; the k-NN
//! probe spends nearly all its time in this product (measured in docs/models.md, "k-NN
//! probe"). The `gemm` crate remains the kernel on every other CPU.
//!
//! Every dot product is summed in the same order whatever the block, task or thread layout
//! (FMA over one panel from zero, panels added in order), so a query's scores do not depend on
//! which other queries share its call, nor on the number of threads.

use rayon::prelude::*;
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

/// Query rows per micro-kernel call.
const MR: usize = 14;
const _: () = assert!(MR == 14, "micro_avx512 names 14 accumulator rows");
/// Database rows per micro-kernel call (two zmm registers).
const NR: usize = 32;
/// Length of one panel of the inner dimension.
const KC: usize = 384;
/// Query rows per packed block (a multiple of `MR`; `MC × KC` floats stay in L2).
const MC: usize = 168;

/// Whether this CPU runs [`scores`].
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `dots[i·nb + j] = q_i · x_j`. The caller checks [`available`] first.
pub fn scores(q: &[f32], nq: usize, x: &[f32], nb: usize, dim: usize, dots: &mut [f32], threads: usize) {
    assert!(available(), "the AVX-512 score kernel needs a CPU with avx512f");
    assert!(q.len() >= nq * dim && x.len() >= nb * dim && dots.len() >= nq * nb, "top-k block sizes");
    if nq == 0 || nb == 0 {
        return;
    }
    if dim == 0 {
        dots[..nq * nb].fill(0.0);
        return;
    }
    let dots = &mut dots[..nq * nb];
    if nq >= MR * threads {
        // Enough queries: the database panel is packed once (over the cores), then tasks own
        // whole rows of `dots` (a few per thread, for balance).
        let rows = nq.div_ceil(4 * threads).next_multiple_of(MR);
        let mut bpack = vec![0f32; nb.div_ceil(NR) * NR * KC.min(dim)];
        for pc in (0..dim).step_by(KC) {
            let kc = KC.min(dim - pc);
            bpack
                .par_chunks_mut(NR * kc)
                .take(nb.div_ceil(NR))
                .enumerate()
                .for_each(|(p, panel)| pack_b_panel(x, nb, dim, pc, kc, p, panel));
            let bpack = &bpack;
            dots.par_chunks_mut(rows * nb).enumerate().for_each(|(t, out)| {
                let r0 = t * rows;
                let m = out.len() / nb;
                panel_product(&q[r0 * dim..(r0 + m) * dim], m, bpack, nb, dim, pc, kc, out);
            });
        }
    } else {
        // Few queries: tasks own database rows, each writing a local (nq × cols) block.
        let cols = nb.div_ceil(4 * threads).next_multiple_of(NR);
        let parts: Vec<Vec<f32>> = (0..nb.div_ceil(cols))
            .into_par_iter()
            .map(|t| {
                let c0 = t * cols;
                let n = cols.min(nb - c0);
                let x = &x[c0 * dim..(c0 + n) * dim];
                let mut out = vec![0f32; nq * n];
                let mut bpack = vec![0f32; n.div_ceil(NR) * NR * KC.min(dim)];
                for pc in (0..dim).step_by(KC) {
                    let kc = KC.min(dim - pc);
                    for (p, panel) in bpack.chunks_mut(NR * kc).take(n.div_ceil(NR)).enumerate() {
                        pack_b_panel(x, n, dim, pc, kc, p, panel);
                    }
                    panel_product(q, nq, &bpack, n, dim, pc, kc, &mut out);
                }
                out
            })
            .collect();
        for (t, part) in parts.iter().enumerate() {
            let c0 = t * cols;
            let n = part.len() / nq;
            for i in 0..nq {
                dots[i * nb + c0..i * nb + c0 + n].copy_from_slice(&part[i * n..(i + 1) * n]);
            }
        }
    }
}

/// Database micro-panel `p` of inner-dimension panel `pc..pc + kc`: element (kk, j) at
/// `kk·NR + j`, rows past `n` zero.
fn pack_b_panel(x: &[f32], n: usize, dim: usize, pc: usize, kc: usize, p: usize, panel: &mut [f32]) {
    for j in 0..NR {
        let row = p * NR + j;
        if row < n {
            for (kk, v) in x[row * dim + pc..row * dim + pc + kc].iter().enumerate() {
                panel[kk * NR + j] = *v;
            }
        } else {
            (0..kc).for_each(|kk| panel[kk * NR + j] = 0.0);
        }
    }
}

/// Adds inner-dimension panel `pc..pc + kc` to `out (m × n) = q (m × dim) · x (n × dim)ᵀ`
/// (overwrites on the first panel), the database rows already packed in `bpack`;
/// single-threaded.
#[allow(clippy::too_many_arguments)]
fn panel_product(q: &[f32], m: usize, bpack: &[f32], n: usize, dim: usize, pc: usize, kc: usize, out: &mut [f32]) {
    let panels = n.div_ceil(NR);
    let first = pc == 0;
    let mut apack = vec![0f32; MC.min(m.next_multiple_of(MR)) * kc];
    let mut tile = [0f32; MR * NR];
    for i0 in (0..m).step_by(MC) {
        let mc = MC.min(m - i0);
        let apanels = mc.div_ceil(MR);
        // Query micro-panels: element (i, kk) of panel ip at ip·MR·kc + kk·MR + i.
        for (ip, panel) in apack.chunks_mut(MR * kc).take(apanels).enumerate() {
            for i in 0..MR {
                let row = i0 + ip * MR + i;
                if row < m {
                    for (kk, v) in q[row * dim + pc..row * dim + pc + kc].iter().enumerate() {
                        panel[kk * MR + i] = *v;
                    }
                } else {
                    (0..kc).for_each(|kk| panel[kk * MR + i] = 0.0);
                }
            }
        }
        for jp in 0..panels {
            let b = &bpack[jp * NR * kc..(jp + 1) * NR * kc];
            let nj = NR.min(n - jp * NR);
            for ip in 0..apanels {
                let a = &apack[ip * MR * kc..(ip + 1) * MR * kc];
                let mi = MR.min(mc - ip * MR);
                let r = i0 + ip * MR;
                if mi == MR && nj == NR {
                    micro(a, b, &mut out[r * n + jp * NR..], n, kc, first);
                } else {
                    micro(a, b, &mut tile, NR, kc, true);
                    for i in 0..mi {
                        let dst = &mut out[(r + i) * n + jp * NR..(r + i) * n + jp * NR + nj];
                        for (d, t) in dst.iter_mut().zip(&tile[i * NR..i * NR + nj]) {
                            *d = if first { *t } else { *d + *t };
                        }
                    }
                }
            }
        }
    }
}

/// `c[i·ldc + j] (+)= Σ_kk a[kk·MR + i] · b[kk·NR + j]` for the `MR × NR` tile.
fn micro(a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, kc: usize, overwrite: bool) {
    assert!(a.len() >= kc * MR && b.len() >= kc * NR && ldc >= NR && c.len() >= (MR - 1) * ldc + NR);
    // SAFETY: `block` only runs once `available()` holds (checked in `scores`), and the
    // assertion bounds every offset the kernel reads and writes.
    #[allow(unsafe_code)] // AVX-512 intrinsics (target_feature functions) and raw-pointer reads
    unsafe {
        micro_avx512(a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, kc, overwrite)
    }
}

#[allow(unsafe_code)] // see `micro`
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512(a: *const f32, b: *const f32, c: *mut f32, ldc: usize, kc: usize, overwrite: bool) {
    // One named accumulator pair per row (an array of them is spilled to the stack).
    macro_rules! fma {
        ($ap:ident, $i:literal, $b0:ident, $b1:ident, $x:ident, $y:ident) => {
            let av = _mm512_set1_ps(*$ap.add($i));
            $x = _mm512_fmadd_ps(av, $b0, $x);
            $y = _mm512_fmadd_ps(av, $b1, $y);
        };
    }
    macro_rules! store {
        ($c:ident, $ldc:ident, $i:literal, $overwrite:ident, $x:ident, $y:ident) => {
            let p = $c.add($i * $ldc);
            let (lo, hi): (__m512, __m512) = if $overwrite {
                ($x, $y)
            } else {
                (_mm512_add_ps(_mm512_loadu_ps(p), $x), _mm512_add_ps(_mm512_loadu_ps(p.add(16)), $y))
            };
            _mm512_storeu_ps(p, lo);
            _mm512_storeu_ps(p.add(16), hi);
        };
    }
    let (mut c0a, mut c0b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c1a, mut c1b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c2a, mut c2b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c3a, mut c3b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c4a, mut c4b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c5a, mut c5b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c6a, mut c6b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c7a, mut c7b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c8a, mut c8b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c9a, mut c9b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c10a, mut c10b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c11a, mut c11b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c12a, mut c12b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (mut c13a, mut c13b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    // SAFETY (whole body): offsets stay below kc·MR in `a`, kc·NR in `b` and
    // (MR − 1)·ldc + NR in `c`, as `micro` asserted.
    unsafe {
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR));
            let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
            let ap = a.add(kk * MR);
            fma!(ap, 0, b0, b1, c0a, c0b);
            fma!(ap, 1, b0, b1, c1a, c1b);
            fma!(ap, 2, b0, b1, c2a, c2b);
            fma!(ap, 3, b0, b1, c3a, c3b);
            fma!(ap, 4, b0, b1, c4a, c4b);
            fma!(ap, 5, b0, b1, c5a, c5b);
            fma!(ap, 6, b0, b1, c6a, c6b);
            fma!(ap, 7, b0, b1, c7a, c7b);
            fma!(ap, 8, b0, b1, c8a, c8b);
            fma!(ap, 9, b0, b1, c9a, c9b);
            fma!(ap, 10, b0, b1, c10a, c10b);
            fma!(ap, 11, b0, b1, c11a, c11b);
            fma!(ap, 12, b0, b1, c12a, c12b);
            fma!(ap, 13, b0, b1, c13a, c13b);
        }
        store!(c, ldc, 0, overwrite, c0a, c0b);
        store!(c, ldc, 1, overwrite, c1a, c1b);
        store!(c, ldc, 2, overwrite, c2a, c2b);
        store!(c, ldc, 3, overwrite, c3a, c3b);
        store!(c, ldc, 4, overwrite, c4a, c4b);
        store!(c, ldc, 5, overwrite, c5a, c5b);
        store!(c, ldc, 6, overwrite, c6a, c6b);
        store!(c, ldc, 7, overwrite, c7a, c7b);
        store!(c, ldc, 8, overwrite, c8a, c8b);
        store!(c, ldc, 9, overwrite, c9a, c9b);
        store!(c, ldc, 10, overwrite, c10a, c10b);
        store!(c, ldc, 11, overwrite, c11a, c11b);
        store!(c, ldc, 12, overwrite, c12a, c12b);
        store!(c, ldc, 13, overwrite, c13a, c13b);
    }
}
