//! End-to-end tests that drive the `astroclip` binary: a few-step training run recorded in
//! the registry, configuration errors, resume from a checkpoint, the paper preset, bad data.
//!
//! Every test works in its own temporary directory (registry and runs under `--home`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use astroclip_core::survey::{self, SynthConfig, storage};

mod common;
use common::*;

/// `run` against a given registry (`--registry`: a PostgreSQL URL) instead of `<home>/registry.db`.
fn runr(home: &Path, registry: Option<&str>, args: &[&str]) -> Output {
    let mut c = bin();
    c.arg("--home").arg(home);
    if let Some(r) = registry {
        c.arg("--registry").arg(r);
    }
    c.args(args).output().expect("spawn astroclip")
}

/// The registries a registry test runs against: the default SQLite file, and a fresh database
/// on the PostgreSQL server named by `ASTROCLIP_TEST_POSTGRES` (an admin URL; `scripts/test.sh`
/// starts Debian's PostgreSQL on loopback). `ASTROCLIP_REQUIRE_POSTGRES=1` makes its absence
/// a failure.
fn registries() -> Vec<Option<String>> {
    let mut out = vec![None];
    match std::env::var("ASTROCLIP_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("cli_{}", uuid_like());
            out.push(Some(astroclip_registry::create_postgres_database(&admin, &name).unwrap()));
        }
        _ => assert!(
            std::env::var("ASTROCLIP_REQUIRE_POSTGRES").is_err(),
            "ASTROCLIP_REQUIRE_POSTGRES is set but ASTROCLIP_TEST_POSTGRES is not"
        ),
    }
    out
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{t}", std::process::id())
}

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

/// The image-only MoCo v2 baseline (`objective.kind = "moco-v2"`): a few real steps on the
/// same data and encoder, the image R² row recorded under the same metric keys as an AstroCLIP
/// run (so `runs list`/`diff` compare them), no spectrum or retrieval rows, and a stop + resume
/// (encoders, optimizer and queue from the checkpoint) that ends exactly where an uninterrupted
/// run ends.
#[test]
fn moco_v2_baseline_trains_and_resumes_exactly() {
    let home = tempfile::tempdir().unwrap();
    let mut base: Vec<&str> = vec!["run"];
    base.extend_from_slice(TINY);
    base.extend_from_slice(&[
        "--set",
        "image.encoder.dropout=0.0",
        "--set",
        "spectrum.encoder.dropout=0.0",
        "--set",
        "objective.kind=moco-v2",
        "--set",
        "objective.queue_size=40",
        "--set",
        "experiment.name=moco",
    ]);
    let full = run(home.path(), &base);
    let t = text(&full);
    assert!(full.status.success(), "{t}");
    assert!(t.contains("image ") && !t.contains("spectrum ") && !t.contains("retrieval"), "{t}");

    let mut first = base.clone();
    first.extend_from_slice(&["--stop-after", "3"]);
    assert!(run(home.path(), &first).status.success());
    let runs = json(&run(home.path(), &["runs", "list", "--json", "--where", "status = killed"]));
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let arts = json(&run(home.path(), &["runs", "artifacts", &id, "--json"]));
    assert!(arts.as_array().unwrap().iter().any(|a| a["kind"] == "moco-queue"), "{arts}");
    let resumed = run(home.path(), &["run", "--resume", &id]);
    assert!(resumed.status.success(), "{}", text(&resumed));

    let rows = json(&run(
        home.path(),
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "params.objective.kind = moco-v2 and metrics.eval.r2.redshift[source=image] > -10",
            "--order",
            "metrics.train.loss",
        ],
    ));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let field = |r: &serde_json::Value, name: &str| {
        r["fields"].as_array().unwrap().iter().find(|f| f[0] == name).unwrap()[1].as_str().unwrap().to_string()
    };
    // Same final loss and the same R² to the last digit.
    for f in ["metrics.train.loss", "metrics.eval.r2.redshift[source=image]"] {
        assert_eq!(field(&rows[0], f), field(&rows[1], f), "{f}: {rows:?}");
    }
    let none = json(&run(
        home.path(),
        &["runs", "list", "--json", "--where", "metrics.eval.r2.redshift[source=spectrum] > -10"],
    ));
    assert!(none.as_array().unwrap().is_empty());
    // A bad objective names the key.
    let out = run(home.path(), &["run", "--set", "objective.kind=simclr"]);
    assert!(!out.status.success() && text(&out).contains("objective.kind"), "{}", text(&out));
}

