//! The native carrier: a plugin `cdylib` loaded with libloading.
//!
//! Load order (nothing of the plugin runs before its version is known to be compatible):
//! 1. the manifest checks of [`PluginDir::verify`] (interface version, entry SHA-256);
//! 2. the statics `ASTROCLIP_PLUGIN_INTERFACE` and `ASTROCLIP_PLUGIN_TOOLCHAIN` are read **from
//!    the file** (ELF dynamic symbol table → the bytes of the section holding them, with the
//!    symbols' own sizes), before the library is mapped: no initialiser of the plugin runs for
//!    a refused plugin. The interface must pass the caret rule against the host's (every older
//!    1.x minor version runs) and equal the manifest's `api_version`; the toolchain's target
//!    must be the host's. On a platform whose binaries are not ELF the same statics are read
//!    after `dlopen`, which runs the library's initialisers (none for a Rust cdylib without
//!    constructors) before the check;
//! 3. `dlopen`, then `astroclip_plugin_v1` for the tokenizer table (1.0);
//! 4. the tables of later versions by the version the plugin declares, each read with the
//!    layout frozen for that version (`astroclip_plugin_sdk::since_v1_*`) and converted to the
//!    newest: 1.1's tensor table holds encoders only, 1.2's encoders and losses; the probes
//!    table is read where its symbol exists.
//!
//! Libraries are never unloaded (unloading a Rust cdylib with thread-local destructors can
//! crash the host): the handle is leaked for the life of the process.
#![allow(unsafe_code)]

use astroclip_plugin_sdk::{
    ErrBuf, INTERFACE_VERSION as PLUGIN_INTERFACE_VERSION, PluginV1, ProbePluginV1, ProbeV1, TOOLCHAIN, TokenizerV1,
    api_compatible, parse_semver, since_v1_1, since_v1_2,
    tensor::{EncoderV1, LossV1},
};

use crate::{Carrier, PluginDir, PluginError};

/// A loaded native plugin.
pub struct NativePlugin {
    pub id: String,
    pub version: String,
    /// The interface the plugin was built against.
    pub interface: String,
    table: &'static PluginV1,
    /// Encoders over the host tensor interface (interface ≥ 1.1).
    encoders: &'static [EncoderV1],
    /// Contrastive losses over the tensor interface (interface ≥ 1.2).
    losses: &'static [LossV1],
    /// Probes over the array interface (where exported).
    probes: &'static [ProbeV1],
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

/// The exported statics of the file at `bytes`, read without loading it: `Ok(None)` when the
/// file is not ELF (read them after loading), `Err` when it is ELF but lacks one.
fn statics_from_file(bytes: &[u8]) -> Result<Option<(String, String)>, String> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(bytes) else {
        return Ok(None);
    };
    let read = |name: &str| -> Result<String, String> {
        let sym = file.dynamic_symbols().find(|s| s.name() == Ok(name) && s.is_definition()).ok_or_else(|| {
            format!("exports no {name} symbol: not an astroclip plugin, or built without the SDK's export_plugin!")
        })?;
        let data = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .and_then(|sec| sec.data_range(sym.address(), sym.size()).ok().flatten())
            .ok_or_else(|| format!("its {name} symbol points outside the file's data"))?;
        Ok(cstr(data))
    };
    Ok(Some((read("ASTROCLIP_PLUGIN_INTERFACE")?, read("ASTROCLIP_PLUGIN_TOOLCHAIN")?)))
}

/// Whether `bytes` look like a plugin library for this host, without loading it: on Linux an
/// ELF shared object exporting the SDK's version statics; elsewhere (Mach-O, PE) only what
/// loading will tell.
pub(crate) fn check_library(bytes: &[u8]) -> Result<(), String> {
    match statics_from_file(bytes)? {
        Some(_) => Ok(()),
        None if cfg!(target_os = "linux") => {
            Err("is not an ELF shared library (a Linux plugin is a `cdylib` built with the SDK)".into())
        }
        None => Ok(()),
    }
}

/// `<target>` of a toolchain fingerprint `"<rustc> / <target> / abi …"`.
fn target_of(toolchain: &str) -> &str {
    toolchain.split(" / ").nth(1).unwrap_or("")
}

/// A `&'static [T]` over `n` entries at `ptr` (empty for null or 0).
///
/// # Safety
/// `ptr` must point at `n` entries of the plugin's static data (never unloaded).
unsafe fn static_slice<T>(ptr: *const T, n: usize) -> &'static [T] {
    if ptr.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `n` live static entries.
    unsafe { std::slice::from_raw_parts(ptr, n) }
}

