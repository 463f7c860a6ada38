//! The astroclip plugin SDK: the C ABI of plugin interface v1 for native plugins, and the
//! [`export_plugin!`] macro that builds it from safe Rust.
//!
//! A native plugin is a `cdylib` exporting three symbols:
//! * `ASTROCLIP_PLUGIN_INTERFACE` — a static, NUL-padded interface version (`"1.0.0"`), read by
//!   the host **before any call** and checked with the caret rule;
//! * `ASTROCLIP_PLUGIN_TOOLCHAIN` — a static fingerprint (rustc version, target, ABI layout),
//!   compared with the host's;
//! * `astroclip_plugin_v1` — returns the [`PluginV1`] table: the plugin's identity and its
//!   data-level components as `extern "C"` function pointers over plain `f32` buffers.
//!
//! No Rust type of the host (burn tensors, modules, allocations) crosses the boundary: buffers
//! are owned by the host and passed as pointer + length with explicit shapes; errors come back
//! as data (a code and a message written into a host buffer); every entry point catches
//! panics inside the plugin. Modelled on the plugin boundaries of Zed's extension host,
//! Extism and nushell.

/// The plugin interface this SDK implements (must equal the host's
/// `astroclip_plugin_api::PLUGIN_INTERFACE_VERSION`).
pub const INTERFACE_VERSION: &str = "1.0.0";

/// The compiler, target and ABI layout this SDK was built with.
pub const TOOLCHAIN: &str = concat!(
    env!("ASTROCLIP_SDK_RUSTC"),
    " / ",
    env!("ASTROCLIP_SDK_TARGET"),
    " / abi v1: Str 16, ErrBuf 32, TokenizerV1 48, PluginV1 48"
);

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
    pub output_len: extern "C" fn(shape: *const usize, ndim: usize) -> usize,
    /// Fills `out[..out_len]` from `input[..input_len]` (row-major, `shape[..ndim]`).
    /// Returns [`OK`], [`ERR_INPUT`] or [`ERR_PANIC`] (message in `err`).
    pub tokenize: extern "C" fn(
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

/// A NUL-padded fixed-size string for the exported version and toolchain symbols.
pub const fn padded<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < b.len() && i < N - 1 {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// What a plugin author implements for a tokenizer: associated functions only, so the SDK can
/// export them without any shared state.
pub trait ArrayTokenizer {
    const NAME: &'static str;
    const MODALITY: &'static str;
    /// Output length for an input shape, or `None` if the shape is not supported.
    fn output_len(shape: &[usize]) -> Option<usize>;
    /// Writes exactly `out.len()` values; `Err` explains a refused input.
    fn tokenize(input: &[f32], shape: &[usize], out: &mut [f32]) -> Result<(), String>;
}

fn write_err(err: *mut ErrBuf, code: i32, msg: &str) -> i32 {
    if err.is_null() {
        return code;
    }
    // SAFETY: the host passes a valid ErrBuf whose `msg` has `cap` writable bytes.
    unsafe {
        let e = &mut *err;
        let n = msg.len().min(e.cap);
        if !e.msg.is_null() {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), e.msg, n);
        }
        e.len = n;
        e.code = code;
    }
    code
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[doc(hidden)]
pub extern "C" fn output_len_trampoline<T: ArrayTokenizer>(shape: *const usize, ndim: usize) -> usize {
    std::panic::catch_unwind(|| {
        if shape.is_null() && ndim > 0 {
            return 0;
        }
        // SAFETY: the host passes `ndim` readable usizes.
        let shape = if ndim == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(shape, ndim) } };
        T::output_len(shape).unwrap_or(0)
    })
    .unwrap_or(0)
}

