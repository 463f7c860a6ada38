//! Helpers shared by the end-to-end test files: the `astroclip` binary with a clean
//! environment, the repository root, output text and JSON, the tiny configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_astroclip"));
    // Tests must not inherit a developer's ASTROCLIP_* settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("ASTROCLIP_") {
            c.env_remove(k);
        }
    }
    c.arg("--log").arg("warn");
    c
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn run(home: &Path, args: &[&str]) -> Output {
    bin().arg("--home").arg(home).args(args).output().expect("spawn astroclip")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A small but complete configuration: 96 galaxies with 64-px cutouts, a few steps.
pub const TINY: &[&str] = &[
    "--set",
    "data.synth.n_galaxies=96",
    "--set",
    "data.synth.image_size=64",
    "--set",
    "data.test_fraction=0.25",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.steps=6",
    "--set",
    "train.warmup_steps=2",
    "--set",
    "train.log_every=2",
    "--set",
    "train.checkpoint_every=3",
    "--set",
    "eval.k=8",
];

pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", text(o)))
}
