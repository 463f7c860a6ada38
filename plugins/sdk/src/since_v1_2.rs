//! Plugin interface **1.2.0** — frozen. Adds contrastive losses to the tensor table (which
//! grows from 16 to 32 bytes: `astroclip_plugin_tensor_v1` now returns [`TensorPluginV1`]) and
//! probes over the array interface (`astroclip_plugin_probes_v1() -> *const ProbePluginV1`).
//!
//! (SDK builds before interface versions were frozen per module declared "1.1.0" while already
//! returning this 32-byte table; the host reads such a plugin's 1.1 prefix — its encoders — and
//! its probes symbol, which is self-describing. Rebuild it to expose its losses.)
//!
//! Nothing in this file may change (see [`crate::since_v1_0`]).

use crate::since_v1_1::{EncoderV1, TensorApiV1};
use crate::tensor::Handle;
use crate::{ErrBuf, Str};

/// The version this module freezes.
pub const VERSION: &str = "1.2.0";

/// One contrastive loss of a plugin: `loss` maps two paired batches `(batch, d)` (row i of
/// `a` paired with row i of `b`) to a scalar of shape `[1]`, through `api`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LossV1 {
    pub name: Str,
    pub loss:
        unsafe extern "C" fn(api: *const TensorApiV1, a: Handle, b: Handle, out: *mut Handle, err: *mut ErrBuf) -> i32,
}

/// The table `astroclip_plugin_tensor_v1` returns at interface 1.2: encoders and losses.
#[repr(C)]
pub struct TensorPluginV1 {
    pub encoders: *const EncoderV1,
    pub n_encoders: usize,
    pub losses: *const LossV1,
    pub n_losses: usize,
}

// SAFETY: the tables point only at the plugin's immutable static data.
unsafe impl Sync for LossV1 {}
unsafe impl Sync for TensorPluginV1 {}

/// One probe (interface ≥ 1.2): embeddings `(rows, cols)` → one prediction per row. Its
/// fitted state lives in the plugin behind an opaque pointer the host never dereferences;
/// `destroy` frees it (the host never frees plugin memory itself).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProbeV1 {
    pub name: Str,
    /// A fresh, unfitted probe; null on failure.
    pub create: unsafe extern "C" fn() -> *mut std::ffi::c_void,
    pub fit: unsafe extern "C" fn(
        state: *mut std::ffi::c_void,
        x: *const f32,
        rows: usize,
        cols: usize,
        y: *const f32,
        err: *mut ErrBuf,
    ) -> i32,
    pub predict: unsafe extern "C" fn(
        state: *mut std::ffi::c_void,
        x: *const f32,
        rows: usize,
        cols: usize,
        out: *mut f32,
        err: *mut ErrBuf,
    ) -> i32,
    pub destroy: unsafe extern "C" fn(state: *mut std::ffi::c_void),
}

/// The table `astroclip_plugin_probes_v1` returns (interface ≥ 1.2).
#[repr(C)]
pub struct ProbePluginV1 {
    pub probes: *const ProbeV1,
    pub n_probes: usize,
}

// SAFETY: the tables point only at the plugin's immutable static data.
unsafe impl Sync for ProbeV1 {}
unsafe impl Sync for ProbePluginV1 {}

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<LossV1>() == 24 && size_of::<TensorPluginV1>() == 32 && size_of::<ProbeV1>() == 48);
};
