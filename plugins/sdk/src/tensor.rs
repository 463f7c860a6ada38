//! Tensor interface v1 (plugin interface 1.1): encoders defined by a plugin as a program over
//! **host-owned** tensors.
//!
//! The plugin never sees tensor memory. The host hands it a [`TensorApiV1`] table of
//! `extern "C"` functions and an opaque context; every function takes and returns [`Handle`]s
//! to tensors that live in the host (on the host's device, inside its autodiff graph). The
//! plugin's `forward` declares its parameters with [`TensorApiV1::param`] (by name, shape and
//! initialiser) and combines them with the input: the first call creates the parameters, and
//! every later call gets the same ones back in the same order, so the host's optimizer trains
//! them. Errors (a shape mismatch, an unknown handle) make a function return handle 0; the
//! message is kept by the host and read with [`TensorApiV1::last_error`].
//!
//! Shapes have 1 to 4 dimensions. Binary operations broadcast numpy-style (dimensions of size
//! 1, missing leading dimensions). The op codes are frozen for interface 1.x: new operations
//! get new codes, existing ones never change meaning.

pub use crate::since_v1_1::{EncoderV1, TensorApiV1};
pub use crate::since_v1_2::{LossV1, TensorPluginV1};
use crate::{ErrBuf, Str};

/// A host tensor; 0 means "failed" (see [`TensorApiV1::last_error`]).
pub type Handle = u64;

/// Unary element-wise operations ([`TensorApiV1::unary`]).
pub mod unary {
    pub const RELU: u32 = 1;
    /// Exact (erf) GELU, as `torch.nn.GELU()`.
    pub const GELU: u32 = 2;
    pub const TANH: u32 = 3;
    pub const SIGMOID: u32 = 4;
    pub const EXP: u32 = 5;
    pub const LOG: u32 = 6;
    pub const NEG: u32 = 7;
    pub const SQRT: u32 = 8;
}

/// Binary operations ([`TensorApiV1::binary`]); element-wise ones broadcast.
pub mod binary {
    pub const ADD: u32 = 1;
    pub const SUB: u32 = 2;
    pub const MUL: u32 = 3;
    pub const DIV: u32 = 4;
    /// Matrix product over the last two dimensions, leading dimensions broadcast.
    pub const MATMUL: u32 = 5;
}

/// Tensor-scalar operations ([`TensorApiV1::scalar`]).
pub mod scalar {
    pub const ADD: u32 = 1;
    pub const MUL: u32 = 2;
    pub const POW: u32 = 3;
}

/// Operations along one dimension ([`TensorApiV1::along`]); reductions keep the dimension.
pub mod along {
    pub const SUM: u32 = 1;
    pub const MEAN: u32 = 2;
    pub const MAX: u32 = 3;
    pub const SOFTMAX: u32 = 4;
    pub const LOG_SOFTMAX: u32 = 5;
}

/// Parameter initialisers ([`TensorApiV1::param`]); `scale` is their argument.
pub mod init {
    pub const ZEROS: u32 = 0;
    /// All values equal `scale`.
    pub const CONSTANT: u32 = 1;
    /// Normal(0, scale).
    pub const NORMAL: u32 = 2;
    /// Uniform(-b, b) with b = scale / sqrt(fan_in), fan_in = product of all dims but the last
    /// (PyTorch's default for `nn.Linear` with scale 1).
    pub const UNIFORM_FAN_IN: u32 = 3;
}

/// A tensor handle in a plugin's program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct T(pub Handle);

/// Safe wrapper over [`TensorApiV1`] for plugin authors: each method returns `Err(message)`
/// when the host refused the operation.
pub struct Graph<'a> {
    api: &'a TensorApiV1,
}

impl<'a> Graph<'a> {
    /// # Safety
    /// `api` must be the table the host passed to `forward`.
    pub unsafe fn new(api: &'a TensorApiV1) -> Self {
        Self { api }
    }

