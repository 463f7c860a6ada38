//! MoCo v2: momentum contrast with a queue of negatives (He et al. 2020, "Momentum Contrast for
//! Unsupervised Visual Representation Learning"; Chen et al. 2020, "Improved Baselines with
//! Momentum Contrastive Learning"), the image-only self-supervised baseline of Stein et al.
//! 2021 ("Self-supervised similarity search for large scientific datasets", on Legacy Survey
//! cutouts). Reference code: facebookresearch/moco `moco/builder.py`:
//!
//! ```text
//! param_k = param_k * m + param_q * (1 - m)                 # _momentum_update_key_encoder
//! q = normalize(encoder_q(im_q)); k = normalize(encoder_k(im_k))   (no gradient to k)
//! logits = cat([q·k (n×1), q @ queue (n×K)], 1) / T;  loss = CE(logits, label 0)
//! queue[:, ptr:ptr+n] = k.T;  ptr = (ptr + n) % K           # _dequeue_and_enqueue
//! ```
//! The reference asserts `K % n == 0`; this queue wraps row by row instead, so any batch size
//! works and, when `K % n == 0`, it is the same ring. The queue starts as random unit vectors,
//! as in the reference (`randn` then `normalize`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The ring of `k` negative keys of dimension `dim`.
#[derive(Debug, Clone)]
pub struct Queue {
    data: Vec<f32>,
    k: usize,
    dim: usize,
    ptr: usize,
}

impl Queue {
    /// `k` random unit vectors (seeded).
    pub fn new(k: usize, dim: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data: Vec<f32> = (0..k * dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        for row in data.chunks_mut(dim) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= n);
        }
        Self { data, k, dim, ptr: 0 }
    }

    /// A queue from its saved rows (`k × dim`) and pointer (a checkpoint).
    pub fn from_parts(data: Vec<f32>, k: usize, dim: usize, ptr: usize) -> Self {
        assert_eq!(data.len(), k * dim);
        Self { data, k, dim, ptr: ptr % k.max(1) }
    }

    pub fn len(&self) -> usize {
        self.k
    }

    pub fn is_empty(&self) -> bool {
        self.k == 0
    }

    /// Where the next key goes.
    pub fn ptr(&self) -> usize {
        self.ptr
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Replaces the oldest keys with `keys` (rows of `dim`), in order.
    pub fn enqueue(&mut self, keys: &[f32]) {
        assert_eq!(keys.len() % self.dim, 0, "keys are not rows of {}", self.dim);
        for row in keys.chunks(self.dim) {
            self.data[self.ptr * self.dim..(self.ptr + 1) * self.dim].copy_from_slice(row);
            self.ptr = (self.ptr + 1) % self.k;
        }
    }

    /// `(k, dim)`, a constant (no gradient).
    pub fn tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.data.clone(), [self.k, self.dim]), device)
    }
}

/// MoCo's logits `[q·k⁺, q·queueᵀ] / T` for L2-normalised `q`, `k` `(n, d)` and `queue` `(K, d)`.
pub fn logits(q: Tensor<2>, k: Tensor<2>, queue: Tensor<2>, temperature: f64) -> Tensor<2> {
    let pos = (q.clone() * k).sum_dim(1);
    let neg = q.matmul(queue.transpose());
    Tensor::cat(vec![pos, neg], 1) / temperature
}

/// Cross-entropy of the logits with the positive (column 0) as the label, averaged.
pub fn loss(q: Tensor<2>, k: Tensor<2>, queue: Tensor<2>, temperature: f64) -> Tensor<1> {
    let lp = log_softmax(logits(q, k, queue, temperature), 1);
    let n = lp.dims()[0];
    -(lp.slice([0..n, 0..1]).mean().reshape([1]))
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val();
        let n = v.shape().num_elements();
        self.0.push(v.reshape([n]));
    }
}

struct Blend {
    query: Vec<Tensor<1>>,
    next: usize,
    m: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let q = self.query[self.next].clone();
        self.next += 1;
        let m = self.m;
        param.map(|k| {
            let shape = k.shape();
            (k * m + q.reshape(shape) * (1.0 - m)).detach()
        })
    }
}

/// A gradient-free copy of `module` with its own parameters (the initial key encoder).
/// `clone().no_grad()` is not enough: clones share their parameters.
pub fn detached_copy<M: Module>(module: &M) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            Param::from_tensor(param.val().detach()).set_require_grad(false)
        }
    }
    module.clone().map(&mut Fresh)
}