#[doc(hidden)]
pub extern "C" fn tokenize_trampoline<T: ArrayTokenizer>(
    input: *const f32,
    input_len: usize,
    shape: *const usize,
    ndim: usize,
    out: *mut f32,
    out_len: usize,
    err: *mut ErrBuf,
) -> i32 {
    let result = std::panic::catch_unwind(|| {
        if (input.is_null() && input_len > 0) || (out.is_null() && out_len > 0) || (shape.is_null() && ndim > 0) {
            return Err("null buffer".to_string());
        }
        // SAFETY: the host owns these buffers and passes their exact lengths; they do not
        // overlap (input and shape are read-only, out is exclusively ours for the call).
        let (input, shape, out) = unsafe {
            (
                if input_len == 0 { &[][..] } else { std::slice::from_raw_parts(input, input_len) },
                if ndim == 0 { &[][..] } else { std::slice::from_raw_parts(shape, ndim) },
                if out_len == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(out, out_len) },
            )
        };
        if shape.iter().product::<usize>() != input.len() {
            return Err(format!("input has {} values but shape {shape:?}", input.len()));
        }
        match T::output_len(shape) {
            Some(n) if n == out.len() => T::tokenize(input, shape, out),
            Some(n) => Err(format!("output buffer has {} values; shape {shape:?} gives {n}", out.len())),
            None => Err(format!("unsupported input shape {shape:?}")),
        }
    });
    match result {
        Ok(Ok(())) => OK,
        Ok(Err(msg)) => write_err(err, ERR_INPUT, &msg),
        Err(p) => write_err(err, ERR_PANIC, &format!("panicked: {}", panic_message(p))),
    }
}

/// Builds the [`TokenizerV1`] entry of `T`.
pub const fn tokenizer_v1<T: ArrayTokenizer>() -> TokenizerV1 {
    TokenizerV1 {
        name: Str::from_static(T::NAME),
        modality: Str::from_static(T::MODALITY),
        output_len: output_len_trampoline::<T>,
        tokenize: tokenize_trampoline::<T>,
    }
}

/// Exports a native plugin:
///
/// ```ignore
/// astroclip_plugin_sdk::export_plugin!(id: "band-fluxes", version: "0.1.0", tokenizers: [BandFluxes]);
/// ```
///
/// (`interface:` and `toolchain:` may be given first to build deliberately incompatible test
/// plugins.)
#[macro_export]
macro_rules! export_plugin {
    (id: $id:literal, version: $ver:literal, tokenizers: [$($tok:ty),* $(,)?]) => {
        $crate::export_plugin!(
            interface: $crate::INTERFACE_VERSION, toolchain: $crate::TOOLCHAIN,
            id: $id, version: $ver, tokenizers: [$($tok),*]
        );
    };
    (interface: $iface:expr, toolchain: $tc:expr, id: $id:literal, version: $ver:literal, tokenizers: [$($tok:ty),* $(,)?]) => {
        #[unsafe(no_mangle)]
        pub static ASTROCLIP_PLUGIN_INTERFACE: [u8; 32] = $crate::padded::<32>($iface);
        #[unsafe(no_mangle)]
        pub static ASTROCLIP_PLUGIN_TOOLCHAIN: [u8; 256] = $crate::padded::<256>($tc);
        static __ASTROCLIP_TOKENIZERS: &[$crate::TokenizerV1] = &[$($crate::tokenizer_v1::<$tok>()),*];
        static __ASTROCLIP_PLUGIN: $crate::PluginV1 = $crate::PluginV1 {
            id: $crate::Str::from_static($id),
            version: $crate::Str::from_static($ver),
            tokenizers: __ASTROCLIP_TOKENIZERS.as_ptr(),
            n_tokenizers: __ASTROCLIP_TOKENIZERS.len(),
        };
        #[unsafe(no_mangle)]
        pub extern "C" fn astroclip_plugin_v1() -> *const $crate::PluginV1 {
            &__ASTROCLIP_PLUGIN
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_layout_matches_the_fingerprint() {
        use std::mem::size_of;
        let layout = format!(
            "Str {}, ErrBuf {}, TokenizerV1 {}, PluginV1 {}",
            size_of::<Str>(),
            size_of::<ErrBuf>(),
            size_of::<TokenizerV1>(),
            size_of::<PluginV1>()
        );
        assert!(TOOLCHAIN.ends_with(&layout), "{TOOLCHAIN} vs {layout}");
        assert_eq!(&padded::<8>("1.0.0"), b"1.0.0\0\0\0");
    }
}
