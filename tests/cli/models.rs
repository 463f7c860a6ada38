//! `astroclip models import`: AstroCLIP's three checkpoint kinds become finished runs of the
//! experiment `imported` (the file's SHA-256, key count and loaded modules recorded), broken
//! files are refused naming the keys, and the imported backbones start a two-stage run.
//! The checkpoints come from the PyTorch twin (`bench/astroclip_twin.py`, needs torch: the
//! Python of `ASTROCLIP_BENCH_PYTHON`, required when `ASTROCLIP_REQUIRE_TORCH` is set).

use crate::common::{TINY, json, repo, run, text};

fn twin() -> Option<tempfile::TempDir> {
    let required = std::env::var("ASTROCLIP_REQUIRE_TORCH").is_ok();
    let Ok(python) = std::env::var("ASTROCLIP_BENCH_PYTHON") else {
        assert!(!required, "ASTROCLIP_REQUIRE_TORCH is set but ASTROCLIP_BENCH_PYTHON is not");
        eprintln!("NOT RUN: models import needs ASTROCLIP_BENCH_PYTHON with torch (scripts/setup-bench.sh)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&python)
        .arg(repo().join("bench/astroclip_twin.py"))
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(!required && err.contains("No module named 'torch'"), "the twin failed: {err}");
        eprintln!("NOT RUN: {python} has no torch");
        return None;
    }
    Some(dir)
}

fn sha256(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// `--set` pairs that reproduce the `[section]` of a stored configuration.
fn sets_of(config: &serde_json::Value, section: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut flat = Vec::new();
    flatten(section, &config[section], &mut flat);
    for (k, v) in flat {
        out.push("--set".to_string());
        out.push(format!("{k}={v}"));
    }
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&format!("{prefix}.{k}"), v, out)),
        serde_json::Value::String(s) => out.push((prefix.to_string(), format!("\"{s}\""))),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[test]
fn imported_checkpoints_become_runs_and_start_two_stage_training() {
    let Some(dir) = twin() else { return };
    let home = tempfile::tempdir().unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for (file, kind, loaded) in [
        ("astroclip", "astroclip", "130 parameters loaded"),
        ("specformer", "specformer", "55 parameters loaded"),
        ("astrodino", "astrodino", "63 parameters loaded"),
    ] {
        let path = dir.path().join(format!("{file}.ckpt"));
        let out = run(home.path(), &["models", "import", path.to_str().unwrap(), "--name", file]);
        let t = text(&out);
        assert!(out.status.success() && t.contains(&format!("({kind})")) && t.contains(loaded), "{t}");
        let filter = format!("params.import.kind = {kind}");
        let rows = json(&run(home.path(), &["runs", "list", "--json", "--where", &filter]));
        let id = rows[0]["id"].as_str().unwrap().to_string();
        let detail = json(&run(home.path(), &["runs", "show", &id, "--json"]));
        assert_eq!(detail["status"], "finished");
        assert_eq!(detail["experiment"], "imported");
        let param = |k: &str| {
            detail["params"].as_array().unwrap().iter().find(|p| p[0] == k).map(|p| p[1].as_str().unwrap().to_string())
        };
        assert_eq!(param("import.sha256").unwrap(), sha256(&path), "{detail}");
        assert!(param("import.keys").unwrap().parse::<usize>().unwrap() > 40, "{detail}");
        assert!(detail["artifacts"].as_array().unwrap().iter().any(|a| a["kind"] == "checkpoint"), "{detail}");
        ids.insert(kind, (id, detail["config"].clone()));
    }

    // Broken files: refused, nothing recorded, the keys named.
    let before = json(&run(home.path(), &["runs", "list", "--json"])).as_array().unwrap().len();
    for (file, says) in [
        ("broken_missing", "backbone.transformer.layers.1.mha.output.weight"),
        ("broken_extra", "blocks.0.attention.rotary.weight"),
        ("broken_shape", "final_layernorm.weight"),
        ("twin_io", "not one of AstroCLIP's checkpoint layouts"),
    ] {
        let ext = if file == "twin_io" { "pt" } else { "ckpt" };
        let path = dir.path().join(format!("{file}.{ext}"));
        let out = run(home.path(), &["models", "import", path.to_str().unwrap()]);
        let t = text(&out);
        assert!(!out.status.success() && t.contains(says) && t.contains(&format!("{file}.{ext}")), "{t}");
    }
    let readme = repo().join("README.md");
    let out = run(home.path(), &["models", "import", readme.to_str().unwrap()]);
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("cannot be read as a PyTorch checkpoint") && t.contains("astrodino.ckpt"),
        "{t}"
    );
    assert_eq!(json(&run(home.path(), &["runs", "list", "--json"])).as_array().unwrap().len(), before);

    // Two-stage AstroCLIP from the imported backbones: the [image] and [spectrum] sections of
    // the imports, their embedding width, frozen backbones.
    let (dino, dino_cfg) = &ids["astrodino"];
    let (spec, spec_cfg) = &ids["specformer"];
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(TINY.iter().map(|s| s.to_string()));
    args.extend(sets_of(dino_cfg, "image"));
    args.extend(sets_of(spec_cfg, "spectrum"));
    for s in [
        "data.synth.n_galaxies=32".to_string(),
        "data.synth.image_size=152".into(),
        "train.steps=2".into(),
        "train.batch_size=8".into(),
        format!("model.embed_dim={}", dino_cfg["model"]["embed_dim"]),
        format!("objective.init_image={dino}"),
        format!("objective.init_spectrum={spec}"),
        "objective.freeze_backbones=true".into(),
    ] {
        args.extend(["--set".to_string(), s]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(home.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let rows =
        json(&run(home.path(), &["runs", "list", "--json", "--where", "params.objective.freeze_backbones = true"]));
    let detail = json(&run(home.path(), &["runs", "show", rows[0]["id"].as_str().unwrap(), "--json"]));
    let params = detail["params"].as_array().unwrap();
    for (k, v) in [("init.image.run", dino), ("init.spectrum.run", spec)] {
        assert!(params.iter().any(|p| p[0] == k && p[1] == v.as_str()), "{k}: {detail}");
    }
}
