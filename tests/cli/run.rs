//! `astroclip run`: a few-step run recorded in the registry, streaming from HDF5, configuration errors, exact resume, the paper preset, bad data, backends, interruption.

use std::process::{Command, Output};

use astroclip_core::survey::{self, SynthConfig, storage};

use super::common::*;

#[test]
fn few_step_train_is_recorded_in_the_registry() {
    let home = tempfile::tempdir().unwrap();
    let exp = repo().join("experiments/quickstart.toml");
    let mut args = vec!["run", exp.to_str().unwrap()];
    args.extend_from_slice(TINY);
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("zero-shot k-NN R²") && t.contains("image→spectrum") && t.contains("recall@10"), "{t}");

    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["experiment"], "quickstart");
    let id = runs[0]["id"].as_str().unwrap();

    let show = json(&run(home.path(), &["runs", "show", &id[..10], "--json"]));
    assert_eq!(show["config"]["train"]["steps"], 6);
    assert_eq!(show["config"]["data"]["synth"]["n_galaxies"], 96);
    let metrics = show["latest_metrics"].as_array().unwrap();
    let keys: Vec<&str> = metrics.iter().map(|m| m["key"].as_str().unwrap()).collect();
    for k in ["train.loss", "train.lr", "eval.r2.redshift", "eval.recall_at_1", "data.synth_galaxies_per_sec"] {
        assert!(keys.contains(&k), "missing metric {k} in {keys:?}");
    }
    // R² of redshift is recorded for all three sources.
    let r2z = metrics.iter().filter(|m| m["key"] == "eval.r2.redshift").count();
    assert_eq!(r2z, 3);
    // The last train.loss is at the last step.
    let loss = metrics.iter().find(|m| m["key"] == "train.loss").unwrap();
    assert_eq!(loss["step"], 5);
    let kinds: Vec<&str> = show["artifacts"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    for k in ["config", "checkpoint", "optimizer-state", "embeddings", "evaluation"] {
        assert!(kinds.contains(&k), "missing artifact {k} in {kinds:?}");
    }
    let params = show["params"].as_array().unwrap();
    assert!(params.iter().any(|p| p[0] == "loss.logit_scale" && p[1] == "15.5"), "{params:?}");
    let components = show["components"].as_array().unwrap();
    assert!(components.iter().any(|c| c["id"] == "specformer" && c["kind"] == "encoder"));

    let human = run(home.path(), &["runs", "list"]);
    assert!(text(&human).contains(id), "{}", text(&human));

    // Embedding diagnostics are recorded for both modalities and the pairs; the alignment
    // equals mean ‖a − b‖² of the unit test embeddings stored in the run's artifact.
    let metric = |key: &str, source: &str| {
        metrics
            .iter()
            .find(|m| m["key"] == key && m["context"] == format!("split=test,source={source}"))
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("no {key} for {source} in {metrics:?}"))
    };
    let emb = show["artifacts"].as_array().unwrap().iter().find(|a| a["kind"] == "embeddings").unwrap();
    let bytes = std::fs::read(home.path().join(emb["path"].as_str().unwrap())).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let rows = |name: &str| -> (Vec<Vec<f64>>, usize) {
        let t = st.tensor(name).unwrap();
        let d = t.shape()[1];
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        (v.chunks(d).map(|r| r.iter().map(|&x| x as f64).collect()).collect(), d)
    };
    let (img, dim) = rows("image");
    let (spec, _) = rows("spectrum");
    let is_test: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("is_test").unwrap().data());
    let unit = |v: &[f64]| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let test: Vec<usize> = (0..is_test.len()).filter(|&i| is_test[i] > 0.5).collect();
    let want: f64 = test
        .iter()
        .map(|&i| unit(&img[i]).iter().zip(unit(&spec[i])).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
        .sum::<f64>()
        / test.len() as f64;
    let got = metric("eval.alignment", "image↔spectrum");
    assert!((got - want).abs() < 1e-5, "alignment {got}, recomputed {want}");
    for source in ["image", "spectrum"] {
        let rank = metric("eval.effective_rank", source);
        assert!(rank >= 1.0 && rank <= dim as f64, "{source} effective rank {rank}");
        let u = metric("eval.uniformity", source);
        assert!((-4.0..=0.0).contains(&u), "{source} uniformity {u}");
        let (p1, p2) = (metric("eval.pca_variance.pc1", source), metric("eval.pca_variance.pc2", source));
        assert!(p1 >= p2 && p2 >= metric("eval.pca_variance.pc3", source) && p1 <= 1.0, "{source}: {p1} {p2}");
        assert!((metric("eval.pca_variance.top2", source) - (p1 + p2)).abs() < 1e-12);
    }
    let shown = text(&run(home.path(), &["runs", "show", id]));
    assert!(shown.contains("eval.effective_rank") && shown.contains("eval.alignment"), "{shown}");
}