impl NativePlugin {
    pub fn load(dir: &PluginDir) -> Result<Self, PluginError> {
        if dir.manifest.entry.carrier != Carrier::Native {
            return Err(dir.invalid("entry.carrier is not `native`".into()));
        }
        let bytes = dir.read_entry()?;
        let path = dir.entry_path();
        let from_file = statics_from_file(&bytes).map_err(|e| dir.invalid(format!("{}: {e}", path.display())))?;
        drop(bytes);
        if let Some((iface, toolchain)) = &from_file {
            check_versions(dir, iface, toolchain)?;
        }
        // SAFETY: loading runs the library's initialisers; the file is the one the manifest
        // pins by SHA-256 (checked just above) and, for ELF, its versions passed the checks.
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| dir.invalid(format!("cannot load {}: {e}", path.display())))?;
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        let iface = match from_file {
            Some((iface, _)) => iface,
            None => {
                let read_static = |name: &[u8], n: usize| -> Result<String, PluginError> {
                    // SAFETY: the symbols are `[u8; N]` statics exported by the SDK macro (N = 32
                    // for the interface, 256 for the toolchain in every 1.x version).
                    unsafe {
                        let sym: libloading::Symbol<'_, *const u8> = lib.get(name).map_err(|_| {
                            dir.invalid(format!(
                                "{} exports no {} symbol: not an astroclip plugin, or built without the SDK's \
                                 export_plugin!",
                                path.display(),
                                String::from_utf8_lossy(&name[..name.len() - 1])
                            ))
                        })?;
                        Ok(cstr(std::slice::from_raw_parts(*sym, n)))
                    }
                };
                let iface = read_static(b"ASTROCLIP_PLUGIN_INTERFACE\0", 32)?;
                check_versions(dir, &iface, &read_static(b"ASTROCLIP_PLUGIN_TOOLCHAIN\0", 256)?)?;
                iface
            }
        };
        // SAFETY: signature fixed by interface 1.0 (checked above); the returned table points
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
        let v = parse_semver(&iface).unwrap_or_default();
        // SAFETY (every block below): the symbols' signatures are those of the interface
        // version the plugin declares (checked above), and the tables they return are the
        // plugin's static data, read with that version's frozen layout.
        let tensor_fn =
            unsafe { lib.get::<extern "C" fn() -> *const std::ffi::c_void>(b"astroclip_plugin_tensor_v1\0") };
        let (encoders, losses) = match tensor_fn {
            Ok(f) if v >= (1, 2, 0) => match unsafe { (f() as *const since_v1_2::TensorPluginV1).as_ref() } {
                Some(t) => unsafe { (static_slice(t.encoders, t.n_encoders), static_slice(t.losses, t.n_losses)) },
                None => (&[][..], &[][..]),
            },
            Ok(f) if v >= (1, 1, 0) => match unsafe { (f() as *const since_v1_1::TensorPluginV1).as_ref() } {
                Some(t) => (unsafe { static_slice(t.encoders, t.n_encoders) }, &[][..]),
                None => (&[][..], &[][..]),
            },
            _ => (&[][..], &[][..]),
        };
        let probes =
            match unsafe { lib.get::<extern "C" fn() -> *const ProbePluginV1>(b"astroclip_plugin_probes_v1\0") } {
                Ok(f) if v >= (1, 1, 0) => match unsafe { f().as_ref() } {
                    Some(t) => unsafe { static_slice(t.probes, t.n_probes) },
                    None => &[],
                },
                _ => &[],
            };
        Ok(Self { id, version, interface: iface, table, encoders, losses, probes })
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
        // Leaked once per call site; plugins are never unloaded and ids are tiny.
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        self.encoders
            .iter()
            .map(|e| {
                // SAFETY: static strings of the plugin.
                let (name, modality) = unsafe { (e.name.to_string_lossy(), e.modality.to_string_lossy()) };
                (name, modality, NativeEncoder { plugin_id: id, plugin_version: version, table: e })
            })
            .collect()
    }

    /// The plugin's probes: `(name, probe)`.
    pub fn probes(&self) -> Vec<(String, NativeProbe)> {
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        self.probes
            .iter()
            .map(|p| {
                // SAFETY: static string of the plugin.
                let name = unsafe { p.name.to_string_lossy() };
                (name, NativeProbe { plugin_id: id, plugin_version: version, table: p })
            })
            .collect()
    }

    /// The plugin's contrastive losses: `(name, loss)`.
    pub fn losses(&self) -> Vec<(String, NativeLoss)> {
        let id: &'static str = Box::leak(self.id.clone().into_boxed_str());
        let version: &'static str = Box::leak(self.version.clone().into_boxed_str());
        self.losses
            .iter()
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

/// The interface must run here (caret rule: every older 1.x minor version does) and equal the
/// manifest's; the library must be built for the host's target.
fn check_versions(dir: &PluginDir, iface: &str, toolchain: &str) -> Result<(), PluginError> {
    if !api_compatible(PLUGIN_INTERFACE_VERSION, iface) {
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
    let (theirs, ours) = (target_of(toolchain), target_of(TOOLCHAIN));
    if theirs != ours {
        return Err(dir.invalid(format!(
            "the library was built for target {theirs:?} (toolchain `{toolchain}`), this host runs on {ours:?}; \
             rebuild the plugin for {ours}"
        )));
    }
    Ok(())
}