/// A supervised baseline and SpecFormer masked pre-training, each stopped after 3 steps and
/// resumed, end exactly like uninterrupted runs (same held-out R²; the masks are a function of
/// the step); a two-stage run refuses a start run of the wrong kind; photometry needs
/// photometry.
#[test]
fn supervised_and_masked_runs_resume_exactly_and_bad_starts_are_refused() {
    let home = tempfile::tempdir().unwrap();
    for (kind, metric) in [
        ("supervised-spectrum", "metrics.eval.supervised_r2.redshift[source=spectrum]"),
        ("specformer-masked", "metrics.eval.r2.redshift[source=spectrum]"),
    ] {
        let kind_set = format!("objective.kind={kind}");
        let mut base: Vec<&str> = vec!["run"];
        base.extend_from_slice(TINY);
        base.extend_from_slice(&[
            "--set",
            "image.encoder.dropout=0.0",
            "--set",
            "spectrum.encoder.dropout=0.0",
            "--set",
            &kind_set,
        ]);
        let full = run(home.path(), &base);
        let t = text(&full);
        assert!(full.status.success() && t.contains("spectrum "), "{t}");
        let mut first = base.clone();
        first.extend_from_slice(&["--stop-after", "3"]);
        assert!(run(home.path(), &first).status.success());
        let runs = json(&run(home.path(), &["runs", "list", "--json", "--where", "status = killed"]));
        let id = runs[0]["id"].as_str().unwrap().to_string();
        let resumed = run(home.path(), &["run", "--resume", &id]);
        assert!(resumed.status.success(), "{}", text(&resumed));
        let filter = format!("params.objective.kind = {kind} and {metric} > -100");
        let rows = json(&run(home.path(), &["runs", "list", "--json", "--where", &filter]));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{kind}: {rows:?}");
        let r2 = |r: &serde_json::Value| r["fields"][1][1].as_str().unwrap().to_string();
        assert_eq!(r2(&rows[0]), r2(&rows[1]), "{kind}: {rows:?}");
    }
    // A masked-modelling run is no image start: the key, the run and the needed kind are named.
    let masked =
        json(&run(home.path(), &["runs", "list", "--json", "--where", "params.objective.kind = specformer-masked"]));
    let init = format!("objective.init_image={}", masked[0]["id"].as_str().unwrap());
    let mut args: Vec<&str> = vec!["run"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--set", &init]);
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("objective.init_image") && t.contains("\"moco-v2\" run"), "{t}");

    // An HDF5 file without photometry: the photometry baseline says what it needs.
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("s.h5");
    let out = run(home.path(), &["survey", "synth", "--n", "64", "--seed", "3", "--out", h5.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut args: Vec<&str> = vec!["run"];
    args.extend_from_slice(TINY);
    let path = format!("data.path={}", h5.display());
    args.extend_from_slice(&["--set", &path, "--set", "objective.kind=supervised-photometry"]);
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("needs broad-band photometry") && t.contains("s.h5"), "{t}");
}

/// `astroclip bench`: both models of a tiny suite are trained once, reused the second time
/// (same configuration), and the table has AstroCLIP's three rows and MoCo's image row with
/// the R² recorded in each model's run; the table is saved and recorded as a run.
#[test]
fn bench_suite_trains_then_reuses_and_prints_the_table() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared: Vec<String> = TINY.chunks(2).map(|kv| format!("{:?}", kv[1])).collect();
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            "[bench]\nname = \"tiny-bench\"\nset = [{}]\n\n[[model]]\nname = \"AstroCLIP\"\n\n\
             [[model]]\nname = \"MoCo v2\"\nset = [\"objective.kind=moco-v2\", \"objective.queue_size=32\"]\n\n\
             [[model]]\nname = \"Supervised\"\nset = [\"objective.kind=supervised-image\"]\n\n\
             [[model]]\nname = \"Supervised spectrum\"\nset = [\"objective.kind=supervised-spectrum\"]\n\n\
             [[model]]\nname = \"Photometry MLP\"\nset = [\"objective.kind=supervised-photometry\"]\n\n\
             [[model]]\nname = \"SpecFormer (masked)\"\nset = [\"objective.kind=specformer-masked\"]\n\n\
             [[model]]\nname = \"Two-stage\"\nset = [\"objective.init_image=@MoCo v2\", \
             \"objective.init_spectrum=@SpecFormer (masked)\", \"objective.freeze_backbones=true\"]\n",
            shared.join(", ")
        ),
    )
    .unwrap();
    let first = run(home.path(), &["bench", suite.to_str().unwrap()]);
    let t = text(&first);
    assert!(first.status.success(), "{t}");
    assert!(t.contains("AstroCLIP: training") && t.contains("MoCo v2: training"), "{t}");
    let lines: Vec<&str> =
        t.lines().filter(|l| ["| image", "| spectrum", "| photometry"].iter().any(|p| l.starts_with(p))).collect();
    // image: AstroCLIP, MoCo, two-stage × (zero-shot, few-shot) + supervised; spectrum:
    // AstroCLIP, masked SpecFormer, two-stage × (zero-shot, few-shot) + supervised;
    // photometry: supervised; image→spectrum: AstroCLIP, two-stage.
    assert_eq!(lines.len(), 17, "{t}");
    assert_eq!(lines.iter().filter(|l| l.contains("few-shot (MLP)")).count(), 6, "{t}");
    assert!(lines[0].starts_with("| image | AstroCLIP |") && lines[1].starts_with("| image | MoCo v2 |"), "{t}");
    assert!(lines[2].starts_with("| image | Two-stage | zero-shot"), "{t}");
    assert!(lines[6].starts_with("| image | Supervised | supervised |"), "{t}");
    assert!(lines[8].starts_with("| spectrum | SpecFormer (masked) | zero-shot"), "{t}");
    assert!(lines[11].starts_with("| spectrum | SpecFormer (masked) | few-shot"), "{t}");
    assert!(lines[13].starts_with("| spectrum | Supervised spectrum | supervised |"), "{t}");
    assert!(lines[14].starts_with("| photometry | Photometry MLP | supervised |"), "{t}");
    assert!(lines[15].starts_with("| image→spectrum | AstroCLIP |"), "{t}");
    assert!(lines[16].starts_with("| image→spectrum | Two-stage |"), "{t}");
    // The two-stage run records the runs it started from (the suite's MoCo and masked runs).
    let two =
        json(&run(home.path(), &["runs", "list", "--json", "--where", "params.objective.freeze_backbones = true"]));
    let two_id = two[0]["id"].as_str().unwrap().to_string();
    let shown = json(&run(home.path(), &["runs", "show", &two_id, "--json"]));
    let mocos = json(&run(home.path(), &["runs", "list", "--json", "--where", "params.objective.kind = moco-v2"]));
    let masked =
        json(&run(home.path(), &["runs", "list", "--json", "--where", "params.objective.kind = specformer-masked"]));
    let params = shown["params"].to_string();
    assert!(params.contains(mocos[0]["id"].as_str().unwrap()), "{params}");
    assert!(params.contains(masked[0]["id"].as_str().unwrap()), "{params}");
    assert!(params.contains("init.spectrum.sha256") && params.contains("init.frozen"), "{params}");
    // The supervised cell is the R² of the run's own predictions, as recorded.
    let sup = json(&run(
        home.path(),
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "params.objective.kind = supervised-image and metrics.eval.supervised_r2.redshift > -100",
        ],
    ));
    let r2: f64 = sup[0]["fields"][1][1].as_str().unwrap().parse().unwrap();
    let cell: f64 = lines[6].split('|').nth(4).unwrap().trim().parse().unwrap();
    assert!((r2 - cell).abs() < 0.0005, "{r2} vs {cell}");
    // The MoCo row's redshift R² is the one recorded in its run.
    let moco = json(&run(
        home.path(),
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "params.objective.kind = moco-v2 and metrics.eval.r2.redshift[source=image] > -100",
        ],
    ));
    let r2: f64 = moco[0]["fields"][1][1].as_str().unwrap().parse().unwrap();
    let cell: f64 = lines[1].split('|').nth(4).unwrap().trim().parse().unwrap();
    assert!((r2 - cell).abs() < 0.0005, "{r2} vs {cell}");
    // Retrieval: only AstroCLIP has both modalities; its recall@1 is the one its run recorded.
    let retrieval: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("Cross-modal retrieval")).collect();
    assert!(retrieval.iter().any(|l| l.starts_with("| model | recall@1 |")), "{t}");
    let clip_row = retrieval.iter().find(|l| l.starts_with("| AstroCLIP |")).unwrap_or_else(|| panic!("{t}"));
    assert!(!retrieval.iter().any(|l| l.starts_with("| MoCo")), "{t}");
    let clip = json(&run(
        home.path(),
        &["runs", "list", "--json", "--where", "params.objective.kind = clip and metrics.eval.recall_at_1 > -1"],
    ));
    let rec: f64 = clip[0]["fields"][1][1].as_str().unwrap().parse().unwrap();
    let cell: f64 = clip_row.split('|').nth(2).unwrap().trim().parse().unwrap();
    assert!((rec - cell).abs() < 0.0005, "{rec} vs {cell}");

    let second = run(home.path(), &["bench", suite.to_str().unwrap()]);
    let t2 = text(&second);
    assert!(second.status.success() && t2.matches("reusing run").count() == 7 && !t2.contains("training ("), "{t2}");
    assert!(home.path().join("bench/tiny-bench.md").is_file() && home.path().join("bench/tiny-bench.html").is_file());
    let tables = json(&run(home.path(), &["runs", "list", "--json", "--where", "experiment = tiny-bench-table"]));
    assert_eq!(tables.as_array().unwrap().len(), 2, "each invocation records its table");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[bench]\nname = \"x\"\nmodels = 3\n").unwrap();
    let out = run(home.path(), &["bench", bad.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("bad.toml"), "{}", text(&out));
}

