//! Host side of tensor interface v1: an encoder defined by a plugin, run on the host's tensors.
//!
//! The plugin's `forward` calls back into the functions below through the
//! [`TensorApiV1`] table; each call is executed at once on burn tensors of the host's device,
//! so the plugin's program becomes part of the host's autodiff graph, and its parameters are
//! ordinary `Param`s of a burn [`Module`] trained by the host's optimizer. No burn type and no
//! tensor memory crosses the boundary: the plugin sees only integer handles.
//!
//! Every tensor is held as a rank-4 burn tensor with its logical shape (1–4 dims, padded with
//! leading 1s), so one code path serves every rank and numpy-style broadcasting falls out of
//! burn's broadcasting of size-1 dimensions. Shapes are checked here before burn sees them,
//! and burn panics are caught, so a wrong program yields an error naming the plugin, the
//! encoder and the operation instead of a crash.
#![allow(unsafe_code)] // the extern "C" callbacks of the tensor table; each block says why

use std::ffi::c_void;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use astroclip_carrier_protocol::{TensorAnswer, TensorCall};
use astroclip_plugin_api::{ComponentInfo, ComponentKind, ModalityEncoder};
use astroclip_plugin_host::native::{NativeEncoder, NativeLoss};
use astroclip_plugin_sdk::tensor::{EncoderV1, Handle, LossV1, TensorApiV1, along, binary, init, scalar, unary};
use astroclip_plugin_sdk::{ErrBuf, Str};
use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, log_softmax, relu, sigmoid, softmax, tanh};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("plugin {id} {version}, {component}: {detail}")]
    Plugin { id: String, version: String, component: String, detail: String },
}

/// What the host knows of one plugin encoder.
#[derive(Clone)]
pub struct EncoderSpec {
    pub plugin_id: String,
    pub plugin_version: String,
    pub name: String,
    pub modality: String,
    pub embed_dim: usize,
    pub input_len: usize,
    /// Declared parameters, in declaration order.
    pub params: Vec<(String, Vec<usize>)>,
    program: Program,
}

impl std::fmt::Debug for EncoderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} encoder {} ({} params)", self.plugin_id, self.plugin_version, self.name, self.params.len())
    }
}

/// A plugin-defined encoder as a burn module: its parameters are stored flat (rank 1) and
/// reshaped to their declared shapes when the plugin asks for them.
#[derive(Module, Debug)]
pub struct PluginEncoder {
    params: Vec<Param<Tensor<1>>>,
    #[module(skip)]
    spec: Arc<EncoderSpec>,
}

/// Logical shape padded to rank 4 with leading ones.
fn pad4(shape: &[usize]) -> [usize; 4] {
    let mut out = [1usize; 4];
    out[4 - shape.len()..].copy_from_slice(shape);
    out
}

struct Value {
    t: Tensor<4>,
    shape: Vec<usize>,
}

enum Params {
    /// First forward: parameters are created as declared.
    Declare(Vec<(String, Vec<usize>, Tensor<1>)>),
    /// Later forwards: the module's parameters, handed out in order.
    Use(Vec<Tensor<1>>),
}

struct Ctx<'a> {
    device: Device,
    values: Vec<Value>,
    params: Params,
    expected: &'a [(String, Vec<usize>)],
    next_param: usize,
    error: String,
}

type R<T> = Result<T, String>;

