//! `astroclip bind`: a plugin modality bound into a frozen embedding; interruption and exact resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::*;

/// Builds the photometry encoder plugin directory and the WASM plugin host (no-ops when fresh).
fn photometry_plugins() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-plugins.sh"))
        .args(["photometry-mlp", "tensor-zoo", "ridge-probe"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (repo().join("target/plugins/photometry-mlp"), repo().join("plugins/wasm/target/debug/astroclip-wasm-host"))
}

fn bind_file(dir: &Path, encoder_plugin: &Path, extra: &str) -> PathBuf {
    let f = dir.join("bind.toml");
    std::fs::write(
        &f,
        format!(
            "[experiment]\nname = \"bind-test\"\n\n[base]\nexperiment = \"quickstart\"\n\
             overrides = [\"data.synth.n_galaxies=256\", \"data.synth.image_size=64\", \"train.steps=30\", \
             \"train.batch_size=32\", \"train.checkpoint_every=1000\", \"eval.k=16\"]\n\n\
             [modality]\nname = \"photometry\"\ntokenizer = \"{}\"\nencoder_plugin = \"{}\"\nencoder = \"mlp\"\n\n\
             [train]\nsteps = 120\nbatch_size = 64\nlr = 2e-3\nwarmup_steps = 10\nweight_decay = 0.01\n\
             logit_scale = 15.5\nbind_to = [\"image\", \"spectrum\"]\nseed = 3\nlog_every = 20\n{extra}\n\
             [eval]\nk = 16\nrecall_at = [1, 10]\nprobe_plugins = [\"{}\"]\n",
            repo().join("plugins/examples/wasm-photometry").display(),
            encoder_plugin.display(),
            repo().join("target/plugins/ridge-probe").display()
        ),
    )
    .unwrap();
    f
}

#[test]
fn bind_photometry_into_a_frozen_embedding_from_plugins() {
    let (enc, host) = photometry_plugins();
    let home = tempfile::tempdir().unwrap();
    let file = bind_file(home.path(), &enc, "");
    let bind = |f: &Path| {
        bin().env("ASTROCLIP_WASM_HOST", &host).arg("--home").arg(home.path()).arg("bind").arg(f).output().unwrap()
    };
    let out = bind(&file);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let row = |name: &str| -> Vec<f64> {
        let line = t.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row {name}: {t}"));
        line[name.len()..].split_whitespace().filter_map(|v| v.parse().ok()).collect()
    };
    // Photometry alone predicts redshift; its embedding is aligned with the frozen ones.
    assert!(row("photometry ")[0] > 0.3, "{t}");
    // The probe plugin's row is there (ridge regression on the same embeddings).
    assert!(
        row("photometry (ridge-probe/ridge)").iter().all(|v| v.is_finite())
            && row("photometry (ridge-probe/ridge)").len() >= 5,
        "{t}"
    );
    let recall = |dir: &str| -> f64 {
        let line = t.lines().find(|l| l.trim_start().starts_with(dir) && l.contains("recall@")).unwrap();
        line.split("recall@10 = ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    // 52 held-out galaxies: chance recall@10 is 0.19.
    assert!(recall("photometry→image") > 0.35 && recall("photometry→spectrum") > 0.35, "{t}");

    // The base run was trained once and is frozen: a second binding reuses it, and its stored
    // embeddings do not change.
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let base: Vec<&serde_json::Value> =
        runs.as_array().unwrap().iter().filter(|r| r["experiment"] == "quickstart").collect();
    assert_eq!(base.len(), 1, "{runs}");
    let base_id = base[0]["id"].as_str().unwrap();
    let emb = home.path().join("runs").join(base_id).join("embeddings.safetensors");
    let before = std::fs::read(&emb).unwrap();
    // This time with the contrastive loss from a plugin (InfoNCE over the tensor interface).
    let zoo = repo().join("target/plugins/tensor-zoo");
    let with_plugin_loss =
        bind_file(home.path(), &enc, &format!("loss_plugin = \"{}\"\nloss = \"infonce\"\n", zoo.display()));
    let out = bind(&with_plugin_loss);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&emb).unwrap(), before);
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let n = |e: &str| runs.as_array().unwrap().iter().filter(|r| r["experiment"] == e).count();
    assert_eq!((n("quickstart"), n("bind-test")), (1, 2), "{runs}");

    // The bind run records its plugins and per-source metrics.
    let id = runs.as_array().unwrap().iter().find(|r| r["experiment"] == "bind-test").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = json(&run(home.path(), &["runs", "show", &id, "--json"])).to_string();
    assert!(
        shown.contains("photometry-mlp/mlp") && shown.contains("plugins.tokenizer") && shown.contains("base.run_id"),
        "{shown}"
    );
    // …and the new modality's embedding diagnostics, with its alignment to both base modalities.
    for (key, source) in [
        ("eval.effective_rank", "photometry"),
        ("eval.uniformity", "photometry"),
        ("eval.alignment", "photometry↔image"),
        ("eval.alignment", "photometry↔spectrum"),
    ] {
        assert_eq!(
            metric_rows(home.path(), &id, key).len(),
            if key == "eval.alignment" { 2 } else { 1 },
            "{key} [{source}] in {shown}"
        );
    }

    // The encoder can be a WASM plugin too (tensor interface as imported host functions).
    let wasm_enc = bind_file(home.path(), &repo().join("plugins/examples/wasm-mlp-encoder"), "");
    let out = bind(&wasm_enc);
    let t = text(&out);
    assert!(out.status.success() && t.contains("photometry→image"), "{t}");

    // A misspelt key names the key and file; a missing plugin names what to do; nothing is lost.
    let bad = bind_file(home.path(), &enc, "learning_rate = 1\n");
    let out = bind(&bad);
    assert!(
        !out.status.success() && text(&out).contains("learning_rate") && text(&out).contains("bind.toml"),
        "{}",
        text(&out)
    );
    let missing = bind_file(home.path(), &home.path().join("nope"), "");
    let out = bind(&missing);
    assert!(!out.status.success() && text(&out).contains("modality.encoder_plugin"), "{}", text(&out));
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().iter().filter(|r| r["status"] == "finished").count(), 4, "{runs}");
}

