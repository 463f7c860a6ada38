//! The native carrier: a plugin `cdylib` loaded with libloading.
//!
//! Load order (nothing of the plugin runs before its version is known to be compatible):
//! 1. the manifest checks of [`PluginDir::verify`] (interface version, entry SHA-256);
//! 2. `dlopen` — which runs no plugin code for a Rust cdylib without constructors;
//! 3. read the static `ASTROCLIP_PLUGIN_INTERFACE` → caret rule vs the host, and equality
//!    with the manifest's `api_version`;
//! 4. read the static `ASTROCLIP_PLUGIN_TOOLCHAIN` → must equal the host SDK's fingerprint;
//! 5. only then call `astroclip_plugin_v1` for the component table.
//!
//! Libraries are never unloaded (unloading a Rust cdylib with thread-local destructors can
//! crash the host): the handle is leaked for the life of the process.
#![allow(unsafe_code)]

use astroclip_plugin_sdk::{
    ErrBuf, INTERFACE_VERSION as PLUGIN_INTERFACE_VERSION, PluginV1, ProbePluginV1, ProbeV1, TOOLCHAIN, TokenizerV1,
    api_compatible, parse_semver,
    tensor::{EncoderV1, LossV1, TensorPluginV1},
};

use crate::{Carrier, PluginDir, PluginError};

/// A loaded native plugin.
pub struct NativePlugin {
    pub id: String,
    pub version: String,
    table: &'static PluginV1,
    /// Encoders over the host tensor interface (interface ≥ 1.1 only).
    tensor: Option<&'static TensorPluginV1>,
    /// Probes over the array interface (interface ≥ 1.1 only).
    probes: Option<&'static ProbePluginV1>,
}

/// One probe of a native plugin.
#[derive(Clone, Copy)]
pub struct NativeProbe {
    pub plugin_id: &'static str,
    pub plugin_version: &'static str,
    pub table: &'static ProbeV1,
}

/// One contrastive loss of a native plugin: a program over the host's tensor interface.
#[derive(Clone, Copy)]
pub struct NativeLoss {
    pub plugin_id: &'static str,
    pub plugin_version: &'static str,
    pub table: &'static LossV1,
}

/// One encoder of a native plugin: a program over the host's tensor interface.
#[derive(Clone, Copy)]
pub struct NativeEncoder {
    pub plugin_id: &'static str,
    pub plugin_version: &'static str,
    pub table: &'static EncoderV1,
}

