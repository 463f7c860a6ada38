//! MLflow round trip: two short real training runs (the `astroclip` binary), exported with
//! `astroclip runs export mlflow` into a real `mlflow server` on 127.0.0.1, read back by
//! MLflow's own Python client (`tests/read_back.py`: `mlflow.search_runs`,
//! `MlflowClient().get_metric_history`, artifact download) and compared value by value; then
//! a second export sends nothing, and after new rows a third sends exactly those.
//!
//! Needs `ASTROCLIP_MLFLOW_PYTHON` (a Python with mlflow: `eval "$(scripts/setup-mlflow.sh)"`)
//! and the `astroclip` binary (`cargo build -p astroclip-core`; `ASTROCLIP_BIN` overrides its
//! path). `scripts/test.sh` provides both and sets `ASTROCLIP_REQUIRE_MLFLOW=1`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use astroclip_mlflow::{mlflow_key, mlflow_params, mlflow_tags};
use astroclip_registry::{Metric, Registry};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn astroclip(home: &Path, args: &[&str]) -> Output {
    let bin =
        std::env::var("ASTROCLIP_BIN").map(PathBuf::from).unwrap_or_else(|_| repo().join("target/debug/astroclip"));
    assert!(bin.is_file(), "{} missing: build it first (cargo build -p astroclip-core)", bin.display());
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("ASTROCLIP_") {
            c.env_remove(k);
        }
    }
    c.env("ASTROCLIP_MLFLOW_EXPORTER", env!("CARGO_BIN_EXE_astroclip-mlflow"));
    c.arg("--log").arg("warn").arg("--home").arg(home).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(python: &str, dir: &Path) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(python)
        .args(["-m", "mlflow", "server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("artifacts"))
        .env("MLFLOW_HOME", dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server(child);
    let uri = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    loop {
        let up = reqwest::blocking::get(format!("{uri}/health")).map(|r| r.status().is_success()).unwrap_or(false);
        if up {
            return (server, uri);
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "mlflow server did not answer /health in 180 s:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Everything the registry holds for each exported run, as MLflow should show it.
fn expected(reg: &Registry, uri: &str) -> Value {
    let mut out = Vec::new();
    for r in reg.list_runs(None).unwrap() {
        let d = reg.run(&r.id).unwrap();
        let exp = reg.mlflow_export(&r.id, uri).unwrap().expect("exported");
        let mut metrics: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for m in reg.metrics_in_order(&r.id, 0, i64::MAX).unwrap() {
            metrics.entry(mlflow_key(&m.key, &m.context)).or_default().push(json!([m.step, m.value, m.time_ms]));
        }
        let artifacts: BTreeMap<String, String> =
            d.artifacts.iter().map(|a| (astroclip_mlflow::artifact_path(&r.id, &a.path), a.sha256.clone())).collect();
        out.push(json!({
            "mlflow_run_id": exp.run_id,
            "experiment": r.experiment,
            "name": r.name,
            "status": r.status.to_uppercase(),
            "params": mlflow_params(&d).into_iter().collect::<BTreeMap<_, _>>(),
            "tags": mlflow_tags(&d).into_iter().collect::<BTreeMap<_, _>>(),
            "metrics": metrics,
            "artifacts": artifacts,
        }));
    }
    Value::Array(out)
}

fn read_back(python: &str, dir: &Path, reg: &Registry, uri: &str) -> String {
    let path = dir.join("expected.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&expected(reg, uri)).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_back.py");
    let out = Command::new(python).arg(script).arg(&path).arg(uri).arg(dir.join("download")).output().unwrap();
    let t = text(&out);
    assert!(out.status.success() && t.contains("ok: "), "MLflow read-back failed:\n{t}");
    t
}

fn export(home: &Path, uri: &str) -> Value {
    let out = astroclip(home, &["runs", "export", "mlflow", "--uri", uri, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn total(report: &Value, field: &str) -> u64 {
    report.as_array().unwrap().iter().map(|r| r[field].as_u64().unwrap()).sum()
}

#[test]
fn export_two_real_runs_and_read_them_back_with_mlflow() {
    let python = match std::env::var("ASTROCLIP_MLFLOW_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("ASTROCLIP_REQUIRE_MLFLOW").is_err(),
                "ASTROCLIP_REQUIRE_MLFLOW is set but ASTROCLIP_MLFLOW_PYTHON is not"
            );
            eprintln!("skipped: set ASTROCLIP_MLFLOW_PYTHON (eval \"$(scripts/setup-mlflow.sh)\")");
            return;
        }
    };
    let home = tempfile::tempdir().unwrap();
    let tiny = [
        "data.synth.n_galaxies=96",
        "data.synth.image_size=64",
        "data.test_fraction=0.25",
        "train.batch_size=16",
        "train.steps=6",
        "train.warmup_steps=2",
        "train.log_every=2",
        "train.checkpoint_every=3",
        "eval.k=8",
    ];
    for scale in ["10.0", "15.5"] {
        let mut args = vec!["run".to_string()];
        for s in tiny.iter().map(|s| s.to_string()).chain([format!("loss.logit_scale={scale}")]) {
            args.push("--set".into());
            args.push(s);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = astroclip(home.path(), &args);
        assert!(out.status.success(), "{}", text(&out));
    }
    let reg = Registry::open(&home.path().join("registry.db")).unwrap();
    let runs = reg.list_runs(None).unwrap();
    assert_eq!(runs.len(), 2);
    let a = runs[0].id.clone();
    assert!(astroclip(home.path(), &["runs", "note", &a, "ablation: logit scale"]).status.success());
    assert!(astroclip(home.path(), &["runs", "tag", &a, "team=vision"]).status.success());

    let srv = tempfile::tempdir().unwrap();
    let (_server, uri) = start_server(&python, srv.path());

    // First export: everything.
    let first = export(home.path(), &uri);
    assert!(first.as_array().unwrap().iter().all(|r| r["created"] == true), "{first}");
    let rows: i64 = runs.iter().map(|r| reg.metrics_in_order(&r.id, 0, i64::MAX).unwrap().len() as i64).sum();
    assert_eq!(total(&first, "metrics") as i64, rows, "{first}");
    assert!(total(&first, "params") > 100, "more params than one request holds: {first}");
    assert!(total(&first, "artifacts") >= 8, "{first}");
    let summary = read_back(&python, srv.path(), &reg, &uri);
    eprintln!("{summary}");

    // Second export: nothing new, nothing sent.
    let second = export(home.path(), &uri);
    for f in ["params", "tags", "metrics", "artifacts", "requests"] {
        assert_eq!(total(&second, f), 0, "{f}: {second}");
    }
    assert!(second.as_array().unwrap().iter().all(|r| r["created"] == false));

    // New rows and a changed tag: exactly those are sent; MLflow holds no duplicates.
    reg.log_metrics(
        &a,
        &[
            Metric::new("posthoc.score", 0, 0.5).with_context("source=image→spectrum"),
            Metric::new("posthoc.score", 1, 0.75),
        ],
    )
    .unwrap();
    reg.set_tags(&a, &[("team".into(), "spectra".into())]).unwrap();
    let third = export(home.path(), &uri);
    assert_eq!((total(&third, "metrics"), total(&third, "tags"), total(&third, "params")), (2, 1, 0), "{third}");
    read_back(&python, srv.path(), &reg, &uri);
}