/// SIGINT during `astroclip bind` stops after the current step with a checkpoint and leaves
/// the run `killed`; `bind --resume` finishes it, and the stopped + resumed run logs every
/// step's loss once, equal to an uninterrupted binding's (a restart from step 0 would log the
/// first steps twice).
#[test]
fn bind_interrupted_by_sigint_resumes_to_the_uninterrupted_result() {
    let (enc, host) = photometry_plugins();
    let home = tempfile::tempdir().unwrap();
    let file = bind_file(home.path(), &enc, "checkpoint_every = 25\n");
    let long = std::fs::read_to_string(&file).unwrap().replace("steps = 120", "steps = 3000");
    std::fs::write(&file, long).unwrap();
    let bind = || {
        let mut c = bin();
        c.env("ASTROCLIP_WASM_HOST", &host).arg("--home").arg(home.path());
        c
    };
    let full = bind().arg("bind").arg(&file).output().unwrap();
    assert!(full.status.success(), "{}", text(&full));

    let mut child = bind()
        .arg("bind")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the new run has written its first checkpoint.
    let runs_dir = home.path().join("runs");
    let started = std::time::Instant::now();
    let checkpointed = || {
        std::fs::read_dir(&runs_dir).into_iter().flatten().flatten().any(|r| {
            let ck = r.path().join("checkpoints/step-0000025/complete");
            ck.exists() && !r.path().join("eval.json").exists()
        })
    };
    while !checkpointed() {
        assert!(started.elapsed().as_secs() < 600, "no checkpoint written");
        assert!(child.try_wait().unwrap().is_none(), "bind ended before it could be interrupted");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(!out.status.success() && t.contains("bind --resume"), "{t}");
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let killed = runs.as_array().unwrap().iter().find(|r| r["status"] == "killed").expect("killed run");
    let id = killed["id"].as_str().unwrap().to_string();
    let full_id =
        runs.as_array().unwrap().iter().find(|r| r["experiment"] == "bind-test" && r["status"] == "finished").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_string();

    let resumed = bind().args(["bind", "--resume", &id]).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    let show = json(&run(home.path(), &["runs", "show", &id, "--json"]));
    assert_eq!(show["status"], "finished");
    let reg = astroclip_registry::Registry::open(&home.path().join("registry.db")).unwrap();
    let losses = |r: &str| -> Vec<(i64, f64)> {
        reg.metric_history(r, "train.loss").unwrap().into_iter().map(|m| (m.step, m.value)).collect()
    };
    let (a, b) = (losses(&full_id), losses(&id));
    assert_eq!(a.len(), 3000);
    assert_eq!(b, a, "the stopped + resumed binding differs from the uninterrupted one");
    // The same R² table, too.
    let rows = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("photometry"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&resumed), rows(&full));
}
