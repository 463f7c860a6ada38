//! The astroclip plugin SDK: the C ABI of plugin interface v1 for native plugins, and the
//! [`export_plugin!`] macro that builds it from safe Rust.
//!
//! A native plugin is a `cdylib` exporting three symbols:
//! * `ASTROCLIP_PLUGIN_INTERFACE` — a static, NUL-padded interface version (`"1.0.0"`), read by
//!   the host **before any call** and checked with the caret rule;
//! * `ASTROCLIP_PLUGIN_TOOLCHAIN` — a static fingerprint (rustc version, target, ABI layout);
//!   the host checks its target (the C ABI of the tables depends on nothing else) and shows the
//!   rest in errors;
//! * `astroclip_plugin_v1` — returns the [`PluginV1`] table: the plugin's identity and its
//!   data-level components as `extern "C"` function pointers over plain `f32` buffers.
//!
//!
//! Each released interface version is frozen in its own module, and every later minor
//! version only adds (new symbols, new tables); the host reads a plugin's tables by the
//! version the plugin declares and converts them to the newest:
//! * [`since_v1_0`] — 1.0.0: tokenizers (`astroclip_plugin_v1`);
//! * [`since_v1_1`] — 1.1.0: encoders over the host-owned [tensor interface](tensor)
//!   (`astroclip_plugin_tensor_v1` → a table of encoders);
//! * [`since_v1_2`] — 1.2.0: contrastive losses in the tensor table (which grew from 16 to 32
//!   bytes) and probes (`astroclip_plugin_probes_v1`).
//!
//! No Rust type of the host (burn tensors, modules, allocations) crosses the boundary: buffers
//! are owned by the host and passed as pointer + length with explicit shapes; errors come back
//! as data (a code and a message written into a host buffer); every entry point catches
//! panics inside the plugin. Modelled on the plugin boundaries of Zed's extension host,
//! Extism and nushell.

/// The plugin interface this SDK implements: the newest frozen version (the host's
/// `astroclip_plugin_api::PLUGIN_INTERFACE_VERSION`; it runs every 1.x plugin up to it).
pub const INTERFACE_VERSION: &str = since_v1_2::VERSION;

pub mod since_v1_0;
pub mod since_v1_1;
pub mod since_v1_2;
pub mod tensor;

pub use since_v1_0::{ERR_INPUT, ERR_PANIC, ErrBuf, OK, PluginV1, Str, TokenizerV1};
pub use since_v1_2::{ProbePluginV1, ProbeV1};

/// `MAJOR.MINOR.PATCH` with an optional `-pre` / `+build` suffix (ignored for compatibility).
pub fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(a)?, num(b)?, num(c)?))
}

/// Caret rule (Cargo's `^`): a plugin built against `plugin` runs on a host providing `host`
/// when the left-most non-zero component matches and the host is not older than the plugin.
pub fn api_compatible(host: &str, plugin: &str) -> bool {
    let (Some(h), Some(p)) = (parse_semver(host), parse_semver(plugin)) else { return false };
    let same_line = match p {
        (0, 0, _) => h.0 == 0 && h.1 == 0 && h.2 == p.2,
        (0, minor, _) => h.0 == 0 && h.1 == minor,
        (major, _, _) => h.0 == major,
    };
    same_line && h >= p
}

/// The compiler, target and ABI layout this SDK was built with.
pub const TOOLCHAIN: &str = concat!(
    env!("ASTROCLIP_SDK_RUSTC"),
    " / ",
    env!("ASTROCLIP_SDK_TARGET"),
    " / abi v1.2: Str 16, ErrBuf 32, TokenizerV1 48, PluginV1 48, TensorApiV1 120, EncoderV1 40, LossV1 24, TensorPluginV1 32, ProbeV1 48"
);

