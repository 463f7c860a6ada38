//! Registry benchmark (`scripts/bench-registry.sh`): metric rows/s written in batches (and one
//! row per transaction for reference), and `runs list --where … --order …` latency over 10 000
//! runs. Prints a Markdown table. Usage: bench_registry [n_runs] [postgres admin URL]
//! (with a URL, the same benchmark runs on a fresh database of that PostgreSQL server).

use std::time::Instant;

use astroclip_registry::{Metric, NewRun, Registry};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n_runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = match std::env::args().nth(2) {
        Some(admin) => {
            let name = format!("bench_{}", std::process::id());
            Registry::open_url(&astroclip_registry::create_postgres_database(&admin, &name).expect("create database"))
                .expect("open registry")
        }
        None => Registry::open(&dir.path().join("bench.db")).expect("open registry"),
    };
    println!("registry: {} ({:?})\n", reg.location(), reg.dialect());
    let new_run = |i: usize| {
        reg.create_run(&NewRun {
            experiment: format!("exp-{}", i % 10),
            name: format!("run-{i}"),
            config_json: "{}".into(),
            git_commit: None,
            data_hash: Some("abc".into()),
            components_json: "[]".into(),
        })
        .expect("create run")
    };

    // 1. Metric throughput: 200 000 rows in batches of 1000 (the trainer's batching), then
    //    2 000 rows one per transaction.
    let run = new_run(0);
    let t = Instant::now();
    for b in 0..200 {
        let rows: Vec<Metric> =
            (0..1000).map(|i| Metric::new("train.loss", (b * 1000 + i) as i64, 1.0 / (1 + i) as f64)).collect();
        reg.log_metrics(&run, &rows).expect("log");
    }
    let batched = 200_000.0 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..2000 {
        reg.log_metrics(&run, &[Metric::new("train.lr", i, 1e-3)]).expect("log");
    }
    let single = 2000.0 / t.elapsed().as_secs_f64();

    // 2. 10 000 runs, each with 40 params and 30 metric rows (train curve + eval with contexts).
    let t = Instant::now();
    for i in 1..n_runs {
        let id = new_run(i);
        let mut params: Vec<(String, String)> =
            (0..38).map(|k| (format!("cfg.key{k}"), format!("{}", (i + k) % 7))).collect();
        params.push(("loss.logit_scale".into(), ["10.0", "15.5", "20.0"][i % 3].into()));
        params.push(("model.embed_dim".into(), "128".into()));
        reg.log_params(&id, &params).expect("params");
        let mut rows: Vec<Metric> =
            (0..24).map(|s| Metric::new("train.loss", s, 5.0 - s as f64 * 0.1 - (i % 97) as f64 * 0.01)).collect();
        for (k, src) in ["image", "spectrum", "image→spectrum"].iter().enumerate() {
            for (j, p) in ["redshift", "log_mass"].iter().enumerate() {
                let v = ((i * 31 + k * 7 + j) % 100) as f64 / 100.0;
                rows.push(Metric::new(format!("eval.r2.{p}"), 24, v).with_context(format!("split=test,source={src}")));
            }
        }
        reg.log_metrics(&id, &rows).expect("metrics");
        reg.set_status(&id, "finished", None).expect("status");
    }
    let fill = t.elapsed().as_secs_f64();

    let queries = [
        ("all runs, newest first", None, None),
        ("params.loss.logit_scale = 15.5", Some("params.loss.logit_scale = 15.5"), None),
        (
            "params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift[source=image] > 0.5, order by metrics.train.loss",
            Some("params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift[source=image] > 0.5"),
            Some("metrics.train.loss"),
        ),
    ];
    println!("| registry benchmark ({} runs) | value |", n_runs);
    println!("|---|---|");
    println!("| metric rows/s, batches of 1000 | {batched:.0} |");
    println!("| metric rows/s, one row per transaction | {single:.0} |");
    println!("| filling {n_runs} runs (40 params + 30 metric rows each) | {fill:.1} s |");
    for (label, filter, order) in queries {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..7 {
            let t = Instant::now();
            n = reg.query(filter, order, None, false).expect("query").len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("| `runs list` {label}: {n} runs | {:.1} ms (median of 7) |", median(times));
    }
}
