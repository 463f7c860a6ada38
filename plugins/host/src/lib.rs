//! The plugin host's first layer: strict `plugin.toml` manifests, checks that need no code to
//! run (identity, versions, the entry file's SHA-256), and the installed-plugin directory
//! (`<home>/plugins/<id>/`) behind `astroclip plugins list|add|verify`.
//!
//! The manifest follows the pattern of Zed's extension manifests and Extism/nushell plugins:
//! unknown keys are errors, the interface version is declared and checked with a caret rule
//! before anything else, and the artifact is pinned by hash. Loading the artifact (native
//! `libloading` and WASM `wasmtime` carriers) builds on this layer.

pub mod native;

use std::path::{Path, PathBuf};

use astroclip_plugin_sdk::{INTERFACE_VERSION as PLUGIN_INTERFACE_VERSION, api_compatible, parse_semver};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "plugin.toml";

/// What a plugin provides (the component kinds of `astroclip_plugin_api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    Tokenizer,
    Encoder,
    Loss,
    Probe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginSection,
    pub entry: Entry,
    #[serde(default)]
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// `^[a-z0-9-]+$`, unique among installed plugins.
    pub id: String,
    /// The plugin's own semver version.
    pub version: String,
    /// The plugin interface version it was built against (caret rule vs the host's).
    pub api_version: String,
    pub kinds: Vec<ComponentKind>,
    /// The modality it reads or embeds (`image`, `spectrum`, `photometry`, …), if any.
    #[serde(default)]
    pub modality: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    /// A dynamic library (`.so`/`.dylib`/`.dll`) loaded with libloading.
    Native,
    /// A WebAssembly module run by wasmtime in a sandbox.
    Wasm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub carrier: Carrier,
    /// Path relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex SHA-256 of `file`.
    pub sha256: String,
}

