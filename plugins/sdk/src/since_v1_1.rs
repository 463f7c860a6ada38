//! Plugin interface **1.1.0** — frozen. Adds the tensor interface: a plugin may export
//! `astroclip_plugin_tensor_v1() -> *const TensorPluginV1`, a table of encoders written as
//! programs over host-owned tensors ([`TensorApiV1`]; op codes in [`crate::tensor`]).
//!
//! Nothing in this file may change (see [`crate::since_v1_0`]).

use std::ffi::c_void;

use crate::tensor::Handle;
use crate::{ErrBuf, Str};

/// The version this module freezes.
pub const VERSION: &str = "1.1.0";

/// The functions the host provides. Every pointer argument is read only for the duration of
/// the call; `ctx` is the host's opaque context and must be passed back unchanged.
#[repr(C)]
pub struct TensorApiV1 {
    pub ctx: *mut c_void,
    /// Copies the last error message into `buf[..cap]`, returns its full length.
    pub last_error: unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, cap: usize) -> usize,
    /// Declares (first forward) or fetches (later forwards) the next parameter.
    pub param: unsafe extern "C" fn(
        ctx: *mut c_void,
        name: Str,
        shape: *const usize,
        ndim: usize,
        init: u32,
        scale: f32,
    ) -> Handle,
    /// Writes the shape of `h` into `out[..cap]`, returns the number of dimensions (0 on error).
    pub shape: unsafe extern "C" fn(ctx: *mut c_void, h: Handle, out: *mut usize, cap: usize) -> usize,
    pub unary: unsafe extern "C" fn(ctx: *mut c_void, op: u32, a: Handle) -> Handle,
    pub binary: unsafe extern "C" fn(ctx: *mut c_void, op: u32, a: Handle, b: Handle) -> Handle,
    pub scalar: unsafe extern "C" fn(ctx: *mut c_void, op: u32, a: Handle, value: f32) -> Handle,
    pub along: unsafe extern "C" fn(ctx: *mut c_void, op: u32, a: Handle, dim: usize) -> Handle,
    pub reshape: unsafe extern "C" fn(ctx: *mut c_void, a: Handle, shape: *const usize, ndim: usize) -> Handle,
    pub transpose: unsafe extern "C" fn(ctx: *mut c_void, a: Handle, d0: usize, d1: usize) -> Handle,
    /// `a[.., start..end, ..]` along `dim`.
    pub slice: unsafe extern "C" fn(ctx: *mut c_void, a: Handle, dim: usize, start: usize, end: usize) -> Handle,
    pub concat: unsafe extern "C" fn(ctx: *mut c_void, hs: *const Handle, n: usize, dim: usize) -> Handle,
    /// `x @ w + b` over the last dimension of `x`; `w` is `(in, out)`, `b` is `(out,)` or 0.
    pub linear: unsafe extern "C" fn(ctx: *mut c_void, x: Handle, w: Handle, b: Handle) -> Handle,
    /// LayerNorm over the last dimension (biased variance, as PyTorch), `gamma`/`beta` `(d,)`.
    pub layer_norm: unsafe extern "C" fn(ctx: *mut c_void, x: Handle, gamma: Handle, beta: Handle, eps: f32) -> Handle,
    /// 2-D convolution, `x` `(n, c_in, h, w)`, `w` `(c_out, c_in, k, k)`, `b` `(c_out,)` or 0.
    pub conv2d: unsafe extern "C" fn(
        ctx: *mut c_void,
        x: Handle,
        w: Handle,
        b: Handle,
        stride: usize,
        padding: usize,
    ) -> Handle,
}

/// One encoder of a plugin: `forward` maps the input batch `(batch, input_len)` to
/// `(batch, embed_dim)` through `api`. Returns [`crate::OK`] with the result in `*out`, or an
/// error code with the message in `err`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EncoderV1 {
    pub name: Str,
    pub modality: Str,
    pub forward: unsafe extern "C" fn(
        api: *const TensorApiV1,
        input: Handle,
        embed_dim: usize,
        out: *mut Handle,
        err: *mut ErrBuf,
    ) -> i32,
}

/// The table `astroclip_plugin_tensor_v1` returns at interface 1.1: encoders only.
#[repr(C)]
pub struct TensorPluginV1 {
    pub encoders: *const EncoderV1,
    pub n_encoders: usize,
}

// SAFETY: the tables point only at the plugin's immutable static data.
unsafe impl Sync for EncoderV1 {}
unsafe impl Sync for TensorPluginV1 {}

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<TensorApiV1>() == 120 && size_of::<EncoderV1>() == 40 && size_of::<TensorPluginV1>() == 16);
};