/// `astroclip bench perf` times the training step and the k-NN probe and prints the table; the
/// k-NN rows are checked against scikit-learn on the same embeddings when a Python with
/// scikit-learn is named by `ASTROCLIP_BENCH_PYTHON` (`scripts/test.sh` names MLflow's venv,
/// and sets `ASTROCLIP_REQUIRE_SKLEARN=1` so that its absence fails). A reference that cannot
/// run is reported in the table, not skipped silently.
#[test]
fn bench_perf_times_step_and_knn_against_references() {
    let home = tempfile::tempdir().unwrap();
    let quick = ["bench", "perf", "--steps", "1", "--warmup", "0", "--embed-reps", "1", "--knn-reps", "1"];
    let python = std::env::var("ASTROCLIP_BENCH_PYTHON").ok();
    assert!(
        python.is_some() || std::env::var("ASTROCLIP_REQUIRE_SKLEARN").is_err(),
        "ASTROCLIP_REQUIRE_SKLEARN is set but ASTROCLIP_BENCH_PYTHON is not"
    );
    if let Some(py) = &python {
        let mut args = quick.to_vec();
        args.extend(["--knn-sizes", "300,1200", "--python", py]);
        let out = run(home.path(), &args);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("| quickstart | astroclip (flex) | 548976 | 64 |"), "{t}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(home.path().join("bench/perf.json")).unwrap()).unwrap();
        for row in report["knn"].as_array().unwrap() {
            let diff = row["max_abs_diff"].as_f64().unwrap_or_else(|| panic!("scikit-learn did not run: {t}"));
            assert!(diff < 1e-5, "k-NN predictions differ from scikit-learn's by {diff}: {t}");
            assert!((row["r2_ours"].as_f64().unwrap() - row["r2_sklearn"].as_f64().unwrap()).abs() < 1e-6, "{t}");
        }
        // Where torch is importable the PyTorch model must be the same model.
        if let Some(torch) =
            report["steps"].as_array().unwrap().iter().find(|r| r["backend"].as_str().unwrap().starts_with("PyTorch"))
        {
            assert_eq!(torch["params"], report["steps"][0]["params"], "{t}");
        } else {
            assert!(t.contains("reference not run — PyTorch (quickstart)"), "{t}");
        }
    }
    let mut args = quick.to_vec();
    args.extend(["--knn-sizes", "200", "--python", "/nonexistent/python"]);
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("reference not run — PyTorch") && t.contains("cannot start /nonexistent/python"), "{t}");
    assert!(t.contains("scripts/setup-bench.sh") && t.contains("| 200 / 50 |"), "{t}");
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
/// Run by `scripts/test.sh` with `--features astroclip-core/tch`.
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