impl Ctx<'_> {
    fn push(&mut self, t: Tensor<4>, shape: Vec<usize>) -> Handle {
        self.values.push(Value { t, shape });
        self.values.len() as Handle
    }

    fn get(&self, h: Handle) -> R<&Value> {
        (h as usize).checked_sub(1).and_then(|i| self.values.get(i)).ok_or_else(|| format!("unknown tensor handle {h}"))
    }

    fn dim(&self, shape: &[usize], d: usize, op: &str) -> R<usize> {
        if d >= shape.len() {
            return Err(format!("{op}: dimension {d} out of range for shape {shape:?}"));
        }
        Ok(d + 4 - shape.len())
    }

    fn param(&mut self, name: &str, shape: &[usize], kind: u32, scale: f32) -> R<Handle> {
        if shape.is_empty() || shape.len() > 4 || shape.contains(&0) {
            return Err(format!("parameter {name:?}: shape {shape:?} must have 1-4 non-zero dims"));
        }
        let i = self.next_param;
        self.next_param += 1;
        let n: usize = shape.iter().product();
        let flat = match &mut self.params {
            Params::Declare(list) => {
                if list.iter().any(|(n, _, _)| n == name) {
                    return Err(format!("parameter {name:?} declared twice"));
                }
                let t = match kind {
                    init::ZEROS => Tensor::zeros([n], &self.device),
                    init::CONSTANT => Tensor::ones([n], &self.device) * scale as f64,
                    init::NORMAL => Tensor::random([n], Distribution::Normal(0.0, scale as f64), &self.device),
                    init::UNIFORM_FAN_IN => {
                        let fan_in: usize = shape[..shape.len() - 1].iter().product::<usize>().max(1);
                        let b = scale as f64 / (fan_in as f64).sqrt();
                        Tensor::random([n], Distribution::Uniform(-b, b), &self.device)
                    }
                    k => return Err(format!("parameter {name:?}: unknown initialiser {k}")),
                };
                list.push((name.to_string(), shape.to_vec(), t.clone()));
                t
            }
            Params::Use(list) => {
                let Some((en, es)) = self.expected.get(i) else {
                    return Err(format!("parameter {name:?} (#{i}) was not declared by the first forward"));
                };
                if en != name || es != shape {
                    return Err(format!(
                        "parameter #{i} is {name:?} {shape:?} but the first forward declared {en:?} {es:?}: \
                         the program must declare the same parameters in the same order on every call"
                    ));
                }
                list[i].clone()
            }
        };
        Ok(self.push(flat.reshape(pad4(shape)), shape.to_vec()))
    }

    fn unary(&mut self, op: u32, a: Handle) -> R<Handle> {
        let v = self.get(a)?;
        let (x, s) = (v.t.clone(), v.shape.clone());
        let y = match op {
            unary::RELU => relu(x),
            unary::GELU => gelu(x),
            unary::TANH => tanh(x),
            unary::SIGMOID => sigmoid(x),
            unary::EXP => x.exp(),
            unary::LOG => x.log(),
            unary::NEG => -x,
            unary::SQRT => x.sqrt(),
            k => return Err(format!("unknown unary op {k}")),
        };
        Ok(self.push(y, s))
    }

    fn broadcast(a: &[usize], b: &[usize], op: &str) -> R<Vec<usize>> {
        let r = a.len().max(b.len());
        let (pa, pb) = (pad4(a), pad4(b));
        let mut out = Vec::with_capacity(r);
        for d in 4 - r..4 {
            let (x, y) = (pa[d], pb[d]);
            if x != y && x != 1 && y != 1 {
                return Err(format!("{op}: shapes {a:?} and {b:?} do not broadcast"));
            }
            out.push(x.max(y));
        }
        Ok(out)
    }

    fn binary(&mut self, op: u32, a: Handle, b: Handle) -> R<Handle> {
        let (va, vb) = (self.get(a)?, self.get(b)?);
        let (x, y, sa, sb) = (va.t.clone(), vb.t.clone(), va.shape.clone(), vb.shape.clone());
        if op == binary::MATMUL {
            let (ra, rb) = (sa.len(), sb.len());
            if ra < 2 || rb < 2 || sa[ra - 1] != sb[rb - 2] {
                return Err(format!("matmul: shapes {sa:?} and {sb:?} do not multiply (need (.., m, k) @ (.., k, n))"));
            }
            let batch = Self::broadcast(&sa[..ra - 2], &sb[..rb - 2], "matmul batch")?;
            let mut out = batch.clone();
            out.extend([sa[ra - 2], sb[rb - 1]]);
            let ea = pad4(&[batch.as_slice(), &sa[ra - 2..]].concat());
            let eb = pad4(&[batch.as_slice(), &sb[rb - 2..]].concat());
            return Ok(self.push(x.expand(ea).matmul(y.expand(eb)), out));
        }
        let out = Self::broadcast(&sa, &sb, "element-wise op")?;
        let full = pad4(&out);
        let (x, y) = (x.expand(full), y.expand(full));
        let z = match op {
            binary::ADD => x + y,
            binary::SUB => x - y,
            binary::MUL => x * y,
            binary::DIV => x / y,
            k => return Err(format!("unknown binary op {k}")),
        };
        Ok(self.push(z, out))
    }

    fn scalar(&mut self, op: u32, a: Handle, v: f32) -> R<Handle> {
        let va = self.get(a)?;
        let (x, s) = (va.t.clone(), va.shape.clone());
        let y = match op {
            scalar::ADD => x.add_scalar(v),
            scalar::MUL => x.mul_scalar(v),
            scalar::POW => x.powf_scalar(v),
            k => return Err(format!("unknown scalar op {k}")),
        };
        Ok(self.push(y, s))
    }

    fn along(&mut self, op: u32, a: Handle, dim: usize) -> R<Handle> {
        let va = self.get(a)?;
        let (x, s) = (va.t.clone(), va.shape.clone());
        let d = self.dim(&s, dim, "reduction")?;
        let mut out = s.clone();
        let y = match op {
            along::SUM => x.sum_dim(d),
            along::MEAN => x.mean_dim(d),
            along::MAX => x.max_dim(d),
            along::SOFTMAX => softmax(x, d),
            along::LOG_SOFTMAX => log_softmax(x, d),
            k => return Err(format!("unknown op along a dimension {k}")),
        };
        if matches!(op, along::SUM | along::MEAN | along::MAX) {
            out[dim] = 1;
        }
        Ok(self.push(y, out))
    }

    fn reshape(&mut self, a: Handle, shape: &[usize]) -> R<Handle> {
        let va = self.get(a)?;
        let n: usize = va.shape.iter().product();
        if shape.is_empty() || shape.len() > 4 || shape.iter().product::<usize>() != n {
            return Err(format!("reshape: {:?} ({n} values) cannot become {shape:?}", va.shape));
        }
        let t = va.t.clone().reshape(pad4(shape));
        Ok(self.push(t, shape.to_vec()))
    }

    fn transpose(&mut self, a: Handle, d0: usize, d1: usize) -> R<Handle> {
        let va = self.get(a)?;
        let (x, mut s) = (va.t.clone(), va.shape.clone());
        let (p0, p1) = (self.dim(&s, d0, "transpose")?, self.dim(&s, d1, "transpose")?);
        s.swap(d0, d1);
        Ok(self.push(x.swap_dims(p0, p1), s))
    }

    fn slice(&mut self, a: Handle, dim: usize, start: usize, end: usize) -> R<Handle> {
        let va = self.get(a)?;
        let (x, mut s) = (va.t.clone(), va.shape.clone());
        let p = self.dim(&s, dim, "slice")?;
        if start >= end || end > s[dim] {
            return Err(format!("slice: {start}..{end} out of range for dimension {dim} of {s:?}"));
        }
        s[dim] = end - start;
        Ok(self.push(x.narrow(p, start, end - start), s))
    }

    fn concat(&mut self, hs: &[Handle], dim: usize) -> R<Handle> {
        let first = self.get(*hs.first().ok_or("concat of nothing")?)?.shape.clone();
        let p = self.dim(&first, dim, "concat")?;
        let mut out = first.clone();
        out[dim] = 0;
        let mut parts = Vec::with_capacity(hs.len());
        for &h in hs {
            let v = self.get(h)?;
            let ok = v.shape.len() == first.len()
                && v.shape.iter().zip(&first).enumerate().all(|(i, (a, b))| i == dim || a == b);
            if !ok {
                return Err(format!("concat along {dim}: shapes {first:?} and {:?} differ elsewhere", v.shape));
            }
            out[dim] += v.shape[dim];
            parts.push(v.t.clone());
        }
        Ok(self.push(Tensor::cat(parts, p), out))
    }

    fn vector(&self, h: Handle, len: usize, what: &str) -> R<Tensor<4>> {
        let v = self.get(h)?;
        if v.shape != [len] {
            return Err(format!("{what} has shape {:?}; expected [{len}]", v.shape));
        }
        Ok(v.t.clone())
    }

    fn linear(&mut self, x: Handle, w: Handle, b: Handle) -> R<Handle> {
        let (vx, vw) = (self.get(x)?, self.get(w)?);
        let (sx, sw) = (vx.shape.clone(), vw.shape.clone());
        let d_in = *sx.last().unwrap_or(&0);
        if sw.len() != 2 || sw[0] != d_in {
            return Err(format!("linear: input {sx:?} and weight {sw:?} (need (.., in) and (in, out))"));
        }
        let rows: usize = sx[..sx.len() - 1].iter().product();
        let mut y = vx.t.clone().reshape([1, 1, rows, d_in]).matmul(vw.t.clone());
        if b != 0 {
            y = y + self.vector(b, sw[1], "linear bias")?;
        }
        let mut out = sx.clone();
        *out.last_mut().unwrap_or(&mut 0) = sw[1];
        Ok(self.push(y.reshape(pad4(&out)), out))
    }

    fn layer_norm(&mut self, x: Handle, gamma: Handle, beta: Handle, eps: f32) -> R<Handle> {
        let vx = self.get(x)?;
        let (t, s) = (vx.t.clone(), vx.shape.clone());
        let d = *s.last().unwrap_or(&0);
        let (g, b) = (self.vector(gamma, d, "layer_norm gamma")?, self.vector(beta, d, "layer_norm beta")?);
        let mean = t.clone().mean_dim(3);
        let centred = t - mean;
        let var = centred.clone().powf_scalar(2.0).mean_dim(3);
        let y = centred / var.add_scalar(eps).sqrt() * g + b;
        Ok(self.push(y, s))
    }

    fn conv2d(&mut self, x: Handle, w: Handle, b: Handle, stride: usize, padding: usize) -> R<Handle> {
        let (vx, vw) = (self.get(x)?, self.get(w)?);
        let (sx, sw) = (vx.shape.clone(), vw.shape.clone());
        if sx.len() != 4 || sw.len() != 4 || sx[1] != sw[1] || stride == 0 {
            return Err(format!(
                "conv2d: input {sx:?}, weight {sw:?}, stride {stride} (need (n, c, h, w), (o, c, k, k), stride ≥ 1)"
            ));
        }
        if sx[2] + 2 * padding < sw[2] || sx[3] + 2 * padding < sw[3] {
            return Err(format!("conv2d: kernel {sw:?} larger than padded input {sx:?}"));
        }
        let bias = if b == 0 { None } else { Some(self.vector(b, sw[0], "conv2d bias")?.reshape([sw[0]])) };
        let y = conv2d(vx.t.clone(), vw.t.clone(), bias, ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1));
        let s = y.dims().to_vec();
        Ok(self.push(y, s))
    }
}

