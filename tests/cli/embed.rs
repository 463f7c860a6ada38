//! `astroclip embed`: a trained model applied to a synthetic HDF5 catalogue. A run killed
//! (SIGKILL) part-way and resumed, and a run stopped with `--stop-after` and resumed, write the
//! same file as an uninterrupted one, byte for byte, and the resumed runs embed only what was
//! missing; four shards merged equal one process; pyarrow reads the file (schema, rows, values);
//! `astroclip search` finds each object first among its own modality, ranks across modalities
//! and reports the recall of the paired object.

use std::path::Path;

use crate::common::{TINY, bin, json, run, text};

fn trained(home: &Path) -> String {
    let mut args = vec!["run"];
    args.extend_from_slice(TINY);
    let out = run(home, &args);
    assert!(out.status.success(), "{}", text(&out));
    json(&run(home, &["runs", "list", "--json"]))[0]["id"].as_str().unwrap().to_string()
}

fn embed(home: &Path, id: &str, data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["embed", "--model", id, "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(home, &args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

#[test]
fn embed_resumes_after_a_kill_and_shards_merge_to_the_same_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = trained(home.path());
    let data = dir.path().join("cat.h5");
    let out = run(
        home.path(),
        &["survey", "synth", "--n", "1500", "--seed", "9", "--image-size", "64", "--out", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let chunk = ["--chunk-rows", "50"];

    let full = dir.path().join("full.parquet");
    let t = embed(home.path(), &id, &data, &full, &chunk);
    assert!(t.contains("embedded 1500 objects") && t.contains("30 of 30 row groups written now"), "{t}");
    let full_bytes = std::fs::read(&full).unwrap();

    // Stopped after 12 row groups, then resumed: only the other 18 are embedded.
    let stopped = dir.path().join("stopped.parquet");
    let t = embed(home.path(), &id, &data, &stopped, &["--chunk-rows", "50", "--stop-after", "12"]);
    assert!(t.contains("12 of 30 row groups written now") && t.contains("stopped early") && !stopped.exists(), "{t}");
    // Other arguments do not continue it.
    let o = run(
        home.path(),
        &[
            "embed",
            "--model",
            &id,
            "--data",
            data.to_str().unwrap(),
            "--out",
            stopped.to_str().unwrap(),
            "--chunk-rows",
            "40",
        ],
    );
    assert!(!o.status.success() && text(&o).contains("unfinished embed of other inputs"), "{}", text(&o));
    let t = embed(home.path(), &id, &data, &stopped, &chunk);
    assert!(t.contains("embedded 900 objects") && t.contains("18 of 30 row groups written now (12 kept"), "{t}");
    assert!(std::fs::read(&stopped).unwrap() == full_bytes, "the resumed file differs from the uninterrupted one");

    // Killed with SIGKILL while writing, then resumed.
    let killed = dir.path().join("killed.parquet");
    let partial = dir.path().join("killed.parquet.partial");
    let mut child = bin()
        .arg("--home")
        .arg(home.path())
        .args(["embed", "--model", &id, "--data", data.to_str().unwrap(), "--out", killed.to_str().unwrap()])
        .args(["--chunk-rows", "10", "--batch-size", "10"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let chunks = |p: &Path| {
        std::fs::read_dir(p)
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".parquet")).count())
            .unwrap_or(0)
    };
    let t0 = std::time::Instant::now();
    while chunks(&partial) < 5 && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = chunks(&partial);
    assert!((5..150).contains(&done) && !killed.exists(), "killed after {done} of 150 chunks");
    let t = embed(home.path(), &id, &data, &killed, &["--chunk-rows", "10", "--batch-size", "10"]);
    assert!(t.contains(&format!("{} of 150 row groups written now ({done} kept", 150 - done)), "{t}");
    let again = dir.path().join("again.parquet");
    embed(home.path(), &id, &data, &again, &["--chunk-rows", "10", "--batch-size", "10"]);
    assert!(std::fs::read(&killed).unwrap() == std::fs::read(&again).unwrap(), "killed + resumed differs");

    // Four shards, merged in any order, give the one-process file.
    let mut shards = Vec::new();
    for i in 0..4 {
        let p = dir.path().join(format!("shard{i}.parquet"));
        embed(home.path(), &id, &data, &p, &["--chunk-rows", "50", "--shard", &format!("{i}/4")]);
        shards.push(p.to_str().unwrap().to_string());
    }
    let merged = dir.path().join("merged.parquet");
    let o = run(
        home.path(),
        &["embed", "merge", &shards[2], &shards[0], &shards[3], &shards[1], "--out", merged.to_str().unwrap()],
    );
    assert!(o.status.success() && text(&o).contains("1500 rows"), "{}", text(&o));
    assert!(std::fs::read(&merged).unwrap() == full_bytes, "merged shards differ from one process");
    let o =
        run(home.path(), &["embed", "merge", &shards[0], &shards[1], &shards[3], "--out", merged.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("every shard 0..4 must be given once"), "{}", text(&o));
    let o = run(home.path(), &["embed", "merge", full.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("not a shard"), "{}", text(&o));

    // pyarrow reads it: the columns, 1500 rows in 30 row groups, the ids in file order.
    let python = std::env::var("ASTROCLIP_BENCH_PYTHON").ok();
    assert!(python.is_some() || std::env::var("ASTROCLIP_REQUIRE_TORCH").is_err(), "ASTROCLIP_BENCH_PYTHON is not set");
    if let Some(py) = python {
        let script = "import sys, pyarrow.parquet as pq\n\
                      f = pq.ParquetFile(sys.argv[1]); t = f.read()\n\
                      print(t.schema.names, t.num_rows, f.num_row_groups, t.column('object_id')[0], \
                      len(t.column('image')[0]), len(t.column('spectrum')[7]))";
        let o = std::process::Command::new(&py).args(["-c", script, full.to_str().unwrap()]).output().unwrap();
        let t = text(&o);
        assert!(o.status.success(), "pyarrow: {t}");
        assert!(
            t.contains("['object_id', 'ra', 'dec', 'source_file', 'image', 'spectrum'] 1500 30 synth-9-000000 128 128"),
            "{t}"
        );
    }

    // Search: an object is its own nearest neighbour in its modality; cross-modal search gives
    // k matches by decreasing cosine; recall of the paired spectrum over every image.
    let cat = full.to_str().unwrap();
    for from in ["image", "spectrum"] {
        let r = json(&run(
            home.path(),
            &[
                "search",
                "--catalogue",
                cat,
                "--id",
                "synth-9-000007",
                "--id",
                "synth-9-001234",
                "--from",
                from,
                "--json",
            ],
        ));
        for (q, id) in r.as_array().unwrap().iter().zip(["synth-9-000007", "synth-9-001234"]) {
            assert_eq!(q["matches"][0]["object_id"], id, "{from}: {q}");
            assert!((q["matches"][0]["cosine"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{q}");
            assert_eq!(q["matches"].as_array().unwrap().len(), 10);
        }
    }
    let r = json(&run(
        home.path(),
        &["search", "--catalogue", cat, "--id", "synth-9-000007", "--to", "spectrum", "--k", "25", "--json"],
    ));
    let cos: Vec<f64> = r[0]["matches"].as_array().unwrap().iter().map(|m| m["cosine"].as_f64().unwrap()).collect();
    assert!(cos.len() == 25 && cos.windows(2).all(|w| w[0] >= w[1]), "{r}");
    let r = json(&run(home.path(), &["search", "--catalogue", cat, "--recall", "5000", "--to", "spectrum", "--json"]));
    assert_eq!((r["queries"].as_u64(), r["catalogue"].as_u64()), (Some(1500), Some(1500)), "{r}");
    assert_eq!(r["recall"][1][0], 10);
    assert!((r["chance"][1][1].as_f64().unwrap() - 10.0 / 1500.0).abs() < 1e-12, "{r}");
    let at = |i: usize| r["recall"][i][1].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&at(0)) && at(0) <= at(1), "{r}");
    let o = run(home.path(), &["search", "--catalogue", cat, "--id", "no-such-object"]);
    assert!(!o.status.success() && text(&o).contains("no object \"no-such-object\""), "{}", text(&o));
}