/// What a plugin author implements for a probe.
pub trait ArrayProbe: Sized {
    const NAME: &'static str;
    fn new() -> Self;
    /// Fits on `x` (`rows × cols`, row-major) and targets `y` (`rows`).
    fn fit(&mut self, x: &[f32], rows: usize, cols: usize, y: &[f32]) -> Result<(), String>;
    /// Writes one prediction per row of `x` into `out`.
    fn predict(&self, x: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Result<(), String>;
}

#[doc(hidden)]
pub unsafe extern "C" fn probe_create<P: ArrayProbe>() -> *mut std::ffi::c_void {
    std::panic::catch_unwind(|| Box::into_raw(Box::new(P::new())) as *mut std::ffi::c_void)
        .unwrap_or(std::ptr::null_mut())
}

#[doc(hidden)]
pub unsafe extern "C" fn probe_destroy<P: ArrayProbe>(state: *mut std::ffi::c_void) {
    if !state.is_null() {
        // SAFETY: `state` came from `probe_create::<P>` and is destroyed once (host contract).
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(state as *mut P) }));
    }
}

/// # Safety
/// `state` from `create`; `x`/`y` with `rows·cols`/`rows` values; `err` valid (interface 1.1).
#[doc(hidden)]
pub unsafe extern "C" fn probe_fit<P: ArrayProbe>(
    state: *mut std::ffi::c_void,
    x: *const f32,
    rows: usize,
    cols: usize,
    y: *const f32,
    err: *mut ErrBuf,
) -> i32 {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if state.is_null() || (x.is_null() && rows * cols > 0) || (y.is_null() && rows > 0) {
            return Err("null buffer or state".to_string());
        }
        // SAFETY: host-owned buffers with these exact lengths; `state` is ours (see above).
        let (p, x, y) = unsafe {
            (
                &mut *(state as *mut P),
                if rows * cols == 0 { &[][..] } else { std::slice::from_raw_parts(x, rows * cols) },
                if rows == 0 { &[][..] } else { std::slice::from_raw_parts(y, rows) },
            )
        };
        p.fit(x, rows, cols, y)
    }));
    match result {
        Ok(Ok(())) => OK,
        Ok(Err(msg)) => write_err(err, ERR_INPUT, &msg),
        Err(p) => write_err(err, ERR_PANIC, &format!("panicked: {}", panic_message(p))),
    }
}

/// # Safety
/// As [`probe_fit`], with `out` writable for `rows` values.
#[doc(hidden)]
pub unsafe extern "C" fn probe_predict<P: ArrayProbe>(
    state: *mut std::ffi::c_void,
    x: *const f32,
    rows: usize,
    cols: usize,
    out: *mut f32,
    err: *mut ErrBuf,
) -> i32 {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if state.is_null() || (x.is_null() && rows * cols > 0) || (out.is_null() && rows > 0) {
            return Err("null buffer or state".to_string());
        }
        // SAFETY: as in `probe_fit`; `out` is exclusively ours for the call.
        let (p, x, out) = unsafe {
            (
                &*(state as *const P),
                if rows * cols == 0 { &[][..] } else { std::slice::from_raw_parts(x, rows * cols) },
                if rows == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(out, rows) },
            )
        };
        p.predict(x, rows, cols, out)
    }));
    match result {
        Ok(Ok(())) => OK,
        Ok(Err(msg)) => write_err(err, ERR_INPUT, &msg),
        Err(p) => write_err(err, ERR_PANIC, &format!("panicked: {}", panic_message(p))),
    }
}

/// Builds the [`ProbeV1`] entry of `P`.
pub const fn probe_v1<P: ArrayProbe>() -> ProbeV1 {
    ProbeV1 {
        name: Str::from_static(P::NAME),
        create: probe_create::<P>,
        fit: probe_fit::<P>,
        predict: probe_predict::<P>,
        destroy: probe_destroy::<P>,
    }
}

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