impl Ctx<'_> {
    /// One tensor-interface call arriving over RPC (WASM plugins, from `astroclip-wasm-host`):
    /// positional JSON arguments in the order of the native table; answers `{"h": handle}`,
    /// `{"shape": [..]}` or `{"error": message}`.
    /// Executes one tensor call of a WASM encoder (typed by the carrier protocol).
    fn dispatch(&mut self, call: TensorCall) -> TensorAnswer {
        let name = call.name();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> R<TensorAnswer> {
            let h = |r: R<Handle>| r.map(TensorAnswer::Handle);
            match call {
                TensorCall::Param { name, shape, init, scale } => h(self.param(&name, &shape, init, scale)),
                TensorCall::Shape { a } => Ok(TensorAnswer::Shape(self.get(a)?.shape.clone())),
                TensorCall::Unary { op, a } => h(self.unary(op, a)),
                TensorCall::Binary { op, a, b } => h(self.binary(op, a, b)),
                TensorCall::Scalar { op, a, v } => h(self.scalar(op, a, v)),
                TensorCall::Along { op, a, dim } => h(self.along(op, a, dim)),
                TensorCall::Reshape { a, shape } => h(self.reshape(a, &shape)),
                TensorCall::Transpose { a, d0, d1 } => h(self.transpose(a, d0, d1)),
                TensorCall::Slice { a, dim, start, end } => h(self.slice(a, dim, start, end)),
                TensorCall::Concat { hs, dim } => h(self.concat(&hs, dim)),
                TensorCall::Linear { x, w, b } => h(self.linear(x, w, b)),
                TensorCall::LayerNorm { x, gamma, beta, eps } => h(self.layer_norm(x, gamma, beta, eps)),
                TensorCall::Conv2d { x, w, b, stride, padding } => h(self.conv2d(x, w, b, stride, padding)),
            }
        }));
        match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => TensorAnswer::Error(e),
            Err(_) => TensorAnswer::Error(format!("{name}: the backend refused the operation")),
        }
    }
}