/// What a plugin may do beyond computing on the buffers it is given. Everything is off unless
/// granted; the limits apply to WASM plugins. Keys left out keep their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Kept so that manifests written for 1.0 still parse; only `false` is accepted: plugins
    /// never get filesystem or network access (a WASM plugin gets no WASI at all).
    pub filesystem: bool,
    pub network: bool,
    /// Linear-memory cap (WASM); growth beyond it traps.
    pub max_memory_mb: u32,
    /// Wall-clock deadline per call (WASM, epoch interruption).
    pub deadline_ms: u64,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self { filesystem: false, network: false, max_memory_mb: 64, deadline_ms: 2000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin manifest {path}: {detail}")]
    Manifest { path: String, detail: String },
    #[error("plugin {id} {version} ({path}): {detail}")]
    Invalid { id: String, version: String, path: String, detail: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("plugin {id} {version}: {call}: {detail}")]
    Call { id: String, version: String, call: String, detail: String },
    #[error("no installed plugin {0:?}; `astroclip plugins list` shows what is installed")]
    NotInstalled(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginError + '_ {
    move |source| PluginError::Io { path: path.display().to_string(), source }
}

/// The largest manifest and entry file read (a manifest is a few hundred bytes; the largest
/// plugin library we know of is tens of MB).
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Reads a plugin file only if it is a regular file, not a symlink (which could point out of
/// the plugin directory: `plugins add` would copy whatever it names) and not a FIFO or device
/// (whose read blocks forever), of at most `limit` bytes.
fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link; plugin files must be regular files inside the plugin directory".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file (a directory, FIFO, socket or device)".into());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // Checked again on the open file, in case it was swapped since.
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > limit {
        return Err(format!("is {} bytes; at most {limit} are read", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("grew past {limit} bytes while being read"));
    }
    Ok(bytes)
}

/// A WASM entry is a binary module (`\0asm`) or WebAssembly text, which the carrier compiles:
/// UTF-8 whose first token (after blanks and `;;` line comments) opens an s-expression.
fn is_wasm(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\0asm") {
        return true;
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix(";;") {
        rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    rest.starts_with('(')
}

/// Largest accepted semver component: a version such as `18446744073709551615.0.0` is a
/// mistake, not a release.
const MAX_VERSION_COMPONENT: u64 = 999_999;

fn sane_semver(v: &str) -> bool {
    parse_semver(v).is_some_and(|(a, b, c)| [a, b, c].iter().all(|&x| x <= MAX_VERSION_COMPONENT))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A plugin directory: its manifest and where it lives.
#[derive(Debug, Clone)]
pub struct PluginDir {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl PluginDir {
    /// Reads and validates `dir/plugin.toml` (schema, id, versions, kinds); does not touch the
    /// entry file (see [`PluginDir::verify`]).
    pub fn open(dir: &Path) -> Result<Self, PluginError> {
        let path = dir.join(MANIFEST);
        let err = |detail: String| PluginError::Manifest { path: path.display().to_string(), detail };
        let bytes = read_regular(&path, MAX_MANIFEST_BYTES).map_err(|e| {
            if std::fs::symlink_metadata(&path).is_err() {
                PluginError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, e),
                }
            } else {
                err(e)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| err("is not UTF-8 text".into()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let p = &manifest.plugin;
        if !valid_id(&p.id) {
            return Err(err(format!("plugin.id {:?} must match ^[a-z0-9-]+$ (at most 64 characters)", p.id)));
        }
        if !sane_semver(&p.version) {
            return Err(err(format!(
                "plugin.version {:?} is not a semver version (MAJOR.MINOR.PATCH, each at most {MAX_VERSION_COMPONENT})",
                p.version
            )));
        }
        if !sane_semver(&p.api_version) {
            return Err(err(format!(
                "plugin.api_version {:?} is not a semver version (each part at most {MAX_VERSION_COMPONENT})",
                p.api_version
            )));
        }
        let c = &manifest.capabilities;
        for (key, granted) in [("filesystem", c.filesystem), ("network", c.network)] {
            if granted {
                return Err(err(format!(
                    "capabilities.{key} = true: plugins get no {key} access (WASM plugins run without WASI; a \
                     plugin computes on the buffers it is given) — remove the key or set it to false"
                )));
            }
        }
        if !(1..=4096).contains(&c.max_memory_mb) {
            return Err(err(format!(
                "capabilities.max_memory_mb = {} is outside [1, 4096] (a WASM32 memory holds at most 4 GiB)",
                c.max_memory_mb
            )));
        }
        if !(1..=3_600_000).contains(&c.deadline_ms) {
            return Err(err(format!(
                "capabilities.deadline_ms = {} is outside [1, 3600000] (one hour)",
                c.deadline_ms
            )));
        }
        if p.kinds.is_empty() {
            return Err(err("plugin.kinds is empty; name at least one of tokenizer, encoder, loss, probe".into()));
        }
        let e = &manifest.entry;
        if e.sha256.len() != 64 || !e.sha256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            return Err(err(format!("entry.sha256 {:?} is not 64 lower-case hex digits", e.sha256)));
        }
        let file = Path::new(&e.file);
        if e.file.is_empty()
            || file.is_absolute()
            || file.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(err(format!("entry.file {:?} must be a relative path inside the plugin directory", e.file)));
        }
        Ok(Self { dir: dir.to_path_buf(), manifest })
    }

    pub fn id(&self) -> &str {
        &self.manifest.plugin.id
    }

    pub fn version(&self) -> &str {
        &self.manifest.plugin.version
    }

    pub fn entry_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.entry.file)
    }

    pub(crate) fn invalid(&self, detail: String) -> PluginError {
        PluginError::Invalid {
            id: self.id().into(),
            version: self.version().into(),
            path: self.dir.display().to_string(),
            detail,
        }
    }

    /// The checks that need no plugin code to run: the interface version against the host's
    /// (caret rule) and the entry file against the manifest's SHA-256.
    pub fn verify(&self) -> Result<(), PluginError> {
        let api = &self.manifest.plugin.api_version;
        if !api_compatible(PLUGIN_INTERFACE_VERSION, api) {
            return Err(self.invalid(format!(
                "built for plugin interface {api}, which this host (interface {PLUGIN_INTERFACE_VERSION}) cannot run \
                 (caret rule); rebuild the plugin against interface {PLUGIN_INTERFACE_VERSION}"
            )));
        }
        self.read_entry().map(drop)
    }

    /// The entry file's bytes, read safely (regular file, no symlink on the way from the
    /// plugin directory), checked against the manifest's SHA-256 and its carrier's format.
    pub fn read_entry(&self) -> Result<Vec<u8>, PluginError> {
        let entry = self.entry_path();
        let mut at = self.dir.clone();
        let parts: Vec<_> = Path::new(&self.manifest.entry.file).components().collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            at.push(part);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(self.invalid(format!(
                    "entry file {}: {} is a symbolic link; the entry must lie inside the plugin directory",
                    entry.display(),
                    at.display()
                )));
            }
        }
        let bytes = read_regular(&entry, MAX_ENTRY_BYTES)
            .map_err(|e| self.invalid(format!("entry file {}: {e}", entry.display())))?;
        use sha2::{Digest, Sha256};
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != self.manifest.entry.sha256 {
            return Err(self.invalid(format!(
                "entry file {} has sha256 {actual}, but the manifest pins {}; the file changed after the manifest \
                 was written — rebuild it or update entry.sha256",
                self.manifest.entry.file, self.manifest.entry.sha256
            )));
        }
        let kind = match self.manifest.entry.carrier {
            Carrier::Native => native::check_library(&bytes),
            Carrier::Wasm if is_wasm(&bytes) => Ok(()),
            Carrier::Wasm => {
                Err("is neither a WebAssembly binary (magic bytes `\\0asm`) nor WebAssembly text (`(module …)`)".into())
            }
        };
        kind.map_err(|e| self.invalid(format!("entry file {}: {e}", entry.display())))?;
        Ok(bytes)
    }
}