/// The momentum (EMA) update of the key encoder: every float parameter becomes
/// `m · key + (1 − m) · query`. Both modules must have the same structure.
pub fn momentum_update<M: Module>(key: M, query: &M, m: f64) -> M {
    let mut c = Collect(Vec::new());
    query.visit(&mut c);
    let mut b = Blend { query: c.0, next: 0, m };
    let out = key.map(&mut b);
    assert_eq!(b.next, b.query.len(), "key and query encoders differ in structure");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn queue_is_a_ring_of_the_newest_keys() {
        let mut q = Queue::new(4, 2, 7);
        for i in 0..4 {
            let n: f32 = q.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5, "initial keys are unit vectors");
        }
        // Batches of 3 into a queue of 4: rows 0,1,2 then 3,0,1 (wrapping), as
        // `queue[:, ptr:ptr+n] = k.T; ptr = (ptr+n) % K` does when K % n == 0.
        q.enqueue(&[1., 1., 2., 2., 3., 3.]);
        assert_eq!(q.ptr(), 3);
        q.enqueue(&[4., 4., 5., 5., 6., 6.]);
        assert_eq!(q.ptr(), 2);
        let rows: Vec<f32> = (0..4).map(|i| q.row(i)[0]).collect();
        assert_eq!(rows, [5., 6., 3., 4.]);
        // K % n == 0: exactly the reference's slices.
        let mut r = Queue::new(4, 1, 0);
        r.enqueue(&[1., 2.]);
        r.enqueue(&[3., 4.]);
        r.enqueue(&[5., 6.]);
        assert_eq!(((0..4).map(|i| r.row(i)[0]).collect::<Vec<_>>(), r.ptr()), (vec![5., 6., 3., 4.], 2));
    }

    #[test]
    fn momentum_update_blends_every_parameter() {
        let dev = Device::default();
        let query: Linear = LinearConfig::new(3, 2).init(&dev);
        let key: Linear = LinearConfig::new(3, 2).init(&dev).no_grad();
        let vals = |l: &Linear| -> Vec<Vec<f32>> {
            let mut c = Collect(Vec::new());
            l.visit(&mut c);
            c.0.into_iter().map(|t| t.into_data().try_to_vec::<f32>().unwrap()).collect()
        };
        let (qv, kv) = (vals(&query), vals(&key));
        let updated = momentum_update(key, &query, 0.9);
        let uv = vals(&updated);
        assert_eq!(uv.len(), 2, "weight and bias");
        for ((u, k), q) in uv.iter().zip(&kv).zip(&qv) {
            for ((u, k), q) in u.iter().zip(k).zip(q) {
                assert!((u - (0.9 * k + 0.1 * q)).abs() < 1e-6, "{u} vs 0.9·{k} + 0.1·{q}");
            }
        }
        // m = 0 copies the query; m = 1 keeps the key.
        let copied = momentum_update(updated.clone(), &query, 0.0);
        assert_eq!(vals(&copied), qv);
        assert_eq!(vals(&momentum_update(updated.clone(), &query, 1.0)), uv);
    }

    /// The key starts as a copy of the query: making the copy gradient-free must leave the
    /// query trainable (parameters are shared lazily between clones).
    #[test]
    fn a_no_grad_key_copy_leaves_the_query_trainable() {
        use burn::optim::GradientsParams;
        let dev = Device::default().autodiff();
        let query: Linear = LinearConfig::new(3, 2).init(&dev);
        let key = detached_copy(&query);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [1, 3]), &dev);
        let l = query.forward(x.clone()).sum() + key.forward(x).sum();
        let grads = GradientsParams::from_grads(l.backward(), &query);
        assert_eq!(grads.len(), 2, "weight and bias of the query get gradients");
    }

    /// Golden value by the reference formula, computed here in f64: n = 2, d = 2, K = 2, T = 0.5.
    #[test]
    fn loss_matches_cross_entropy_with_the_positive_as_label() {
        let dev = Device::default();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let qd = [[1.0f32, 0.0], [0.0, 1.0]];
        let kd = [[s, s], [0.0, 1.0]];
        let queue = [[1.0f32, 0.0], [-s, s]];
        let t = 0.5f64;
        let mut want = 0.0f64;
        for i in 0..2 {
            let dot = |a: &[f32; 2], b: &[f32; 2]| (a[0] * b[0] + a[1] * b[1]) as f64 / t;
            let ls = [dot(&qd[i], &kd[i]), dot(&qd[i], &queue[0]), dot(&qd[i], &queue[1])];
            let lse = ls.iter().map(|x| x.exp()).sum::<f64>().ln();
            want += (lse - ls[0]) / 2.0;
        }
        let m = |v: [[f32; 2]; 2]| Tensor::<2>::from_data(TensorData::new(v.concat(), [2, 2]), &dev);
        let got: f32 = loss(m(qd), m(kd), m(queue), t).into_scalar();
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
}