    fn check(&self, h: Handle) -> Result<T, String> {
        if h != 0 {
            return Ok(T(h));
        }
        let mut buf = vec![0u8; 512];
        // SAFETY: host function; buf has `cap` writable bytes.
        let n = unsafe { (self.api.last_error)(self.api.ctx, buf.as_mut_ptr(), buf.len()) };
        Err(String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned())
    }

    /// The next parameter, `name` and `shape` as declared, initialised by `init` (see [`init`]).
    pub fn param(&self, name: &'static str, shape: &[usize], init: u32, scale: f32) -> Result<T, String> {
        // SAFETY: host function; `shape` is live for the call; `name` is static.
        let h =
            unsafe { (self.api.param)(self.api.ctx, Str::from_static(name), shape.as_ptr(), shape.len(), init, scale) };
        self.check(h)
    }

    pub fn shape(&self, a: T) -> Result<Vec<usize>, String> {
        let mut out = [0usize; 8];
        // SAFETY: host function; `out` has 8 writable values.
        let n = unsafe { (self.api.shape)(self.api.ctx, a.0, out.as_mut_ptr(), out.len()) };
        if n == 0 {
            return self.check(0).map(|_| Vec::new());
        }
        Ok(out[..n.min(8)].to_vec())
    }

    pub fn unary(&self, op: u32, a: T) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.unary)(self.api.ctx, op, a.0) })
    }
    pub fn binary(&self, op: u32, a: T, b: T) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.binary)(self.api.ctx, op, a.0, b.0) })
    }
    pub fn scalar(&self, op: u32, a: T, v: f32) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.scalar)(self.api.ctx, op, a.0, v) })
    }
    pub fn along(&self, op: u32, a: T, dim: usize) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.along)(self.api.ctx, op, a.0, dim) })
    }
    pub fn reshape(&self, a: T, shape: &[usize]) -> Result<T, String> {
        // SAFETY: host function; `shape` is live for the call.
        self.check(unsafe { (self.api.reshape)(self.api.ctx, a.0, shape.as_ptr(), shape.len()) })
    }
    pub fn transpose(&self, a: T, d0: usize, d1: usize) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.transpose)(self.api.ctx, a.0, d0, d1) })
    }
    pub fn slice(&self, a: T, dim: usize, start: usize, end: usize) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.slice)(self.api.ctx, a.0, dim, start, end) })
    }
    pub fn concat(&self, parts: &[T], dim: usize) -> Result<T, String> {
        let hs: Vec<Handle> = parts.iter().map(|t| t.0).collect();
        // SAFETY: host function; `hs` is live for the call.
        self.check(unsafe { (self.api.concat)(self.api.ctx, hs.as_ptr(), hs.len(), dim) })
    }
    pub fn linear(&self, x: T, w: T, b: Option<T>) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.linear)(self.api.ctx, x.0, w.0, b.map_or(0, |b| b.0)) })
    }
    pub fn layer_norm(&self, x: T, gamma: T, beta: T, eps: f32) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.layer_norm)(self.api.ctx, x.0, gamma.0, beta.0, eps) })
    }
    pub fn conv2d(&self, x: T, w: T, b: Option<T>, stride: usize, padding: usize) -> Result<T, String> {
        // SAFETY: host function over handles.
        self.check(unsafe { (self.api.conv2d)(self.api.ctx, x.0, w.0, b.map_or(0, |b| b.0), stride, padding) })
    }

    // Conveniences built from the operations above.
    pub fn add(&self, a: T, b: T) -> Result<T, String> {
        self.binary(binary::ADD, a, b)
    }
    pub fn mul(&self, a: T, b: T) -> Result<T, String> {
        self.binary(binary::MUL, a, b)
    }
    pub fn matmul(&self, a: T, b: T) -> Result<T, String> {
        self.binary(binary::MATMUL, a, b)
    }
    pub fn gelu(&self, a: T) -> Result<T, String> {
        self.unary(unary::GELU, a)
    }
    pub fn relu(&self, a: T) -> Result<T, String> {
        self.unary(unary::RELU, a)
    }
    pub fn sub(&self, a: T, b: T) -> Result<T, String> {
        self.binary(binary::SUB, a, b)
    }
    pub fn div(&self, a: T, b: T) -> Result<T, String> {
        self.binary(binary::DIV, a, b)
    }
    /// A `nn.Linear(d_in, d_out)` layer: parameters `{name}.weight` `(d_in, d_out)` and
    /// `{name}.bias`, PyTorch's default initialisation.
    pub fn dense(&self, x: T, names: (&'static str, &'static str), d_in: usize, d_out: usize) -> Result<T, String> {
        let w = self.param(names.0, &[d_in, d_out], init::UNIFORM_FAN_IN, 1.0)?;
        let b = self.param(names.1, &[d_out], init::ZEROS, 0.0)?;
        self.linear(x, w, Some(b))
    }
}