/// Installed plugins under `<home>/plugins/<id>/`.
pub struct Installed {
    root: PathBuf,
}

/// One row of `plugins list`: the plugin, or why its directory is unusable.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub dir: String,
    pub id: Option<String>,
    pub version: Option<String>,
    pub carrier: Option<Carrier>,
    pub kinds: Vec<ComponentKind>,
    pub modality: Option<String>,
    pub status: String,
}

impl Installed {
    pub fn new(home: &Path) -> Self {
        Self { root: home.join("plugins") }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every plugin directory, each verified; broken ones are listed with their error.
    pub fn list(&self) -> Result<Vec<Listing>, PluginError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.root)(e)),
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for dir in dirs {
            let row = match PluginDir::open(&dir) {
                Ok(p) => Listing {
                    dir: dir.display().to_string(),
                    id: Some(p.id().into()),
                    version: Some(p.version().into()),
                    carrier: Some(p.manifest.entry.carrier),
                    kinds: p.manifest.plugin.kinds.clone(),
                    modality: p.manifest.plugin.modality.clone(),
                    status: p.verify().map_or_else(|e| e.to_string(), |()| "ok".into()),
                },
                Err(e) => Listing {
                    dir: dir.display().to_string(),
                    id: None,
                    version: None,
                    carrier: None,
                    kinds: Vec::new(),
                    modality: None,
                    status: e.to_string(),
                },
            };
            out.push(row);
        }
        Ok(out)
    }

    /// Verifies the plugin in `src` and copies its manifest and entry file to
    /// `<home>/plugins/<id>/` (staged, then renamed, so a failed copy installs nothing).
    /// An installed plugin with the same id is replaced only with `replace`.
    pub fn add(&self, src: &Path, replace: bool) -> Result<PluginDir, PluginError> {
        let plugin = PluginDir::open(src)?;
        // The bytes verified are the bytes installed (no second read that could differ).
        let entry = plugin.read_entry()?;
        let manifest = read_regular(&src.join(MANIFEST), MAX_MANIFEST_BYTES)
            .map_err(|e| PluginError::Manifest { path: src.join(MANIFEST).display().to_string(), detail: e })?;
        let target = self.root.join(plugin.id());
        if target.exists() && !replace {
            let old = PluginDir::open(&target).map(|p| p.version().to_string()).unwrap_or_else(|_| "?".into());
            return Err(plugin.invalid(format!(
                "plugin {} {old} is already installed at {}; pass --replace to replace it",
                plugin.id(),
                target.display()
            )));
        }
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let stage = tempfile::Builder::new().prefix(".staging-").tempdir_in(&self.root).map_err(io(&self.root))?;
        for (name, bytes) in [(MANIFEST, &manifest), (plugin.manifest.entry.file.as_str(), &entry)] {
            let to = stage.path().join(name);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&to, bytes).map_err(io(&to))?;
        }
        let staged = stage.keep();
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        std::fs::rename(&staged, &target).map_err(io(&target))?;
        let installed = PluginDir::open(&target)?;
        installed.verify()?;
        Ok(installed)
    }

    /// An installed plugin by id, or a plugin directory by path.
    pub fn resolve(&self, id_or_dir: &str) -> Result<PluginDir, PluginError> {
        let as_dir = Path::new(id_or_dir);
        if as_dir.join(MANIFEST).exists() {
            return PluginDir::open(as_dir);
        }
        let dir = self.root.join(id_or_dir);
        if valid_id(id_or_dir) && dir.join(MANIFEST).exists() {
            return PluginDir::open(&dir);
        }
        Err(PluginError::NotInstalled(id_or_dir.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_plugin(dir: &Path, api: &str, bytes: &[u8], pinned: Option<&str>) {
        use sha2::{Digest, Sha256};
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("p.wasm"), bytes).unwrap();
        let sha = pinned.map(str::to_string).unwrap_or_else(|| hex::encode(Sha256::digest(bytes)));
        std::fs::write(
            dir.join(MANIFEST),
            format!(
                "[plugin]\nid = \"photometry\"\nversion = \"0.2.0\"\napi_version = \"{api}\"\nkinds = [\"tokenizer\"]\n\
                 modality = \"photometry\"\n\n[entry]\ncarrier = \"wasm\"\nfile = \"p.wasm\"\nsha256 = \"{sha}\"\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn caret_rule() {
        assert!(api_compatible("1.0.0", "1.0.0"));
        assert!(api_compatible("1.3.0", "1.2.5"));
        assert!(!api_compatible("1.2.0", "1.3.0"), "host older than the plugin");
        assert!(!api_compatible("2.0.0", "1.0.0"));
        assert!(api_compatible("0.2.5", "0.2.1") && !api_compatible("0.3.0", "0.2.1"));
        assert!(!api_compatible("0.0.4", "0.0.3"));
        assert!(!api_compatible("1.0", "1.0.0") && parse_semver("01.0.0").is_none());
    }

    #[test]
    fn manifest_rules_name_the_key_and_file() {
        let t = tempfile::tempdir().unwrap();
        write_plugin(t.path(), "1.0.0", b"\0asm", None);
        let p = PluginDir::open(t.path()).unwrap();
        p.verify().unwrap();
        assert_eq!((p.id(), p.manifest.capabilities.max_memory_mb), ("photometry", 64));

        let text = std::fs::read_to_string(t.path().join(MANIFEST)).unwrap();
        for (bad, needle) in [
            (text.replace("id = \"photometry\"", "id = \"Photo_metry\""), "must match ^[a-z0-9-]+$"),
            (text.replace("version = \"0.2.0\"", "version = \"0.2\""), "plugin.version"),
            (text.replace("kinds = [\"tokenizer\"]", "kinds = [\"tokeniser\"]"), "unknown variant"),
            (format!("{text}\n[extra]\nx = 1\n"), "unknown field"),
            (text.replace("file = \"p.wasm\"", "file = \"../p.wasm\""), "inside the plugin directory"),
        ] {
            std::fs::write(t.path().join(MANIFEST), bad).unwrap();
            let msg = PluginDir::open(t.path()).unwrap_err().to_string();
            assert!(msg.contains(needle) && msg.contains("plugin.toml"), "{msg}");
        }
    }

    #[test]
    fn wrong_api_version_and_changed_file_are_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        write_plugin(t.path(), "2.0.0", b"\0asm", None);
        let msg = PluginDir::open(t.path()).unwrap().verify().unwrap_err().to_string();
        assert!(msg.contains("photometry 0.2.0") && msg.contains("interface 2.0.0"), "{msg}");
        write_plugin(t.path(), "1.0.0", b"\0asm", Some(&"ab".repeat(32)));
        let msg = PluginDir::open(t.path()).unwrap().verify().unwrap_err().to_string();
        assert!(msg.contains("photometry 0.2.0") && msg.contains("sha256") && msg.contains("p.wasm"), "{msg}");
    }

    #[test]
    fn symlinks_fifos_and_files_that_are_not_plugins_are_refused_without_blocking() {
        let home = tempfile::tempdir().unwrap();
        let inst = Installed::new(home.path());
        // An entry that is a symlink to a file outside the plugin (with that file's hash, so
        // only the link check can refuse it).
        let src = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"\0asm secret").unwrap();
        write_plugin(src.path(), "1.0.0", b"\0asm secret", None);
        std::fs::remove_file(src.path().join("p.wasm")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), src.path().join("p.wasm")).unwrap();
        let msg = inst.add(src.path(), false).unwrap_err().to_string();
        assert!(msg.contains("symbolic link"), "{msg}");
        assert!(!inst.root().join("photometry").exists());
        // A FIFO as entry or as manifest: refused at once instead of a read that never returns.
        let fifo = |p: &Path| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success());
        let src = tempfile::tempdir().unwrap();
        write_plugin(src.path(), "1.0.0", b"\0asm v1", None);
        std::fs::remove_file(src.path().join("p.wasm")).unwrap();
        fifo(&src.path().join("p.wasm"));
        let msg = inst.add(src.path(), false).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
        let src = tempfile::tempdir().unwrap();
        fifo(&src.path().join(MANIFEST));
        let msg = PluginDir::open(src.path()).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
        // A file that is not a WASM module, and a "native" library that is not ELF.
        let src = tempfile::tempdir().unwrap();
        write_plugin(src.path(), "1.0.0", b"hello, not wasm", None);
        let msg = inst.add(src.path(), false).unwrap_err().to_string();
        assert!(msg.contains("neither a WebAssembly binary"), "{msg}");
        let text = std::fs::read_to_string(src.path().join(MANIFEST)).unwrap().replace("\"wasm\"", "\"native\"");
        std::fs::write(src.path().join(MANIFEST), text).unwrap();
        let msg = inst.add(src.path(), false).unwrap_err().to_string();
        assert!(msg.contains("not an ELF shared library"), "{msg}");
        assert!(inst.list().unwrap().is_empty(), "nothing was installed");
        // Limits and versions out of range name their key.
        for (edit, key) in [
            ("[capabilities]\nmax_memory_mb = 0\n", "max_memory_mb"),
            ("[capabilities]\ndeadline_ms = 0\n", "deadline_ms"),
            ("[capabilities]\nfilesystem = true\n", "capabilities.filesystem"),
        ] {
            let src = tempfile::tempdir().unwrap();
            write_plugin(src.path(), "1.0.0", b"\0asm v1", None);
            let text = std::fs::read_to_string(src.path().join(MANIFEST)).unwrap() + "\n" + edit;
            std::fs::write(src.path().join(MANIFEST), text).unwrap();
            let msg = PluginDir::open(src.path()).unwrap_err().to_string();
            assert!(msg.contains(key), "{key}: {msg}");
        }
        let src = tempfile::tempdir().unwrap();
        write_plugin(src.path(), "18446744073709551615.0.0", b"\0asm v1", None);
        let msg = PluginDir::open(src.path()).unwrap_err().to_string();
        assert!(msg.contains("api_version"), "{msg}");
    }

    #[test]
    fn add_installs_verified_plugins_only_and_list_reports_breakage() {
        let home = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let inst = Installed::new(home.path());
        assert!(inst.list().unwrap().is_empty());
        write_plugin(src.path(), "1.0.0", b"\0asm v1", Some(&"00".repeat(32)));
        assert!(inst.add(src.path(), false).is_err());
        assert!(!inst.root().join("photometry").exists(), "a refused plugin installs nothing");
        write_plugin(src.path(), "1.0.0", b"\0asm v1", None);
        let p = inst.add(src.path(), false).unwrap();
        assert_eq!(p.dir, inst.root().join("photometry"));
        let msg = inst.add(src.path(), false).unwrap_err().to_string();
        assert!(msg.contains("already installed") && msg.contains("--replace"), "{msg}");
        inst.add(src.path(), true).unwrap();
        assert_eq!(inst.resolve("photometry").unwrap().version(), "0.2.0");
        // Tampering after installation shows up in the listing.
        std::fs::write(inst.root().join("photometry/p.wasm"), b"changed").unwrap();
        let rows = inst.list().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].status.contains("sha256"), "{}", rows[0].status);
        assert!(matches!(inst.resolve("nope"), Err(PluginError::NotInstalled(_))));
    }
}
