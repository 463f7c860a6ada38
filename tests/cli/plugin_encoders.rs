//! Plugin encoders in `astroclip run` and `astroclip bench`: the AstroCLIP objective trained
//! with the image encoder from a native plugin (tensor-zoo/cnn, tensor interface) and from a
//! WASM plugin (wasm-mlp-encoder, served by `astroclip-wasm-host`), evaluated, recorded with
//! the plugin's id, version and SHA-256, and resumed exactly: a stop + resume logs every step's
//! loss once, equal to the uninterrupted run's (a restart from step 0 would log steps 0–2
//! twice), and ends with the same R² table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::*;

/// Builds tensor-zoo into `target/plugins/` and the WASM carrier; returns the carrier.
fn plugins() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/build-plugins.sh")).arg("tensor-zoo").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let host = repo().join("plugins/wasm/target/debug/astroclip-wasm-host");
    assert!(host.is_file(), "{} missing: scripts/test.sh builds it first", host.display());
    host
}

fn runw(home: &Path, host: &Path, args: &[&str]) -> Output {
    bin().env("ASTROCLIP_WASM_HOST", host).arg("--home").arg(home).args(args).output().unwrap()
}

fn table(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("image") || l.starts_with("spectrum"))
        .map(String::from)
        .collect()
}

fn losses(home: &Path, run: &str) -> Vec<(i64, f64)> {
    let reg = astroclip_registry::Registry::open(&home.join("registry.db")).unwrap();
    reg.metric_history(run, "train.loss").unwrap().into_iter().map(|m| (m.step, m.value)).collect()
}

/// Trains `experiment` (tiny sizes, dropout off) once uninterrupted and once stopped after
/// step 3 and resumed; checks records, exact resume and the plugin provenance.
fn trains_and_resumes_exactly(experiment: &str, plugin_id: &str) {
    let host = plugins();
    let home = tempfile::tempdir().unwrap();
    let src = match plugin_id {
        "tensor-zoo" => repo().join("target/plugins/tensor-zoo"),
        _ => repo().join("plugins/examples").join(plugin_id),
    };
    let add = runw(home.path(), &host, &["plugins", "add", src.to_str().unwrap()]);
    assert!(add.status.success(), "{}", text(&add));

    let exp = repo().join("experiments").join(experiment);
    let mut base: Vec<&str> = vec!["run", exp.to_str().unwrap()];
    base.extend_from_slice(TINY);
    base.extend_from_slice(&["--set", "spectrum.encoder.dropout=0.0"]);
    let full = runw(home.path(), &host, &base);
    assert!(full.status.success(), "{}", text(&full));
    assert!(!table(&full).is_empty(), "{}", text(&full));

    let mut first = base.clone();
    first.extend_from_slice(&["--stop-after", "3"]);
    let out = runw(home.path(), &host, &first);
    assert!(out.status.success() && text(&out).contains("--resume"), "{}", text(&out));
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let list = runs.as_array().unwrap();
    let stopped =
        list.iter().find(|r| r["status"] == "killed").expect("stopped run")["id"].as_str().unwrap().to_string();
    let full_id =
        list.iter().find(|r| r["status"] == "finished").expect("full run")["id"].as_str().unwrap().to_string();

    let resumed = runw(home.path(), &host, &["run", "--resume", &stopped]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(table(&resumed), table(&full));
    let (a, b) = (losses(home.path(), &full_id), losses(home.path(), &stopped));
    assert_eq!(a.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (0..6).collect::<Vec<i64>>());
    // Every step once (a restart from 0 logs 0..3 twice), the resumed steps equal to the
    // uninterrupted run's, the first resumed step (3) included.
    assert_eq!(b, a, "losses of the stopped + resumed run differ from the uninterrupted run's");

    let show = json(&run(home.path(), &["runs", "show", &stopped, "--json"]));
    assert_eq!(show["status"], "finished");
    let params: Vec<(String, String)> = serde_json::from_value(show["params"].clone()).unwrap();
    let p = params.iter().find(|(k, _)| k == "plugins.image.encoder").expect("plugin provenance param");
    assert!(p.1.starts_with(&format!("{plugin_id} 0.1.0 sha256 ")) && p.1.len() > 64, "{p:?}");
    let components = show["components"].to_string();
    assert!(components.contains(plugin_id), "{components}");
}

#[test]
fn native_plugin_image_encoder_trains_and_resumes_exactly() {
    trains_and_resumes_exactly("plugin-encoders.toml", "tensor-zoo");
}

#[test]
fn wasm_plugin_image_encoder_trains_and_resumes_exactly() {
    trains_and_resumes_exactly("plugin-encoders-wasm.toml", "wasm-mlp-encoder");
}

/// A bench file whose AstroCLIP model takes its image encoder from a plugin.
#[test]
fn bench_accepts_a_plugin_encoder_model() {
    let host = plugins();
    let home = tempfile::tempdir().unwrap();
    let zoo = repo().join("target/plugins/tensor-zoo");
    assert!(runw(home.path(), &host, &["plugins", "add", zoo.to_str().unwrap()]).status.success());
    let mut sets: Vec<String> = TINY.iter().filter(|s| **s != "--set").map(|s| format!("\"{s}\"")).collect::<Vec<_>>();
    sets.push("\"image.encoder.name=tensor-zoo/cnn\"".into());
    let file = home.path().join("bench.toml");
    std::fs::write(
        &file,
        format!(
            "[bench]\nname = \"plugin-bench\"\n\n[[model]]\nname = \"AstroCLIP (plugin CNN)\"\nset = [{}]\n",
            sets.join(", ")
        ),
    )
    .unwrap();
    let out = runw(home.path(), &host, &["bench", file.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("AstroCLIP (plugin CNN)"), "{t}");
}

/// Choices that cannot work are refused before a run exists, naming the key.
#[test]
fn impossible_encoder_choices_are_refused_before_the_run() {
    let home = tempfile::tempdir().unwrap();
    for (set, want) in [
        (vec!["image.encoder.name=specformer"], "is a spectrum encoder"),
        (vec!["image.encoder.name=swin"], "unknown encoder \"swin\""),
        (vec!["image.encoder.chanels=[8]"], "image.encoder"),
        (vec!["image.encoder.name=tensor-zoo/cnn", "image.encoder.channels=[8]"], "takes no settings"),
        (vec!["image.encoder.name=no-such-plugin/cnn"], "image.encoder.name"),
        (vec!["image.channels=[8]"], "image.encoder.channels"),
        (
            vec![
                "image.encoder.name=tensor-zoo/cnn",
                "objective.freeze_backbones=true",
                "objective.init_image=x",
                "objective.init_spectrum=y",
            ],
            "no backbone/head split",
        ),
    ] {
        let mut args = vec!["run"];
        for s in &set {
            args.extend_from_slice(&["--set", s]);
        }
        let out = run(home.path(), &args);
        let t = text(&out);
        assert!(!out.status.success() && t.contains(want), "{set:?}: {t}");
    }
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 0, "a refused choice created a run");
}