#[test]
fn trains_streaming_from_an_astroclip_h5_file() {
    let home = tempfile::tempdir().unwrap();
    let h5 = home.path().join("survey.h5");
    let h5s = h5.to_str().unwrap();
    let out = run(home.path(), &["survey", "synth", "--n", "96", "--image-size", "64", "--out", h5s]);
    assert!(out.status.success(), "{}", text(&out));
    let inspect = run(home.path(), &["data", "inspect", h5s]);
    let t = text(&inspect);
    assert!(inspect.status.success() && t.contains("objects     96") && t.contains("3600.0–9824.0 Å"), "{t}");
    assert!(t.contains("NaN 0") && t.contains("unusable    0 objects"), "{t}");

    // The file is named in the experiment TOML, as a user would.
    let exp = home.path().join("h5.toml");
    std::fs::write(
        &exp,
        format!(
            "[experiment]\nname = \"h5\"\npreset = \"quickstart\"\n\n[data]\npath = {h5s:?}\n\n\
             [data.loader]\nmode = \"stream\"\nworkers = 2\nprefetch = 3\n"
        ),
    )
    .unwrap();
    let mut args = vec!["run", exp.to_str().unwrap()];
    args.extend_from_slice(TINY);
    let out = run(home.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let r = &runs.as_array().unwrap()[0];
    assert_eq!(r["status"], "finished");
    // The run records the file's content hash (sha256 of the file) and its format.
    let hash = t.lines().find_map(|l| l.trim().strip_prefix("sha256")).unwrap().trim().to_string();
    assert_eq!(r["data_hash"].as_str().unwrap(), hash);
    let show = json(&run(home.path(), &["runs", "show", r["id"].as_str().unwrap(), "--json"]));
    let params = show["params"].as_array().unwrap();
    assert!(params.iter().any(|p| p[0] == "data.format" && p[1] == "astroclip-h5"), "{params:?}");
    let keys: Vec<&str> =
        show["latest_metrics"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"data.wait_fraction") && keys.contains(&"eval.r2.redshift"), "{keys:?}");
}

#[test]
fn config_errors_name_key_and_source() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[train]\nbatchsize = 32\n").unwrap();
    let out = run(home.path(), &["run", unknown.to_str().unwrap()]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("batchsize") && t.contains("unknown field") && t.contains("unknown.toml"), "{t}");

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[train]\nbatch_size = \"big\"\n").unwrap();
    let t = text(&run(home.path(), &["run", wrong.to_str().unwrap()]));
    assert!(t.contains("train.batch_size") && t.contains("invalid type") && t.contains("wrong.toml"), "{t}");

    let t = text(&run(home.path(), &["run", dir.path().join("nope.toml").to_str().unwrap()]));
    assert!(t.contains("nope.toml") && t.contains("does not exist"), "{t}");

    let t = text(&run(home.path(), &["run", "--set", "train.stepz=3"]));
    assert!(t.contains("stepz") && t.contains("--set"), "{t}");

    let out = bin()
        .arg("--home")
        .arg(home.path())
        .args(["config", "show"])
        .env("ASTROCLIP_TRAIN__LR", "fast")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("train.lr") && t.contains("ASTROCLIP_"), "{t}");

    // Values that parse but cannot work are refused with the key.
    let t = text(&run(home.path(), &["config", "show", "--set", "train.log_every=0"]));
    assert!(t.contains("train.log_every") && t.contains("at least 1"), "{t}");

    // Precedence: file < environment < --set.
    let layered = dir.path().join("layered.toml");
    std::fs::write(&layered, "[train]\nsteps = 11\nbatch_size = 8\nlr = 0.5\n").unwrap();
    let out = bin()
        .args(["config", "show", layered.to_str().unwrap(), "--set", "train.lr=0.25"])
        .env("ASTROCLIP_TRAIN__STEPS", "22")
        .env("ASTROCLIP_TRAIN__LR", "0.125")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("steps = 22") && t.contains("batch_size = 8") && t.contains("lr = 0.25"), "{t}");

    // Nothing was recorded by the failed attempts.
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 0);
}