/// Runs `f` on the context behind `ctx`, turning errors and panics into handle 0 + message.
fn call(ctx: *mut c_void, f: impl FnOnce(&mut Ctx<'_>) -> R<Handle>) -> Handle {
    // SAFETY: `ctx` is the `Ctx` the host put into the table for this forward; the plugin
    // passes it back unchanged and calls synchronously on the host's thread.
    let Some(c) = (unsafe { (ctx as *mut Ctx<'_>).as_mut() }) else { return 0 };
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(c))) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            c.error = e;
            0
        }
        Err(p) => {
            c.error = format!(
                "the backend refused the operation: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            );
            0
        }
    }
}

/// # Safety
/// `ptr` must point at `n` readable values for the call.
unsafe fn slice_of<'a, T>(ptr: *const T, n: usize) -> &'a [T] {
    if n == 0 || ptr.is_null() { &[] } else { unsafe { std::slice::from_raw_parts(ptr, n) } }
}

unsafe extern "C" fn h_last_error(ctx: *mut c_void, buf: *mut u8, cap: usize) -> usize {
    // SAFETY: see `call`; `buf` has `cap` writable bytes (interface contract).
    let Some(c) = (unsafe { (ctx as *mut Ctx<'_>).as_ref() }) else { return 0 };
    let b = c.error.as_bytes();
    if !buf.is_null() {
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), buf, b.len().min(cap)) };
    }
    b.len()
}
unsafe extern "C" fn h_param(ctx: *mut c_void, name: Str, shape: *const usize, ndim: usize, k: u32, s: f32) -> Handle {
    // SAFETY: `name` is the plugin's static string, `shape` has `ndim` values for the call.
    let (name, shape) = unsafe { (name.to_string_lossy(), slice_of(shape, ndim).to_vec()) };
    call(ctx, |c| c.param(&name, &shape, k, s))
}
unsafe extern "C" fn h_shape(ctx: *mut c_void, h: Handle, out: *mut usize, cap: usize) -> usize {
    // SAFETY: see `call`; `out` has `cap` writable values.
    let Some(c) = (unsafe { (ctx as *mut Ctx<'_>).as_mut() }) else { return 0 };
    match c.get(h) {
        Ok(v) if v.shape.len() <= cap && !out.is_null() => {
            unsafe { std::ptr::copy_nonoverlapping(v.shape.as_ptr(), out, v.shape.len()) };
            v.shape.len()
        }
        Ok(v) => {
            c.error = format!("shape buffer of {cap} too small for {:?}", v.shape);
            0
        }
        Err(e) => {
            c.error = e;
            0
        }
    }
}
unsafe extern "C" fn h_unary(ctx: *mut c_void, op: u32, a: Handle) -> Handle {
    call(ctx, |c| c.unary(op, a))
}
unsafe extern "C" fn h_binary(ctx: *mut c_void, op: u32, a: Handle, b: Handle) -> Handle {
    call(ctx, |c| c.binary(op, a, b))
}
unsafe extern "C" fn h_scalar(ctx: *mut c_void, op: u32, a: Handle, v: f32) -> Handle {
    call(ctx, |c| c.scalar(op, a, v))
}
unsafe extern "C" fn h_along(ctx: *mut c_void, op: u32, a: Handle, dim: usize) -> Handle {
    call(ctx, |c| c.along(op, a, dim))
}
unsafe extern "C" fn h_reshape(ctx: *mut c_void, a: Handle, shape: *const usize, ndim: usize) -> Handle {
    // SAFETY: `shape` has `ndim` values for the call.
    let shape = unsafe { slice_of(shape, ndim).to_vec() };
    call(ctx, |c| c.reshape(a, &shape))
}
unsafe extern "C" fn h_transpose(ctx: *mut c_void, a: Handle, d0: usize, d1: usize) -> Handle {
    call(ctx, |c| c.transpose(a, d0, d1))
}
unsafe extern "C" fn h_slice(ctx: *mut c_void, a: Handle, dim: usize, start: usize, end: usize) -> Handle {
    call(ctx, |c| c.slice(a, dim, start, end))
}
unsafe extern "C" fn h_concat(ctx: *mut c_void, hs: *const Handle, n: usize, dim: usize) -> Handle {
    // SAFETY: `hs` has `n` values for the call.
    let hs = unsafe { slice_of(hs, n).to_vec() };
    call(ctx, |c| c.concat(&hs, dim))
}
unsafe extern "C" fn h_linear(ctx: *mut c_void, x: Handle, w: Handle, b: Handle) -> Handle {
    call(ctx, |c| c.linear(x, w, b))
}
unsafe extern "C" fn h_layer_norm(ctx: *mut c_void, x: Handle, g: Handle, b: Handle, eps: f32) -> Handle {
    call(ctx, |c| c.layer_norm(x, g, b, eps))
}
unsafe extern "C" fn h_conv2d(ctx: *mut c_void, x: Handle, w: Handle, b: Handle, stride: usize, pad: usize) -> Handle {
    call(ctx, |c| c.conv2d(x, w, b, stride, pad))
}

/// A plugin program over the tensor interface.
#[derive(Clone)]
enum Program {
    Encoder(&'static EncoderV1),
    Loss(&'static LossV1),
    /// A WASM encoder, run by `astroclip-wasm-host`; its tensor calls come back over the pipe.
    Wasm(Arc<std::sync::Mutex<crate::wasm_client::WasmTokenizer>>, String),
}

impl Program {
    fn describe(&self) -> String {
        // SAFETY: static strings of the plugin, which is never unloaded.
        unsafe {
            match self {
                Program::Encoder(e) => format!("encoder {}", e.name.to_string_lossy()),
                Program::Loss(l) => format!("loss {}", l.name.to_string_lossy()),
                Program::Wasm(_, name) => format!("encoder {name} (wasm)"),
            }
        }
    }
}

/// Calls the plugin's program on `inputs` with a fresh context; checks the output shape and
/// returns it (rank-4 storage) with the context's parameters.
fn run(
    program: Program,
    spec: (&str, &str),
    expected: &[(String, Vec<usize>)],
    params: Params,
    inputs: Vec<Tensor<2>>,
    arg: usize,
    out_shape: &[usize],
) -> Result<(Tensor<4>, Params), TensorError> {
    let err_of = |detail: String| TensorError::Plugin {
        id: spec.0.to_string(),
        version: spec.1.to_string(),
        component: program.describe(),
        detail,
    };
    let device = inputs[0].device();
    let mut ctx = Ctx { device, values: Vec::new(), params, expected, next_param: 0, error: String::new() };
    let handles: Vec<Handle> = inputs
        .into_iter()
        .map(|t| {
            let [n, d] = t.dims();
            ctx.push(t.reshape([1, 1, n, d]), vec![n, d])
        })
        .collect();
    let api = TensorApiV1 {
        ctx: &mut ctx as *mut Ctx<'_> as *mut c_void,
        last_error: h_last_error,
        param: h_param,
        shape: h_shape,
        unary: h_unary,
        binary: h_binary,
        scalar: h_scalar,
        along: h_along,
        reshape: h_reshape,
        transpose: h_transpose,
        slice: h_slice,
        concat: h_concat,
        linear: h_linear,
        layer_norm: h_layer_norm,
        conv2d: h_conv2d,
    };
    let mut msg = vec![0u8; 2048];
    let mut err = ErrBuf { msg: msg.as_mut_ptr(), cap: msg.len(), len: 0, code: 0 };
    let mut out: Handle = 0;
    // SAFETY: the table and the context outlive the call; `out` and `err` are writable; the
    // plugin's trampoline catches its own panics (interface contract, checked at load).
    let code = match &program {
        // SAFETY: see above.
        Program::Encoder(e) => unsafe { (e.forward)(&api, handles[0], arg, &mut out, &mut err) },
        // SAFETY: see above.
        Program::Loss(l) => unsafe { (l.loss)(&api, handles[0], handles[1], &mut out, &mut err) },
        Program::Wasm(client, _) => {
            let mut client = client.lock().unwrap_or_else(|p| p.into_inner());
            match client.encode(handles[0], arg, |call| ctx.dispatch(call)) {
                Ok(h) => {
                    out = h;
                    astroclip_plugin_sdk::OK
                }
                Err(e) => {
                    let m = e.to_string();
                    let n = m.len().min(msg.len());
                    msg[..n].copy_from_slice(&m.as_bytes()[..n]);
                    err.len = n;
                    astroclip_plugin_sdk::ERR_INPUT
                }
            }
        }
    };
    if code != astroclip_plugin_sdk::OK {
        let len = err.len.min(msg.len());
        let detail = String::from_utf8_lossy(&msg[..len]).into_owned();
        return Err(err_of(format!("forward failed (code {code}): {detail}")));
    }
    if matches!(ctx.params, Params::Use(_)) && ctx.next_param != expected.len() {
        return Err(err_of(format!(
            "forward used {} of its {} parameters: the program must be the same on every call",
            ctx.next_param,
            expected.len()
        )));
    }
    let v = ctx.get(out).map_err(|e| err_of(format!("forward returned a bad handle: {e}")))?;
    if v.shape != out_shape {
        return Err(err_of(format!("forward returned shape {:?}; expected {out_shape:?}", v.shape)));
    }
    let y = v.t.clone();
    Ok((y, ctx.params))
}

fn unsafe_name(table: &'static EncoderV1) -> String {
    // SAFETY: static string of the plugin, which is never unloaded.
    unsafe { table.name.to_string_lossy() }
}

impl PluginEncoder {
    /// Creates the encoder's parameters by running its forward once on a zero batch of two
    /// `input_len`-long inputs, and checks that it returns `(2, embed_dim)`.
    pub fn init(enc: NativeEncoder, input_len: usize, embed_dim: usize, device: &Device) -> Result<Self, TensorError> {
        let table = enc.table;
        // SAFETY: static strings of the plugin.
        let modality = unsafe { table.modality.to_string_lossy() };
        Self::build(
            Program::Encoder(table),
            enc.plugin_id,
            enc.plugin_version,
            unsafe_name(table),
            modality,
            input_len,
            embed_dim,
            device,
        )
    }

    /// The encoder of a WASM plugin, run by `astroclip-wasm-host` (its tensor-interface calls
    /// are imported host functions, answered by this process over the pipe).
    pub fn init_wasm(
        client: crate::wasm_client::WasmTokenizer,
        modality: &str,
        input_len: usize,
        embed_dim: usize,
        device: &Device,
    ) -> Result<Self, TensorError> {
        let (id, version) = (client.id.clone(), client.version.clone());
        let name = id.clone();
        let program = Program::Wasm(Arc::new(std::sync::Mutex::new(client)), name.clone());
        Self::build(program, &id, &version, name, modality.to_string(), input_len, embed_dim, device)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        program: Program,
        id: &str,
        version: &str,
        name: String,
        modality: String,
        input_len: usize,
        embed_dim: usize,
        device: &Device,
    ) -> Result<Self, TensorError> {
        let probe = Tensor::<2>::zeros([2, input_len], device);
        let (_, params) = run(
            program.clone(),
            (id, version),
            &[],
            Params::Declare(Vec::new()),
            vec![probe],
            embed_dim,
            &[2, embed_dim],
        )?;
        let Params::Declare(declared) = params else { unreachable!("declare mode stays declare") };
        let spec = EncoderSpec {
            plugin_id: id.to_string(),
            plugin_version: version.to_string(),
            name,
            modality,
            embed_dim,
            input_len,
            params: declared.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect(),
            program,
        };
        Ok(Self { params: declared.into_iter().map(|(_, _, t)| Param::from_tensor(t)).collect(), spec: Arc::new(spec) })
    }

    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// Parameter values by name, in declaration order (flat).
    pub fn named_params(&self) -> Vec<(String, Vec<usize>, Tensor<1>)> {
        self.spec.params.iter().zip(&self.params).map(|((n, s), p)| (n.clone(), s.clone(), p.val())).collect()
    }

    /// `(batch, input_len)` → `(batch, embed_dim)`, errors naming the plugin and encoder.
    pub fn try_encode(&self, input: Tensor<2>) -> Result<Tensor<2>, TensorError> {
        let s = &self.spec;
        let [_, d] = input.dims();
        if d != s.input_len {
            return Err(TensorError::Plugin {
                id: s.plugin_id.clone(),
                version: s.plugin_version.clone(),
                component: format!("encoder {}", s.name),
                detail: format!("input has {d} values per object; the encoder was built for {}", s.input_len),
            });
        }
        let params = Params::Use(self.params.iter().map(|p| p.val()).collect());
        let n = input.dims()[0];
        run(
            s.program.clone(),
            (&s.plugin_id, &s.plugin_version),
            &s.params,
            params,
            vec![input],
            s.embed_dim,
            &[n, s.embed_dim],
        )
        .map(|(y, _)| y.reshape([n, s.embed_dim]))
    }
}

impl ModalityEncoder for PluginEncoder {
    fn info(&self) -> ComponentInfo {
        let s = &self.spec;
        ComponentInfo {
            id: format!("{}/{}", s.plugin_id, s.name),
            version: s.plugin_version.clone(),
            kind: ComponentKind::Encoder,
            modality: Some(s.modality.clone()),
        }
    }

    fn embed_dim(&self) -> usize {
        self.spec.embed_dim
    }

    /// Panics with the plugin's message if the program fails after a successful `init`
    /// (the same program on the same shapes; use [`PluginEncoder::try_encode`] to handle it).
    fn encode(&self, input: Tensor<2>) -> Tensor<2> {
        self.try_encode(input).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A contrastive loss defined by a plugin over the tensor interface, as a burn module (its
/// parameters, if it declares any, are trained with the encoders).
#[derive(Module, Debug)]
pub struct PluginLoss {
    params: Vec<Param<Tensor<1>>>,
    #[module(skip)]
    spec: Arc<LossSpec>,
}

#[derive(Clone)]
pub struct LossSpec {
    pub plugin_id: String,
    pub plugin_version: String,
    pub name: String,
    pub params: Vec<(String, Vec<usize>)>,
    table: &'static LossV1,
}

impl std::fmt::Debug for LossSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} loss {}", self.plugin_id, self.plugin_version, self.name)
    }
}

impl PluginLoss {
    /// Declares the loss's parameters by evaluating it once on a small random pair.
    pub fn init(loss: NativeLoss, dim: usize, device: &Device) -> Result<Self, TensorError> {
        let a = Tensor::<2>::random([4, dim], Distribution::Normal(0.0, 1.0), device);
        let b = Tensor::<2>::random([4, dim], Distribution::Normal(0.0, 1.0), device);
        let (_, params) = run(
            Program::Loss(loss.table),
            (loss.plugin_id, loss.plugin_version),
            &[],
            Params::Declare(Vec::new()),
            vec![a, b],
            0,
            &[1],
        )?;
        let Params::Declare(declared) = params else { unreachable!("declare mode stays declare") };
        // SAFETY: static string of the plugin.
        let name = unsafe { loss.table.name.to_string_lossy() };
        let spec = LossSpec {
            plugin_id: loss.plugin_id.to_string(),
            plugin_version: loss.plugin_version.to_string(),
            name,
            params: declared.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect(),
            table: loss.table,
        };
        Ok(Self { params: declared.into_iter().map(|(_, _, t)| Param::from_tensor(t)).collect(), spec: Arc::new(spec) })
    }

    pub fn try_loss(&self, a: Tensor<2>, b: Tensor<2>) -> Result<Tensor<1>, TensorError> {
        let s = &self.spec;
        let params = Params::Use(self.params.iter().map(|p| p.val()).collect());
        run(Program::Loss(s.table), (&s.plugin_id, &s.plugin_version), &s.params, params, vec![a, b], 0, &[1])
            .map(|(y, _)| y.reshape([1]))
    }
}

impl astroclip_plugin_api::ContrastiveLoss for PluginLoss {
    fn info(&self) -> ComponentInfo {
        ComponentInfo {
            id: format!("{}/{}", self.spec.plugin_id, self.spec.name),
            version: self.spec.plugin_version.clone(),
            kind: ComponentKind::Loss,
            modality: None,
        }
    }

    /// Panics with the plugin's message if the program fails after a successful `init`
    /// (use [`PluginLoss::try_loss`] to handle it).
    fn loss(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        self.try_loss(a, b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Plugin losses expose no logit scale; 0 marks "not applicable" in the logs.
    fn logit_scale(&self) -> f32 {
        0.0
    }
}