#[test]
fn plugins_add_verify_list_refuse_a_tampered_entry() {
    use sha2::{Digest, Sha256};
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("p.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let manifest = |sha: &str| {
        format!(
            "[plugin]\nid = \"photometry\"\nversion = \"0.1.0\"\napi_version = \"1.0.0\"\nkinds = [\"tokenizer\"]\n\
             modality = \"photometry\"\n\n[entry]\ncarrier = \"wasm\"\nfile = \"p.wasm\"\nsha256 = \"{sha}\"\n"
        )
    };
    std::fs::write(src.join("plugin.toml"), manifest(&"ab".repeat(32))).unwrap();
    let s = src.to_str().unwrap();
    let out = run(home.path(), &["plugins", "add", s]);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("photometry 0.1.0") && t.contains("sha256"), "{t}");
    assert!(text(&run(home.path(), &["plugins", "list"])).contains("no plugins installed"));

    std::fs::write(src.join("plugin.toml"), manifest(&hex::encode(Sha256::digest(b"\0asm\x01\0\0\0")))).unwrap();
    let out = run(home.path(), &["plugins", "verify", s]);
    assert!(out.status.success() && text(&out).contains("entry p.wasm sha256 ok"), "{}", text(&out));
    assert!(run(home.path(), &["plugins", "add", s]).status.success());
    let rows = json(&run(home.path(), &["plugins", "list", "--json"]));
    assert_eq!(rows[0]["id"], "photometry");
    assert_eq!(rows[0]["status"], "ok");
    assert!(run(home.path(), &["plugins", "verify", "photometry"]).status.success());
}