/// An interrupted run resumed from its checkpoint continues the same run and ends exactly
/// where an uninterrupted run ends (dropout off, so training is deterministic).
#[test]
fn resume_continues_the_same_run_exactly() {
    let home = tempfile::tempdir().unwrap();
    let mut base: Vec<&str> = vec!["run"];
    base.extend_from_slice(TINY);
    base.extend_from_slice(&["--set", "image.encoder.dropout=0.0", "--set", "spectrum.encoder.dropout=0.0"]);

    let full = run(home.path(), &base);
    assert!(full.status.success(), "{}", text(&full));

    let mut first = base.clone();
    first.extend_from_slice(&["--stop-after", "3"]);
    let out = run(home.path(), &first);
    let t = text(&out);
    assert!(out.status.success() && t.contains("--resume"), "{t}");
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let stopped = runs.as_array().unwrap().iter().find(|r| r["status"] == "killed").expect("stopped run").clone();
    let id = stopped["id"].as_str().unwrap();

    let resumed = run(home.path(), &["run", "--resume", id]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let show = json(&run(home.path(), &["runs", "show", id, "--json"]));
    assert_eq!(show["status"], "finished");
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 2, "resume must not create a run");
    let full_id = runs.as_array().unwrap().iter().find(|r| r["id"] != id).unwrap()["id"].as_str().unwrap().to_string();
    assert_resumed_exactly(home.path(), id, &full_id, 3);

    // The R² table of the resumed run equals the uninterrupted run's.
    let table = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("image") || l.starts_with("spectrum"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&resumed), table(&full));
    assert!(!table(&full).is_empty());
}

#[test]
fn paper_preset_builds_and_takes_a_step() {
    let home = tempfile::tempdir().unwrap();
    let exp = repo().join("experiments/paper.toml");
    let out = run(
        home.path(),
        &[
            "run",
            exp.to_str().unwrap(),
            "--set",
            "data.synth.n_galaxies=8",
            "--set",
            "data.test_fraction=0.25",
            "--set",
            "train.batch_size=2",
            "--set",
            "train.steps=1",
            "--set",
            "train.warmup_steps=1",
            "--set",
            "train.log_every=1",
            "--set",
            "eval.k=4",
            "--set",
            "eval.batch_size=4",
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let show = json(&run(home.path(), &["runs", "list", "--json"]));
    assert_eq!(show[0]["experiment"], "paper");
}

#[test]
fn bad_data_fails_clearly_and_keeps_earlier_runs() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A finished run that must survive the failures below.
    let mut args = vec!["run"];
    args.extend_from_slice(TINY);
    assert!(run(home.path(), &args).status.success());

    let mut s = survey::synthesize(&SynthConfig { n_galaxies: 40, image_size: 64, ..SynthConfig::default() }, |_| {});
    let bad_object = s.object_ids[5].clone();
    let l = s.wavelength.len();
    s.spectra[5 * l + 100] = f32::NAN;
    let nan_file = dir.path().join("nan.safetensors");
    storage::save(&s, &nan_file).unwrap();
    let set_path = format!("data.path={}", nan_file.display());
    let out = run(home.path(), &["run", "--set", &set_path, "--set", "train.batch_size=8"]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains(&bad_object) && t.contains("non-finite"), "{t}");

    let bytes = std::fs::read(&nan_file).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let set_path = format!("data.path={}", truncated.display());
    let t = text(&run(home.path(), &["run", "--set", &set_path]));
    assert!(t.contains("truncated.safetensors") && t.contains("truncated"), "{t}");

    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "finished");
}

#[cfg(not(feature = "tch"))]
#[test]
fn libtorch_device_without_the_feature_says_how_to_build() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["run", "--device", "tch-cuda:0"]);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("--features tch"), "{t}");
    let t = text(&run(home.path(), &["run", "--device", "gpu"]));
    assert!(t.contains("unknown device") && t.contains("tch-cuda:N"), "{t}");
}

