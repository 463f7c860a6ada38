//! `astroclip embed`: a trained model applied to a synthetic HDF5 catalogue. A run killed
//! (SIGKILL) part-way and resumed, and a run stopped with `--stop-after` and resumed, write the
//! same file as an uninterrupted one, byte for byte, and the resumed runs embed only what was
//! missing; four shards merged equal one process; pyarrow reads the file (schema, rows, values);
//! `astroclip search` finds each object first among its own modality, ranks across modalities
//! and reports the recall of the paired object.

use std::path::Path;

use crate::common::{TINY, bin, chromium_dom, dom_attr, json, run, text};

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

    // The approximate index: built once next to the catalogue with its recall@10 against
    // exact search, then searched with --index; a modality without one is refused.
    let o = run(home.path(), &["search", "--index", "--catalogue", cat, "--id", "synth-9-000007"]);
    assert!(!o.status.success() && text(&o).contains("no image index"), "{}", text(&o));
    let r = json(&run(home.path(), &["search", "index", "build", "--catalogue", cat, "--modality", "image", "--json"]));
    assert_eq!(
        (r["rows"].as_u64(), r["dim"].as_u64(), r["recall_queries"].as_u64()),
        (Some(1500), Some(128), Some(1000)),
        "{r}"
    );
    let recall = r["recall_at_10"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&recall), "{r}");
    assert!(dir.path().join("full.parquet.image.hnsw/meta.json").is_file());
    let r = json(&run(home.path(), &["search", "--index", "--catalogue", cat, "--id", "synth-9-000007", "--json"]));
    assert_eq!(r[0]["matches"][0]["object_id"], "synth-9-000007", "{r}");
    assert_eq!(r[0]["matches"].as_array().unwrap().len(), 10, "{r}");
    let o = run(home.path(), &["search", "--index", "--catalogue", cat, "--id", "synth-9-000007", "--to", "spectrum"]);
    assert!(!o.status.success() && text(&o).contains("no spectrum index"), "{}", text(&o));

    queries_from_files_and_the_gallery(home.path(), dir.path(), &data, cat);
}

/// A Legacy-Survey-style cutout FITS: primary image `(bands, H, W)` of `img` (`(H, W, bands)`).
fn write_cutout(path: &Path, objid: &str, size: usize, bands: &[String], img: &[f32]) {
    let mut cards = vec![
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                  -32".into(),
        "NAXIS   =                    3".into(),
        format!("NAXIS1  = {size:>20}"),
        format!("NAXIS2  = {size:>20}"),
        format!("NAXIS3  = {:>20}", bands.len()),
        "PIXSCALE=                0.262".into(),
        format!("OBJID   = '{objid}'"),
    ];
    cards.extend(bands.iter().enumerate().map(|(i, b)| format!("BAND{i}   = '{b:<8}'")));
    cards.push("END".into());
    let mut bytes: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    let nb = bands.len();
    for k in 0..nb {
        for p in 0..size * size {
            bytes.extend(img[p * nb + k].to_be_bytes());
        }
    }
    bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
    std::fs::write(path, bytes).unwrap();
}

/// Queries from files are embedded on the fly by the catalogue's model: a catalogue object
/// handed back as a cutout FITS (an image query) or picked from its HDF5 file (a spectrum
/// query) finds itself first at cosine 1; `--html` writes a gallery of the query and its
/// matches that headless Chromium renders (every cutout decodes, every spectrum drawn).
fn queries_from_files_and_the_gallery(home: &Path, dir: &Path, data: &Path, cat: &str) {
    let src = astroclip_core::data::open_path(data).unwrap();
    let i = src.object_ids().iter().position(|x| x == "synth-9-000007").unwrap();
    let (s, nb, bins) = (src.image_size(), src.bands().len(), src.wavelength().len());
    let (mut img, mut flux, mut ivar) = (vec![0f32; s * s * nb], vec![0f32; bins], vec![0f32; bins]);
    src.reader().unwrap().read(i, &mut img, &mut flux, &mut ivar).unwrap();
    let fits = dir.join("query.fits");
    write_cutout(&fits, "my-galaxy", s, src.bands(), &img);
    let f = fits.to_str().unwrap();
    let r = json(&run(home, &["search", "--catalogue", cat, "--file", f, "--k", "3", "--json"]));
    assert_eq!((r[0]["from"].as_str(), r[0]["to"].as_str()), (Some("image"), Some("image")), "{r}");
    assert!(r[0]["query"].as_str().unwrap().starts_with("my-galaxy"), "{r}");
    assert_eq!(r[0]["matches"][0]["object_id"], "synth-9-000007", "{r}");
    assert!((r[0]["matches"][0]["cosine"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{r}");
    let r = json(&run(home, &["search", "--catalogue", cat, "--file", f, "--to", "spectrum", "--json"]));
    assert_eq!(r[0]["matches"].as_array().unwrap().len(), 10, "{r}");
    let h5 = data.to_str().unwrap();
    let r = json(&run(
        home,
        &[
            "search",
            "--catalogue",
            cat,
            "--file",
            h5,
            "--id",
            "synth-9-001234",
            "--from",
            "spectrum",
            "--k",
            "3",
            "--json",
        ],
    ));
    assert_eq!(r[0]["from"], "spectrum", "{r}");
    assert_eq!(r[0]["matches"][0]["object_id"], "synth-9-001234", "{r}");
    assert!((r[0]["matches"][0]["cosine"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{r}");
    // A file of other sizes, and a file with nothing to query with, are refused by name.
    write_cutout(&fits, "tiny", 4, src.bands(), &vec![0.1; 4 * 4 * nb]);
    let o = run(home, &["search", "--catalogue", cat, "--file", f]);
    assert!(!o.status.success() && text(&o).contains("a 4×4 px image, the catalogue's are 64×64 px"), "{}", text(&o));
    let o = run(home, &["search", "--catalogue", cat, "--file", h5, "--id", "no-such-object"]);
    assert!(!o.status.success() && text(&o).contains("no object \"no-such-object\""), "{}", text(&o));

    // The gallery: an image query, ten spectra; each match shown with cutout and spectrum.
    let page = dir.join("gallery.html");
    let o = run(
        home,
        &["search", "--catalogue", cat, "--id", "synth-9-000007", "--to", "spectrum", "--html", page.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    let r = json(&run(home, &["search", "--catalogue", cat, "--id", "synth-9-000007", "--to", "spectrum", "--json"]));
    let paired = r[0]["matches"].as_array().unwrap().iter().filter(|m| m["object_id"] == "synth-9-000007").count();
    assert_eq!(html.matches("class=\"match hit\"").count(), paired, "the paired spectrum, and only it, is framed");
    assert_eq!(html.matches("<figure class=\"match").count(), 10);
    let Some(dom) = chromium_dom(&page) else { return };
    let attr = |name: &str| dom_attr(&dom, name);
    assert_eq!((attr("data-queries"), attr("data-matches")), (1, 10));
    assert_eq!((attr("data-images"), attr("data-spectra"), attr("data-broken-images")), (11, 10, 0));
}
