//! `astroclip plugins`: list, add, verify, test (the conformance kit), new (the template).

pub mod conformance;
pub mod template;

use std::path::{Path, PathBuf};

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Installed plugins (`<home>/plugins/`), each re-verified.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Verify a plugin directory (manifest, interface version, entry sha256) and install it.
    Add {
        dir: PathBuf,
        /// Replace an installed plugin with the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Verify an installed plugin (by id) or a plugin directory.
    Verify { plugin: String },
    /// Run the conformance kit on a plugin (id or directory), or on the built-ins (`builtin`).
    Test {
        plugin: String,
        /// Input length given to encoders under test.
        #[arg(long, default_value_t = 16)]
        input_len: usize,
        #[arg(long)]
        json: bool,
    },
    /// Create a new plugin crate from the template (native Rust; `--wasm` for a Zig WASM one).
    New {
        /// Plugin id, `^[a-z0-9-]+$`.
        id: String,
        /// Parent directory of the new plugin directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Modality the plugin serves.
        #[arg(long, default_value = "photometry")]
        modality: String,
        #[arg(long)]
        wasm: bool,
    },
}

pub fn execute(command: PluginsCommand, home: &Path) -> anyhow::Result<()> {
    let installed = astroclip_plugin_host::Installed::new(home);
    match command {
        PluginsCommand::List { json } => {
            let rows = installed.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no plugins installed under {}", installed.root().display());
                print_builtins();
            } else {
                println!("{:<24} {:<10} {:<7} {:<22} {:<12} status", "id", "version", "carrier", "kinds", "modality");
                for r in rows {
                    let kinds: Vec<String> =
                        r.kinds.iter().map(|k| serde_json::to_string(k).unwrap_or_default().replace('"', "")).collect();
                    println!(
                        "{:<24} {:<10} {:<7} {:<22} {:<12} {}",
                        r.id.as_deref().unwrap_or(&r.dir),
                        r.version.as_deref().unwrap_or("-"),
                        r.carrier.map(|c| format!("{c:?}").to_lowercase()).unwrap_or_else(|| "-".into()),
                        kinds.join(","),
                        r.modality.as_deref().unwrap_or("-"),
                        r.status
                    );
                }
                print_builtins();
            }
        }
        PluginsCommand::Add { dir, replace } => {
            let p = installed.add(&dir, replace)?;
            println!("installed {} {} at {}", p.id(), p.version(), p.dir.display());
        }
        PluginsCommand::Test { plugin, input_len, json } => {
            let mut report = crate::plugins::conformance::Report::default();
            if plugin == "builtin" {
                crate::plugins::conformance::test_builtins(&mut report)?;
            } else {
                crate::plugins::conformance::test_plugin(&plugin, home, input_len, &mut report)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if !report.passed() {
                anyhow::bail!("{plugin} does not pass the conformance kit (see the FAIL lines)");
            }
        }
        PluginsCommand::New { id, dir, modality, wasm } => {
            let made = crate::plugins::template::new_plugin(&id, &dir, &modality, wasm)?;
            println!("created {}", made.display());
            println!("next: cd {} && ./build.sh && astroclip plugins test dist   (see README.md)", made.display());
        }
        PluginsCommand::Verify { plugin } => {
            let p = installed.resolve(&plugin)?;
            p.verify()?;
            if p.manifest.entry.carrier == astroclip_plugin_host::Carrier::Native {
                // The handshake: load, embedded interface version, toolchain, table.
                let lib = astroclip_plugin_host::native::NativePlugin::load(&p)?;
                for (name, modality, _) in lib.tokenizers() {
                    println!("  tokenizer {name} (modality {modality})");
                }
                for (name, modality, _) in lib.encoders() {
                    println!("  encoder {name} (modality {modality}, tensor interface)");
                }
            }
            println!(
                "{} {}: manifest ok, plugin interface {} compatible with host {}, entry {} sha256 ok",
                p.id(),
                p.version(),
                p.manifest.plugin.api_version,
                astroclip_plugin_api::PLUGIN_INTERFACE_VERSION,
                p.manifest.entry.file
            );
        }
    }
    Ok(())
}

/// The first-party components, linked into the binary; they pass the same conformance kit
/// (`astroclip plugins test builtin`).
fn print_builtins() {
    println!("\nbuilt-in (linked; `astroclip plugins test builtin` checks them like plugins):");
    let encoders = astroclip_core::encoders::BUILTIN_ENCODERS.iter().map(|&(id, m)| (id, "encoder", m));
    let rows = [("legacy-survey-rgb", "tokenizer", "image"), ("specformer-tokens", "tokenizer", "spectrum")]
        .into_iter()
        .chain(encoders)
        .chain([("infonce", "loss", "-"), ("knn", "probe", "-")]);
    for (id, kind, modality) in rows {
        println!("{id:<24} {:<10} {:<7} {kind:<22} {modality:<12} linked", env!("CARGO_PKG_VERSION"), "builtin");
    }
}