/// One tokenizer of a native plugin, callable with host buffers.
#[derive(Clone, Copy)]
pub struct NativeTokenizer {
    table: &'static TokenizerV1,
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl NativePlugin {
    pub fn load(dir: &PluginDir) -> Result<Self, PluginError> {
        if dir.manifest.entry.carrier != Carrier::Native {
            return Err(dir.invalid("entry.carrier is not `native`".into()));
        }
        dir.verify()?;
        let path = dir.entry_path();
        // SAFETY: loading runs the library's initialisers; the file is the one the manifest
        // pins by SHA-256 (checked just above), installed by the user as a plugin.
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| dir.invalid(format!("cannot load {}: {e}", path.display())))?;
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        let read_static = |name: &[u8]| -> Result<String, PluginError> {
            // SAFETY: the symbols are `[u8; N]` statics exported by the SDK macro; we read
            // them as byte arrays of the SDK's sizes only.
            unsafe {
                let n = if name.starts_with(b"ASTROCLIP_PLUGIN_INTERFACE") { 32 } else { 256 };
                let sym: libloading::Symbol<'_, *const u8> = lib.get(name).map_err(|_| {
                    dir.invalid(format!(
                        "{} exports no {} symbol: not an astroclip plugin, or built without the SDK's export_plugin!",
                        path.display(),
                        String::from_utf8_lossy(&name[..name.len() - 1])
                    ))
                })?;
                Ok(cstr(std::slice::from_raw_parts(*sym, n)))
            }
        };
        let iface = read_static(b"ASTROCLIP_PLUGIN_INTERFACE\0")?;
        if !api_compatible(PLUGIN_INTERFACE_VERSION, &iface) {
            return Err(dir.invalid(format!(
                "the library was built for plugin interface {iface}, which this host (interface \
                 {PLUGIN_INTERFACE_VERSION}) cannot run; rebuild it against astroclip-plugin-sdk {PLUGIN_INTERFACE_VERSION}"
            )));
        }
        if iface != dir.manifest.plugin.api_version {
            return Err(dir.invalid(format!(
                "the library embeds interface {iface} but plugin.toml declares api_version {}",
                dir.manifest.plugin.api_version
            )));
        }
        let toolchain = read_static(b"ASTROCLIP_PLUGIN_TOOLCHAIN\0")?;
        if toolchain != TOOLCHAIN {
            return Err(dir.invalid(format!(
                "toolchain/ABI fingerprint mismatch: the plugin was built with `{toolchain}`, the host with \
                 `{TOOLCHAIN}`; rebuild the plugin with the host's toolchain"
            )));
        }
        // SAFETY: signature fixed by interface v1 (checked above); the returned table points
        // at the plugin's static data, alive for the process since the library is never unloaded.
        let table: &'static PluginV1 = unsafe {
            let entry: libloading::Symbol<'_, extern "C" fn() -> *const PluginV1> =
                lib.get(b"astroclip_plugin_v1\0")
                    .map_err(|_| dir.invalid("exports no astroclip_plugin_v1 entry point".into()))?;
            let p = entry();
            p.as_ref().ok_or_else(|| dir.invalid("astroclip_plugin_v1 returned null".into()))?
        };
        // SAFETY: the strings are the plugin's static data.
        let (id, version) = unsafe { (table.id.to_string_lossy(), table.version.to_string_lossy()) };
        if id != dir.id() || version != dir.version() {
            return Err(dir.invalid(format!(
                "the library says it is {id} {version}; plugin.toml says {} {}",
                dir.id(),
                dir.version()
            )));
        }
        let v11 = parse_semver(&iface).is_some_and(|v| v >= (1, 1, 0));
        let probes = if v11 {
            // SAFETY: interface ≥ 1.1 defines this symbol's signature; the table is static data.
            unsafe {
                match lib.get::<extern "C" fn() -> *const ProbePluginV1>(b"astroclip_plugin_probes_v1\0") {
                    Ok(f) => f().as_ref(),
                    Err(_) => None,
                }
            }
        } else {
            None
        };
        let tensor = if v11 {
            // SAFETY: interface ≥ 1.1 defines this symbol's signature; the table is static data.
            unsafe {
                match lib.get::<extern "C" fn() -> *const TensorPluginV1>(b"astroclip_plugin_tensor_v1\0") {
                    Ok(f) => f().as_ref(),
                    Err(_) => None,
                }
            }
        } else {
            None
        };
        Ok(Self { id, version, table, tensor, probes })
    }

    pub fn tokenizers(&self) -> Vec<(String, String, NativeTokenizer)> {
        let n = self.table.n_tokenizers;
        if n == 0 || self.table.tokenizers.is_null() {
            return Vec::new();
        }
        // SAFETY: `tokenizers` points at `n_tokenizers` static entries of the plugin.
        let all: &'static [TokenizerV1] = unsafe { std::slice::from_raw_parts(self.table.tokenizers, n) };
        all.iter()
            .map(|t| {
                // SAFETY: static strings of the plugin.
                let (name, modality) = unsafe { (t.name.to_string_lossy(), t.modality.to_string_lossy()) };
                (name, modality, NativeTokenizer { table: t })
            })
            .collect()
    }

    /// The plugin's encoders: `(name, modality, encoder)`.
    pub fn encoders(&self) -> Vec<(String, String, NativeEncoder)> {
        let Some(t) = self.tensor else { return Vec::new() };
        if t.n_encoders == 0 || t.encoders.is_null() {
            return Vec::new();
        }
        // Leaked once per call site; plugins are never unloaded and ids are tiny.
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        // SAFETY: `encoders` points at `n_encoders` static entries of the plugin.
        let all: &'static [EncoderV1] = unsafe { std::slice::from_raw_parts(t.encoders, t.n_encoders) };
        all.iter()
            .map(|e| {
                // SAFETY: static strings of the plugin.
                let (name, modality) = unsafe { (e.name.to_string_lossy(), e.modality.to_string_lossy()) };
                (name, modality, NativeEncoder { plugin_id: id, plugin_version: version, table: e })
            })
            .collect()
    }

    /// The plugin's probes: `(name, probe)`.
    pub fn probes(&self) -> Vec<(String, NativeProbe)> {
        let Some(t) = self.probes else { return Vec::new() };
        if t.n_probes == 0 || t.probes.is_null() {
            return Vec::new();
        }
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        // SAFETY: `probes` points at `n_probes` static entries of the plugin.
        let all: &'static [ProbeV1] = unsafe { std::slice::from_raw_parts(t.probes, t.n_probes) };
        all.iter()
            .map(|p| {
                // SAFETY: static string of the plugin.
                let name = unsafe { p.name.to_string_lossy() };
                (name, NativeProbe { plugin_id: id, plugin_version: version, table: p })
            })
            .collect()
    }

    /// The plugin's contrastive losses: `(name, loss)`.
    pub fn losses(&self) -> Vec<(String, NativeLoss)> {
        let Some(t) = self.tensor else { return Vec::new() };
        if t.n_losses == 0 || t.losses.is_null() {
            return Vec::new();
        }
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        // SAFETY: `losses` points at `n_losses` static entries of the plugin.
        let all: &'static [LossV1] = unsafe { std::slice::from_raw_parts(t.losses, t.n_losses) };
        all.iter()
            .map(|l| {
                // SAFETY: static string of the plugin.
                let name = unsafe { l.name.to_string_lossy() };
                (name, NativeLoss { plugin_id: id, plugin_version: version, table: l })
            })
            .collect()
    }

    pub fn loss(&self, name: &str) -> Result<NativeLoss, PluginError> {
        self.losses().into_iter().find(|(n, _)| n == name).map(|(_, l)| l).ok_or_else(|| {
            let have: Vec<String> = self.losses().into_iter().map(|(n, _)| n).collect();
            PluginError::Call {
                id: self.id.clone(),
                version: self.version.clone(),
                call: format!("loss {name:?}"),
                detail: format!(
                    "no such loss (it has: {})",
                    if have.is_empty() { "none".into() } else { have.join(", ") }
                ),
            }
        })
    }

    pub fn encoder(&self, name: &str) -> Result<NativeEncoder, PluginError> {
        self.encoders().into_iter().find(|(n, _, _)| n == name).map(|(_, _, e)| e).ok_or_else(|| {
            let have: Vec<String> = self.encoders().into_iter().map(|(n, _, _)| n).collect();
            PluginError::Call {
                id: self.id.clone(),
                version: self.version.clone(),
                call: format!("encoder {name:?}"),
                detail: format!(
                    "no such encoder (it has: {})",
                    if have.is_empty() { "none".into() } else { have.join(", ") }
                ),
            }
        })
    }

    pub fn tokenizer(&self, name: &str) -> Result<NativeTokenizer, PluginError> {
        self.tokenizers().into_iter().find(|(n, _, _)| n == name).map(|(_, _, t)| t).ok_or_else(|| {
            let have: Vec<String> = self.tokenizers().into_iter().map(|(n, _, _)| n).collect();
            PluginError::Call {
                id: self.id.clone(),
                version: self.version.clone(),
                call: format!("tokenizer {name:?}"),
                detail: format!("no such tokenizer (it has: {})", have.join(", ")),
            }
        })
    }

    /// Output length of `tok` for an input shape, or `None` when the plugin does not take it.
    pub fn output_len(&self, tok: NativeTokenizer, shape: &[usize]) -> Option<usize> {
        // SAFETY: `shape` is a live slice of `shape.len()` values (interface v1 contract).
        let n = unsafe { (tok.table.output_len)(shape.as_ptr(), shape.len()) };
        (n > 0).then_some(n)
    }

    /// Runs `tok` on host buffers; errors (refusals and caught panics) name the plugin, its
    /// version and the call.
    pub fn tokenize(
        &self,
        tok: NativeTokenizer,
        input: &[f32],
        shape: &[usize],
        out: &mut [f32],
    ) -> Result<(), PluginError> {
        let mut msg = vec![0u8; 1024];
        let mut err = ErrBuf { msg: msg.as_mut_ptr(), cap: msg.len(), len: 0, code: 0 };
        // SAFETY: host-owned buffers with their exact lengths; `out` is exclusively borrowed,
        // `err.msg` has `cap` writable bytes (interface v1 contract).
        let code = unsafe {
            (tok.table.tokenize)(
                input.as_ptr(),
                input.len(),
                shape.as_ptr(),
                shape.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        if code == astroclip_plugin_sdk::OK {
            return Ok(());
        }
        let len = err.len.min(msg.len());
        // SAFETY: static strings of the plugin.
        let name = unsafe { tok.table.name.to_string_lossy() };
        Err(PluginError::Call {
            id: self.id.clone(),
            version: self.version.clone(),
            call: format!("tokenize ({name}, input shape {shape:?})"),
            detail: format!("error code {code}: {}", String::from_utf8_lossy(&msg[..len])),
        })
    }
}