/// What a plugin author implements for an encoder.
pub trait GraphEncoder {
    const NAME: &'static str;
    const MODALITY: &'static str;
    /// Builds the embedding of `x` `(batch, input_len)` → `(batch, embed_dim)`. Must declare
    /// the same parameters in the same order on every call (no data-dependent parameters).
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String>;
}

/// What a plugin author implements for a contrastive loss.
pub trait GraphLoss {
    const NAME: &'static str;
    /// The loss of paired batches `a`, `b` `(batch, d)`; returns a `[1]`-shaped scalar. May
    /// declare parameters (e.g. a learnable temperature) like an encoder.
    fn loss(g: &Graph<'_>, a: T, b: T) -> Result<T, String>;
}

fn finish(result: std::thread::Result<Result<T, String>>, out: *mut Handle, err: *mut ErrBuf) -> i32 {
    match result {
        Ok(Ok(t)) => {
            if !out.is_null() {
                // SAFETY: the host passes a writable Handle.
                unsafe { *out = t.0 };
            }
            crate::OK
        }
        Ok(Err(msg)) => crate::write_err(err, crate::ERR_INPUT, &msg),
        Err(p) => crate::write_err(err, crate::ERR_PANIC, &format!("panicked: {}", crate::panic_message(p))),
    }
}

/// # Safety
/// `api` must point at the host's table and `out`/`err` at writable values (interface 1.1).
#[doc(hidden)]
pub unsafe extern "C" fn loss_trampoline<L: GraphLoss>(
    api: *const TensorApiV1,
    a: Handle,
    b: Handle,
    out: *mut Handle,
    err: *mut ErrBuf,
) -> i32 {
    let result = std::panic::catch_unwind(|| {
        // SAFETY: the host passes its live table for the duration of the call.
        let Some(api) = (unsafe { api.as_ref() }) else { return Err("null tensor table".to_string()) };
        // SAFETY: same table.
        let g = unsafe { Graph::new(api) };
        L::loss(&g, T(a), T(b))
    });
    finish(result, out, err)
}

/// Builds the [`LossV1`] entry of `L`.
pub const fn loss_v1<L: GraphLoss>() -> LossV1 {
    LossV1 { name: Str::from_static(L::NAME), loss: loss_trampoline::<L> }
}

/// # Safety
/// `api` must point at the host's table and `out`/`err` at writable values (interface 1.1).
#[doc(hidden)]
pub unsafe extern "C" fn encoder_forward_trampoline<E: GraphEncoder>(
    api: *const TensorApiV1,
    input: Handle,
    embed_dim: usize,
    out: *mut Handle,
    err: *mut ErrBuf,
) -> i32 {
    let result = std::panic::catch_unwind(|| {
        // SAFETY: the host passes its live table for the duration of the call.
        let Some(api) = (unsafe { api.as_ref() }) else { return Err("null tensor table".to_string()) };
        // SAFETY: same table.
        let g = unsafe { Graph::new(api) };
        E::forward(&g, T(input), embed_dim)
    });
    finish(result, out, err)
}

/// Builds the [`EncoderV1`] entry of `E`.
pub const fn encoder_v1<E: GraphEncoder>() -> EncoderV1 {
    EncoderV1 {
        name: Str::from_static(E::NAME),
        modality: Str::from_static(E::MODALITY),
        forward: encoder_forward_trampoline::<E>,
    }
}
