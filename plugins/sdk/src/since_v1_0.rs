//! Plugin interface **1.0.0** — frozen. Released with the native carrier: a plugin exports
//! `ASTROCLIP_PLUGIN_INTERFACE` (NUL-padded `[u8; 32]`), `ASTROCLIP_PLUGIN_TOOLCHAIN`
//! (`[u8; 256]`, `"<rustc> / <target> / abi …"`) and `astroclip_plugin_v1() -> *const PluginV1`
//! (tokenizers over plain `f32` buffers).
//!
//! Nothing in this file may change: a later interface adds new tables or symbols in its own
//! `since_vX_Y` module and bumps the minor version, so a plugin built against 1.0 keeps loading
//! (plugins/examples/legacy-v1-0, built with the 1.0 SDK kept in plugins/sdk/frozen/v1_0).

/// The version this module freezes.
pub const VERSION: &str = "1.0.0";

/// Return codes of plugin calls.
pub const OK: i32 = 0;
/// The plugin refused the input (shape, values); the message says why.
pub const ERR_INPUT: i32 = 1;
/// The plugin panicked; the panic was caught inside the plugin.
pub const ERR_PANIC: i32 = 2;

/// A UTF-8 string owned by the plugin for the life of the process (static data).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub const fn from_static(s: &'static str) -> Self {
        Self { ptr: s.as_ptr(), len: s.len() }
    }

    /// # Safety
    /// `ptr`/`len` must describe live bytes (the plugin's static data, never unloaded).
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.ptr.is_null() {
            return String::new();
        }
        // SAFETY: the caller guarantees the bytes are live and `len` long.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// A host-owned buffer the plugin writes an error message into.
#[repr(C)]
#[derive(Debug)]
pub struct ErrBuf {
    pub msg: *mut u8,
    pub cap: usize,
    pub len: usize,
    pub code: i32,
}

/// One tokenizer: raw observation array → fixed-length model input.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TokenizerV1 {
    pub name: Str,
    pub modality: Str,
    /// Output length for an input of this shape; 0 when the shape is not supported.
    pub output_len: unsafe extern "C" fn(shape: *const usize, ndim: usize) -> usize,
    /// Fills `out[..out_len]` from `input[..input_len]` (row-major, `shape[..ndim]`).
    /// Returns [`OK`], [`ERR_INPUT`] or [`ERR_PANIC`] (message in `err`).
    pub tokenize: unsafe extern "C" fn(
        input: *const f32,
        input_len: usize,
        shape: *const usize,
        ndim: usize,
        out: *mut f32,
        out_len: usize,
        err: *mut ErrBuf,
    ) -> i32,
}

/// The table `astroclip_plugin_v1` returns.
#[repr(C)]
pub struct PluginV1 {
    pub id: Str,
    pub version: Str,
    pub tokenizers: *const TokenizerV1,
    pub n_tokenizers: usize,
}

// SAFETY: the tables point only at the plugin's immutable static data.
unsafe impl Sync for PluginV1 {}
unsafe impl Sync for TokenizerV1 {}

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Str>() == 16 && size_of::<ErrBuf>() == 32);
    assert!(size_of::<TokenizerV1>() == 48 && size_of::<PluginV1>() == 48);
};