pub(crate) fn write_err(err: *mut ErrBuf, code: i32, msg: &str) -> i32 {
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

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// # Safety
/// `shape` must point at `ndim` readable values (the host's contract of interface v1).
#[doc(hidden)]
pub unsafe extern "C" fn output_len_trampoline<T: ArrayTokenizer>(shape: *const usize, ndim: usize) -> usize {
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

/// # Safety
/// `input`, `shape` and `out` must point at `input_len`, `ndim` and `out_len` values, `out`
/// writable and not overlapping the others, `err` at a valid [`ErrBuf`] (interface v1).
#[doc(hidden)]
pub unsafe extern "C" fn tokenize_trampoline<T: ArrayTokenizer>(
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
    (
        id: $id:literal, version: $ver:literal, tokenizers: [$($tok:ty),* $(,)?]
        $(, encoders: [$($enc:ty),* $(,)?])?
        $(, losses: [$($loss:ty),* $(,)?])?
        $(, probes: [$($probe:ty),* $(,)?])?
        $(,)?
    ) => {
        $crate::export_plugin!(
            interface: $crate::INTERFACE_VERSION, toolchain: $crate::TOOLCHAIN,
            id: $id, version: $ver, tokenizers: [$($tok),*]
            $(, encoders: [$($enc),*])? $(, losses: [$($loss),*])? $(, probes: [$($probe),*])?
        );
    };
    (
        interface: $iface:expr, toolchain: $tc:expr,
        id: $id:literal, version: $ver:literal, tokenizers: [$($tok:ty),* $(,)?]
        $(, encoders: [$($enc:ty),* $(,)?])?
        $(, losses: [$($loss:ty),* $(,)?])?
        $(, probes: [$($probe:ty),* $(,)?])?
        $(,)?
    ) => {
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
        static __ASTROCLIP_ENCODERS: &[$crate::tensor::EncoderV1] = &[$($($crate::tensor::encoder_v1::<$enc>()),*)?];
        static __ASTROCLIP_LOSSES: &[$crate::tensor::LossV1] = &[$($($crate::tensor::loss_v1::<$loss>()),*)?];
        static __ASTROCLIP_TENSOR: $crate::tensor::TensorPluginV1 = $crate::tensor::TensorPluginV1 {
            encoders: __ASTROCLIP_ENCODERS.as_ptr(),
            n_encoders: __ASTROCLIP_ENCODERS.len(),
            losses: __ASTROCLIP_LOSSES.as_ptr(),
            n_losses: __ASTROCLIP_LOSSES.len(),
        };
        static __ASTROCLIP_PROBES: &[$crate::ProbeV1] = &[$($($crate::probe_v1::<$probe>()),*)?];
        static __ASTROCLIP_PROBE_TABLE: $crate::ProbePluginV1 = $crate::ProbePluginV1 {
            probes: __ASTROCLIP_PROBES.as_ptr(),
            n_probes: __ASTROCLIP_PROBES.len(),
        };
        #[unsafe(no_mangle)]
        pub extern "C" fn astroclip_plugin_v1() -> *const $crate::PluginV1 {
            &__ASTROCLIP_PLUGIN
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn astroclip_plugin_tensor_v1() -> *const $crate::tensor::TensorPluginV1 {
            &__ASTROCLIP_TENSOR
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn astroclip_plugin_probes_v1() -> *const $crate::ProbePluginV1 {
            &__ASTROCLIP_PROBE_TABLE
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
            "Str {}, ErrBuf {}, TokenizerV1 {}, PluginV1 {}, TensorApiV1 {}, EncoderV1 {}, LossV1 {}, TensorPluginV1 {}, ProbeV1 {}",
            size_of::<Str>(),
            size_of::<ErrBuf>(),
            size_of::<TokenizerV1>(),
            size_of::<PluginV1>(),
            size_of::<tensor::TensorApiV1>(),
            size_of::<tensor::EncoderV1>(),
            size_of::<tensor::LossV1>(),
            size_of::<tensor::TensorPluginV1>(),
            size_of::<ProbeV1>()
        );
        assert!(TOOLCHAIN.ends_with(&layout), "{TOOLCHAIN} vs {layout}");
        assert_eq!(&padded::<8>("1.0.0"), b"1.0.0\0\0\0");
    }
}