/// The libtorch backend (burn-tch, CPU libtorch 2.9.0) trains and evaluates a few steps.
/// Run by `scripts/test.sh` with `--features astroclip-cli/tch`.
#[cfg(feature = "tch")]
#[test]
fn tch_backend_trains_a_few_steps() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--device", "tch"];
    args.extend_from_slice(TINY);
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("zero-shot k-NN R²"), "{t}");
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let show = json(&run(home.path(), &["runs", "show", &id, "--json"]));
    assert!(show["params"].as_array().unwrap().iter().any(|p| p[0] == "run.device" && p[1] == "tch"));
    assert_eq!(show["status"], "finished");
}

/// Ctrl-C (SIGINT) during training stops after the current step with a checkpoint; the run is
/// left `killed` with a resume hint, and its metrics up to that step are recorded.
#[test]
fn interrupt_stops_with_a_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = vec!["--home", home.path().to_str().unwrap(), "run"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--set", "train.steps=100000", "--set", "train.checkpoint_every=100000"]);
    let child =
        bin().args(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait until training has logged a loss, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "training never logged a loss");
        let runs = run(home.path(), &["runs", "list", "--json"]);
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&runs.stdout)
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first()).map(|r| r["id"].as_str().unwrap().to_string()))
        {
            let show = json(&run(home.path(), &["runs", "show", &id, "--json"]));
            if show["latest_metrics"].as_array().unwrap().iter().any(|m| m["key"] == "train.loss") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success() && t.contains("--resume"), "{t}");
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let show = json(&run(home.path(), &["runs", "show", &id, "--json"]));
    assert_eq!(show["status"], "killed");
    assert!(show["message"].as_str().unwrap().contains("--resume"));
    let artifacts = show["artifacts"].as_array().unwrap();
    assert!(artifacts.iter().any(|a| a["kind"] == "checkpoint"), "{artifacts:?}");
}

/// Outside a training loop nothing waits for a stop request, so the first SIGTERM (or Ctrl-C)
/// ends the command at once with status 130: here during survey generation (before the fix
/// the first signal was only noted and the survey went on to the end), and with a FIFO handed
/// to `data inspect`, which is refused instead of blocking the reader.
#[test]
fn the_first_signal_outside_training_exits_and_a_fifo_is_not_read() {
    let home = tempfile::tempdir().unwrap();
    let out_file = home.path().join("big.h5");
    let child = bin()
        .arg("--home")
        .arg(home.path())
        .args(["survey", "synth", "--n", "200000", "--out"])
        .arg(&out_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()).ok());
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("survey synth still running 20 s after the first SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(!out_file.exists(), "an interrupted survey must not leave a file");

    let fifo = home.path().join("pipe.fits");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let child = bin()
        .arg("--home")
        .arg(home.path())
        .args(["data", "inspect"])
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()).ok());
    let out = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("data inspect blocked on a FIFO").unwrap();
    let t = text(&out);
    assert!(!out.status.success() && t.contains("not a regular file") && t.contains("pipe.fits"), "{t}");
}

/// Command-line flags that size memory or a loop have bounds, like the experiment file's keys:
/// an out-of-range value is refused (status 2) naming the flag and the range, before any work.
#[test]
fn flags_that_size_memory_or_loops_are_bounded() {
    let home = tempfile::tempdir().unwrap();
    let out_file = home.path().join("s.h5");
    let out = out_file.to_str().unwrap();
    for (args, flag, range) in [
        (vec!["survey", "synth", "--n", "0", "--out", out], "--n", "[1, 10000000]"),
        (vec!["survey", "synth", "--image-size", "100000", "--out", out], "--image-size", "[8, 1024]"),
        (vec!["bench", "perf", "--knn-sizes", "1000,100000000000"], "--knn-sizes", "[1, 1000000]"),
        (vec!["bench", "perf", "--knn-dim", "0"], "--knn-dim", "[1, 4096]"),
        (vec!["bench", "perf", "--steps", "1000000000"], "--steps", "[1, 100000]"),
    ] {
        let o = run(home.path(), &args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(flag) && t.contains(range), "{args:?}: {t}");
    }
    assert!(!out_file.exists());
}

/// `astroclip … | head -1`: a reader that has gone away ends the command quietly with the
/// shell's SIGPIPE status (141), not with a panic message and exit 101. The pipe's read end is
/// closed before the command starts, so every write fails.
#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    let home = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin().arg("--home").arg(home.path()).args(["config", "show"]).stdout(writer).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
