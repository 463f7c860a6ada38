//! `astroclip bench`: the suite trains, reuses and tabulates; `bench perf` against its references.

use super::common::*;

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
    let retrieval: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.starts_with("Cross-modal retrieval"))
        .take_while(|l| !l.starts_with("Embedding diagnostics"))
        .collect();
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
    // Diagnostics: one row per model and modality with an embedding (the supervised encoders'
    // features too; none for the photometry MLP); AstroCLIP's image effective rank is the one
    // its run recorded.
    let diag: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.starts_with("| model | embedding | effective rank"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let names: Vec<String> = diag.iter().map(|l| l.split('|').take(3).collect::<Vec<_>>().join("|")).collect();
    assert_eq!(
        names,
        [
            "| AstroCLIP | image ",
            "| AstroCLIP | spectrum ",
            "| MoCo v2 | image ",
            "| Supervised | image ",
            "| Supervised spectrum | spectrum ",
            "| SpecFormer (masked) | spectrum ",
            "| Two-stage | image ",
            "| Two-stage | spectrum "
        ],
        "{t}"
    );
    let clip = json(&run(
        home.path(),
        &[
            "runs",
            "list",
            "--json",
            "--where",
            "params.objective.freeze_backbones = false and params.objective.kind = clip \
             and metrics.eval.effective_rank[source=image] > 0",
        ],
    ));
    assert_eq!(clip.as_array().unwrap().len(), 1, "{clip}");
    let rank: f64 = clip[0]["fields"][2][1].as_str().unwrap().parse().unwrap();
    let cell: f64 = diag[0].split('|').nth(3).unwrap().trim().parse().unwrap();
    assert!((rank - cell).abs() < 0.005, "{rank} vs {cell}");

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
/// k-NN rows are checked against scikit-learn on the same embeddings, and the PyTorch model it
/// times against is checked to be the same model by values (our parameters loaded into it by
/// name give our embeddings to 1e-5), with the Python named by `ASTROCLIP_BENCH_PYTHON`.
/// `scripts/test.sh` names `.venv-torch` (torch 2.9.0 + scikit-learn, `scripts/setup-bench.sh`)
/// and sets `ASTROCLIP_REQUIRE_SKLEARN=1` and `ASTROCLIP_REQUIRE_TORCH=1`, so that a missing
/// reference fails. A reference that cannot run is reported in the table, not skipped silently.
#[test]
fn bench_perf_times_step_and_knn_against_references() {
    let home = tempfile::tempdir().unwrap();
    let quick = ["bench", "perf", "--steps", "1", "--warmup", "0", "--embed-reps", "1", "--knn-reps", "1"];
    let python = std::env::var("ASTROCLIP_BENCH_PYTHON").ok();
    let require_torch = std::env::var("ASTROCLIP_REQUIRE_TORCH").is_ok();
    assert!(
        python.is_some() || (std::env::var("ASTROCLIP_REQUIRE_SKLEARN").is_err() && !require_torch),
        "ASTROCLIP_REQUIRE_SKLEARN or ASTROCLIP_REQUIRE_TORCH is set but ASTROCLIP_BENCH_PYTHON is not"
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
        // Where torch is importable (required in CI) the PyTorch model must be the same model:
        // the same parameter count, and our weights in it give our embeddings.
        let torch =
            report["steps"].as_array().unwrap().iter().find(|r| r["backend"].as_str().unwrap().starts_with("PyTorch"));
        if let Some(torch) = torch {
            assert_eq!(torch["params"], report["steps"][0]["params"], "{t}");
            let twin = &report["twin"][0];
            assert_eq!(twin["values"], report["steps"][0]["params"], "every parameter goes to the twin: {t}");
            for m in ["image_rel_diff", "spectrum_rel_diff"] {
                let d = twin[m].as_f64().unwrap_or_else(|| panic!("no twin check: {t}"));
                assert!(d < 1e-5, "the PyTorch twin's {m} is {d}: {t}");
            }
            assert!(t.contains("PyTorch twin") && t.contains("the same model"), "{t}");
        } else {
            assert!(!require_torch, "ASTROCLIP_REQUIRE_TORCH is set but PyTorch did not run: {t}");
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

/// `astroclip bench search` at a small size: both widths' exact top-10 agree with faiss's
/// `IndexFlatIP` on the same rows (where the bench venv is required, faiss must run), the
/// `gemm` crate is timed beside the AVX-512 kernel wherever that one is used, and the HNSW
/// index finds most of the exact neighbours. Timings are reported, never asserted.
#[test]
fn bench_search_agrees_with_faiss_and_reports_the_kernel() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec![
        "bench",
        "search",
        "--rows",
        "5000",
        "--dims",
        "64,16",
        "--hnsw-dims",
        "16",
        "--queries",
        "200",
        "--ef-construction",
        "100",
        "--ef-search",
        "64",
    ];
    let python = std::env::var("ASTROCLIP_BENCH_PYTHON").ok();
    match &python {
        Some(py) => args.extend(["--python", py]),
        None => args.push("--no-reference"),
    }
    let out = run(home.path(), &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("bench/search.json")).unwrap()).unwrap();
    let kernel = astroclip_builtin::topk::Kernel::detect();
    assert_eq!(report["kernel"], kernel.name(), "{t}");
    assert!(t.contains(&format!("the {} score kernel", kernel.name())), "{t}");
    let exact = report["exact"].as_array().unwrap();
    assert_eq!(exact.len(), 2, "{t}");
    for row in exact {
        assert_eq!(row["gemm_s"].is_null(), kernel == astroclip_builtin::topk::Kernel::Gemm, "{row}");
        match row["agreement"].as_f64() {
            Some(a) => assert!(a >= 0.99, "top-10 agreement with faiss {a}: {t}"),
            // .venv-torch (scripts/setup-bench.sh) has faiss-cpu; CI requires it.
            None => assert!(std::env::var("ASTROCLIP_REQUIRE_TORCH").is_err(), "faiss did not run: {t}"),
        }
    }
    let hnsw = report["hnsw"].as_array().unwrap();
    assert_eq!(hnsw.len(), 1, "{t}");
    let recall = hnsw[0]["recall"].as_f64().unwrap();
    assert!(recall > 0.8 && recall <= 1.0, "HNSW recall@10 {recall}: {t}");
}