#[test]
fn plugins_verify_handshakes_a_native_plugin() {
    use sha2::{Digest, Sha256};
    let target = repo().join("target/plugin-examples");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(repo().join("plugins/examples/band-fluxes/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("band-fluxes");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = std::fs::read(target.join("debug/libastroclip_plugin_band_fluxes.so")).unwrap();
    std::fs::write(dir.join("band_fluxes.so"), &lib).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "[plugin]\nid = \"band-fluxes\"\nversion = \"0.1.0\"\napi_version = \"{}\"\nkinds = [\"tokenizer\"]\n\
             modality = \"image\"\n\n[entry]\ncarrier = \"native\"\nfile = \"band_fluxes.so\"\nsha256 = \"{}\"\n",
            astroclip_plugin_sdk::INTERFACE_VERSION,
            hex::encode(Sha256::digest(&lib))
        ),
    )
    .unwrap();
    let out = run(home.path(), &["plugins", "verify", dir.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success() && t.contains("tokenizer band-fluxes (modality image)"), "{t}");
}

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

#[test]
fn conformance_kit_passes_builtins_and_catches_a_broken_plugin() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["plugins", "test", "builtin"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for c in [
        "tokenizer legacy-survey-rgb",
        "tokenizer specformer-tokens",
        "encoder resnet",
        "encoder specformer",
        "loss infonce",
        "probe knn",
    ] {
        assert!(t.contains(c), "{c} missing: {t}");
    }
    assert!(t.contains(" 0 failed"), "{t}");
    // tensor-zoo holds a well-behaved encoder and two that break the rules.
    let out = Command::new("bash").arg(repo().join("scripts/build-plugins.sh")).arg("tensor-zoo").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let zoo = repo().join("target/plugins/tensor-zoo");
    let out = run(home.path(), &["plugins", "test", zoo.to_str().unwrap()]);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("does not pass the conformance kit"), "{t}");
    let line = |enc: &str, check: &str| {
        t.lines()
            .find(|l| l.contains(enc) && l.contains(check))
            .unwrap_or_else(|| panic!("{enc} {check}: {t}"))
            .to_string()
    };
    assert!(line("tensor-zoo/mlp", "gradient reaches every parameter").starts_with("ok"), "{t}");
    assert!(line("tensor-zoo/changing", "deterministic").starts_with("FAIL"), "{t}");
    assert!(line("bad-shapes", "builds").starts_with("FAIL") && t.contains("matmul: shapes"), "{t}");
    assert!(line("loss tensor-zoo/infonce", "matched < shuffled").starts_with("ok"), "{t}");
    // A probe from a plugin passes the same probe checks as the built-in k-NN.
    let out = Command::new("bash").arg(repo().join("scripts/build-plugins.sh")).arg("ridge-probe").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run(home.path(), &["plugins", "test", repo().join("target/plugins/ridge-probe").to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success() && t.contains("probe ridge-probe/ridge") && t.contains(" 0 failed"), "{t}");
}

#[test]
fn plugins_new_creates_a_native_plugin_that_passes_the_kit_and_installs() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let out =
        run(&home, &["plugins", "new", "my-bands", "--dir", work.path().to_str().unwrap(), "--modality", "photometry"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = work.path().join("my-bands");
    let out = Command::new("bash").arg(dir.join("build.sh")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dist = dir.join("dist");
    let out = run(&home, &["plugins", "test", dist.to_str().unwrap()]);
    let t = text(&out);
    assert!(
        out.status.success()
            && t.contains("tokenizer features")
            && t.contains("encoder my-bands/mlp")
            && t.contains(" 0 failed"),
        "{t}"
    );
    let out = run(&home, &["plugins", "add", dist.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&home, &["plugins", "test", "my-bands"]);
    assert!(out.status.success(), "{}", text(&out));
    // The same id again is refused by name; a bad id is refused.
    let out = run(&home, &["plugins", "new", "my-bands", "--dir", work.path().to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("already exists"), "{}", text(&out));
    let out = run(&home, &["plugins", "new", "My_Bands", "--dir", work.path().to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("^[a-z0-9-]+$"), "{}", text(&out));
}

/// docs/plugins.md's tutorial, run as written: every ```bash block preceded by
/// `<!-- doc-test -->`, in order, in one fresh directory, with `astroclip` on PATH.
#[test]
fn docs_plugins_tutorial_runs() {
    let doc = std::fs::read_to_string(repo().join("docs/plugins.md")).unwrap();
    let mut script = String::from("set -euo pipefail\n");
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(i) = rest.find("<!-- doc-test -->\n```bash\n") {
        let body = &rest[i + "<!-- doc-test -->\n```bash\n".len()..];
        let end = body.find("\n```\n").expect("unterminated block");
        script.push_str(&body[..end]);
        script.push('\n');
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 4, "only {blocks} tested blocks in docs/plugins.md");
    let work = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_astroclip")).parent().unwrap();
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("ASTROCLIP_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("ASTROCLIP_HOME", work.path().join("home"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "the tutorial failed:\n{t}");
    assert!(t.contains("15 checks, 0 failed") && t.contains("installed my-photometry 0.1.0"), "{t}");
    assert!(t.contains("photometry→image") && t.contains("bind-my-photometry"), "{t}");
}

/// Comparing real (tiny) training runs: --where / --order over params, metrics and tags,
/// tags and notes, soft delete and restore, and diff.
#[test]
fn runs_can_be_queried_tagged_compared_and_soft_deleted() {
    for reg in registries() {
        query_tag_diff_soft_delete(reg.as_deref());
    }
}

fn query_tag_diff_soft_delete(reg: Option<&str>) {
    let home = tempfile::tempdir().unwrap();
    let train = |scale: &str| {
        let mut args = vec!["run"];
        args.extend_from_slice(TINY);
        let set = format!("loss.logit_scale={scale}");
        args.extend_from_slice(&["--set", &set]);
        let out = runr(home.path(), reg, &args);
        assert!(out.status.success(), "{}", text(&out));
    };
    train("10.0");
    train("15.5");
    let all = json(&runr(home.path(), reg, &["runs", "list", "--json"]));
    let id_of = |scale: &str| -> String {
        let rows = json(&runr(
            home.path(),
            reg,
            &["runs", "list", "--json", "--where", &format!("params.loss.logit_scale = {scale}")],
        ));
        assert_eq!(
            rows.as_array().unwrap().len(),
            1,
            "{rows} {}",
            text(&runr(home.path(), reg, &["runs", "list", "--where", &format!("params.loss.logit_scale = {scale}")]))
        );
        rows[0]["id"].as_str().unwrap().to_string()
    };
    let (a, b) = (id_of("10.0"), id_of("15.5"));
    assert_ne!(a, b);
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Order by the final training loss, both directions; the column shows the values.
    let asc = json(&runr(
        home.path(),
        reg,
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "metrics.train.loss > 0 and status = finished",
            "--order",
            "metrics.train.loss",
        ],
    ));
    let losses: Vec<f64> =
        asc.as_array().unwrap().iter().map(|r| r["fields"][0][1].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(losses.len(), 2);
    assert!(losses[0] <= losses[1], "{asc}");
    let desc = json(&runr(home.path(), reg, &["runs", "list", "--json", "--order", "-metrics.train.loss"]));
    assert_eq!(desc[0]["id"], asc[1]["id"]);
    let table =
        text(&runr(home.path(), reg, &["runs", "list", "--where", "metrics.eval.r2.redshift[source=image] > -100"]));
    assert!(
        table.contains("metrics.eval.r2.redshift[source=image]") && table.contains(&a) && table.contains(&b),
        "{table}"
    );

    // Tags and notes.
    assert!(runr(home.path(), reg, &["runs", "tag", &a[..8], "team=vision", "stage=baseline"]).status.success());
    assert!(runr(home.path(), reg, &["runs", "note", &a[..8], "fixed scale 10 as an ablation"]).status.success());
    let tagged = json(&runr(home.path(), reg, &["runs", "list", "--json", "--where", "tags.team = vision"]));
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["id"], a.as_str());
    let shown = text(&runr(home.path(), reg, &["runs", "show", &a]));
    assert!(shown.contains("note       fixed scale 10 as an ablation") && shown.contains("tag team"), "{shown}");
    let out = runr(home.path(), reg, &["runs", "tag", &a, "no-equals-sign"]);
    assert!(!out.status.success() && text(&out).contains("not key=value"));

    // Diff: only what differs, unless --all.
    let d = text(&runr(home.path(), reg, &["runs", "diff", &a, &b]));
    assert!(d.contains("loss.logit_scale") && d.contains("10.0") && d.contains("15.5"), "{d}");
    assert!(!d.contains("train.batch_size") && d.contains("identical params hidden"), "{d}");
    assert!(d.contains("train.loss") && d.contains("best (lower is better)") && d.contains("data hash"), "{d}");
    let d = text(&runr(home.path(), reg, &["runs", "diff", &a, &b, "--all"]));
    assert!(d.contains("train.batch_size"), "{d}");
    let dj = json(&runr(home.path(), reg, &["runs", "diff", &a, &b, "--json"]));
    assert_eq!(dj["params"].as_array().unwrap().len(), 1, "{dj}");

    // Soft delete and restore: nothing is lost.
    assert!(runr(home.path(), reg, &["runs", "rm", &a]).status.success());
    let left = json(&runr(home.path(), reg, &["runs", "list", "--json"]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    let gone = json(&runr(home.path(), reg, &["runs", "list", "--json", "--deleted"]));
    assert_eq!(gone[0]["id"], a.as_str());
    assert!(text(&runr(home.path(), reg, &["runs", "show", &a])).contains("deleted"));
    assert!(runr(home.path(), reg, &["runs", "restore", &a]).status.success());
    assert_eq!(json(&runr(home.path(), reg, &["runs", "list", "--json"])).as_array().unwrap().len(), 2);

    // Artifacts: each listed with kind, size and sha256, re-hashed.
    let arts = json(&runr(home.path(), reg, &["runs", "artifacts", &b, "--json"]));
    let kinds: Vec<&str> = arts.as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    for k in ["config", "checkpoint", "embeddings", "evaluation"] {
        assert!(kinds.contains(&k), "{k} missing: {arts}");
    }
    assert!(arts.as_array().unwrap().iter().all(|a| a["state"] == "ok"), "{arts}");
    let emb = arts.as_array().unwrap().iter().find(|a| a["kind"] == "embeddings").unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&emb, b"tampered").unwrap();
    let listing = text(&runr(home.path(), reg, &["runs", "artifacts", &b]));
    assert!(listing.lines().any(|l| l.starts_with("embeddings") && l.contains("changed")), "{listing}");

    // A bad query names the problem.
    let out = runr(home.path(), reg, &["runs", "list", "--where", "parms.x = 1"]);
    assert!(!out.status.success() && text(&out).contains("unknown field `parms.x`"), "{}", text(&out));
}

/// Four processes log metric batches into one registry at once; one is killed with SIGKILL
/// mid-run. Every batch a writer reported committed is there, whole (no partial batch), the
/// others are complete, and the killed run is found and marked `killed` (resumable).
#[test]
fn four_concurrent_writers_and_a_kill_9_lose_no_committed_rows() {
    for reg in registries() {
        concurrent_writers_and_kill_9(reg.as_deref());
    }
}

fn concurrent_writers_and_kill_9(reg: Option<&str>) {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    // Create the registry first so the writers race on logging, not on the first migration.
    assert!(runr(home.path(), reg, &["runs", "list"]).status.success());
    let (batches, batch) = (150usize, 100usize);
    let spawn = || {
        bin()
            .arg("--home")
            .arg(home.path())
            .args(reg.iter().flat_map(|r| ["--registry", *r]))
            .args([
                "runs",
                "stress-writer",
                "--batches",
                &batches.to_string(),
                "--batch",
                &batch.to_string(),
                "--pause-ms",
                "2",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<_> = (0..4).map(|_| spawn()).collect();
    // Watch writer 0 and kill it once it has committed some batches.
    let mut victim = children.remove(0);
    let mut lines = BufReader::new(victim.stdout.take().unwrap()).lines();
    let victim_run = lines.next().unwrap().unwrap().trim_start_matches("run ").to_string();
    let mut reported = 0usize;
    for line in lines.by_ref() {
        reported = line.unwrap().trim_start_matches("committed ").parse().unwrap();
        if reported >= 20 * batch {
            break;
        }
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // `runs list` notices the dead writer and marks its run killed.
    let out = runr(home.path(), reg, &["runs", "list", "--json", "--where", "experiment = stress"]);
    assert!(text(&out).contains("marked `killed`"), "{}", text(&out));
    let counts = json(&runr(
        home.path(),
        reg,
        &["runs", "list", "--json", "--where", "experiment = stress", "--order", "metrics.stress.value.count"],
    ));
    let field = |r: &serde_json::Value, name: &str| -> f64 {
        let f =
            r["fields"].as_array().unwrap().iter().find(|f| f[0] == name).unwrap_or_else(|| panic!("{name} in {r}"));
        f[1].as_str().unwrap().parse().unwrap()
    };
    let rows = counts.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let n = field(r, "metrics.stress.value.count") as usize;
        if r["id"] == victim_run.as_str() {
            assert_eq!(r["status"], "killed", "{r}");
            assert!(
                n >= reported && n.is_multiple_of(batch),
                "killed writer: {n} rows in the registry, {reported} reported committed"
            );
        } else {
            assert_eq!(r["status"], "finished", "{r}");
            assert_eq!(n, batches * batch, "{r}");
        }
    }
    // No row lost or duplicated: the values of every run are 0..n-1.
    let maxes = json(&runr(
        home.path(),
        reg,
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "experiment = stress and metrics.stress.value.min = 0",
            "--order",
            "metrics.stress.value.max",
        ],
    ));
    for (r, c) in maxes.as_array().unwrap().iter().zip(rows) {
        assert_eq!(r["id"], c["id"]);
        assert_eq!(
            field(r, "metrics.stress.value.max") as usize + 1,
            field(c, "metrics.stress.value.count") as usize,
            "{r} vs {c}"
        );
    }
    let shown = text(&runr(home.path(), reg, &["runs", "show", &victim_run]));
    assert!(shown.contains("--resume"), "{shown}");
}

/// `runs plot` overlays a metric of real runs as SVG and PNG; the PNG is decoded here and
/// holds pixels of each run's curve colour.
#[test]
fn runs_plot_writes_svg_and_png_with_one_curve_per_run() {
    use std::io::Read;
    let home = tempfile::tempdir().unwrap();
    for scale in ["10.0", "15.5"] {
        let mut args = vec!["run"];
        args.extend_from_slice(TINY);
        let set = format!("loss.logit_scale={scale}");
        args.extend_from_slice(&["--set", &set]);
        assert!(run(home.path(), &args).status.success());
    }
    let runs = json(&run(home.path(), &["runs", "list", "--json"]));
    let ids: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    let stem = home.path().join("out/loss");
    let out =
        run(home.path(), &["runs", "plot", ids[0], ids[1], "--metric", "train.loss", "--out", stem.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("class=\"series\"").count() == 2, "{svg}");
    assert!(svg.contains(&ids[0][..8]) && svg.contains(&ids[1][..8]));
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()) as usize,
        u32::from_be_bytes(png[20..24].try_into().unwrap()) as usize,
    );
    // Walk the chunks, inflate IDAT, count pixels of the two first palette colours.
    let (mut i, mut idat) = (8, Vec::new());
    while i < png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        if &png[i + 4..i + 8] == b"IDAT" {
            idat.extend_from_slice(&png[i + 8..i + 8 + len]);
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    assert_eq!(raw.len(), h * (w * 3 + 1));
    let count = |rgb: [u8; 3]| raw.chunks(w * 3 + 1).flat_map(|row| row[1..].chunks(3)).filter(|p| *p == rgb).count();
    assert!(count([31, 119, 180]) > 50 && count([255, 127, 14]) > 50, "curve pixels missing");
    // Context parts select a series; an unknown metric is refused by name.
    let out = run(
        home.path(),
        &["runs", "plot", ids[0], "--metric", "eval.r2.redshift[source=image]", "--out", stem.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(home.path(), &["runs", "plot", ids[0], "--metric", "nope.metric"]);
    assert!(!out.status.success() && text(&out).contains("no \"nope.metric\" values"), "{}", text(&out));
}

/// `runs report` writes one static page; headless Chromium (Debian `chromium`, installed by
/// scripts/test.sh) loads it without script errors, every plot curve is there, every cutout
/// image decodes and the embedding map has its points. Without Chromium the browser half is
/// skipped unless ASTROCLIP_REQUIRE_CHROMIUM=1 (set by scripts/test.sh when it installed it).
#[test]
fn runs_report_renders_in_headless_chromium() {
    let home = tempfile::tempdir().unwrap();
    for scale in ["10.0", "15.5"] {
        let mut args = vec!["run"];
        args.extend_from_slice(TINY);
        let set = format!("loss.logit_scale={scale}");
        args.extend_from_slice(&["--set", &set]);
        assert!(run(home.path(), &args).status.success());
    }
    let page = home.path().join("report.html");
    let out = run(home.path(), &["runs", "report", "quickstart", "--out", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in
        ["id=\"runs\"", "id=\"diff\"", "id=\"r2\"", "id=\"embedding-map\"", "class=\"cutout\"", "class=\"spectrum\""]
    {
        assert!(html.contains(part), "{part} missing");
    }
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(chromium) = chromium else {
        assert!(std::env::var("ASTROCLIP_REQUIRE_CHROMIUM").is_err(), "chromium is required but not found");
        eprintln!("chromium not installed: browser check skipped");
        return;
    };
    let out = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let (dom, log) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("Uncaught") && !log.lines().any(|l| l.contains("CONSOLE") && l.contains("Error")), "{log}");
    let attr = |name: &str| -> usize {
        let key = format!("{name}=\"");
        let at = dom
            .find(&key)
            .unwrap_or_else(|| panic!("{name} not set: the page script did not run\n{}", &dom[..dom.len().min(2000)]));
        dom[at + key.len()..].split('"').next().unwrap().parse().unwrap()
    };
    assert_eq!(attr("data-svg-plots"), 4, "two curves in each of two plots");
    assert_eq!(attr("data-broken-images"), 0);
    assert!(attr("data-images") >= 1 && attr("data-map-points") >= 10);
}
