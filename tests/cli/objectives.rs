//! The other objectives through `astroclip run`: MoCo v2, supervised baselines and masked SpecFormer, each resumed exactly; bad two-stage starts refused.

use super::common::*;

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
    let full_id = rows.iter().find(|r| r["id"] != id.as_str()).unwrap()["id"].as_str().unwrap().to_string();
    assert_resumed_exactly(home.path(), &id, &full_id, 3);
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
        let full_id = rows.iter().find(|r| r["id"] != id.as_str()).unwrap()["id"].as_str().unwrap().to_string();
        assert_resumed_exactly(home.path(), &id, &full_id, 3);
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
