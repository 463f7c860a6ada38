//! The fuzz targets: what a user can hand astroclip. Each calls the library the way the
//! command would (readers through `inspect` as `data inspect` does, configuration through
//! `config::load` as `run` does) and ignores the `Result`: only a panic, an abort or a hang is
//! a finding. Seeds are the real and generated fixtures (`scripts/fixtures.sh`), the shipped
//! experiment files and plugin manifests; the HDF5 and `--set` targets also generate cases.

use std::path::{Path, PathBuf};

use astroclip_core::config::{self, CliOverrides};
use astroclip_core::data::ObjectSource;
use astroclip_core::data::astroclip_h5::AstroClipH5;
use astroclip_core::data::{OnBad, desi, grid, inspect, legacy, mmu, sdss};
use rand::Rng;
use rust_hdf5::H5File;

use super::engine::{INTERESTING_TEXT, Rand, Target, mutate_bytes, mutate_text};

pub fn fixtures() -> PathBuf {
    std::env::var_os("ASTROCLIP_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures"))
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("fuzz seed {} is missing ({e}); run scripts/fixtures.sh first", path.display()))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

// ---------------------------------------------------------------- FITS

/// Structure-aware FITS mutation: a header card's value replaced by an interesting one, the
/// END card removed, a 2880-byte block dropped or duplicated.
fn mutate_fits(rng: &mut Rand, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    let cards: Vec<usize> = (0..d.len() / 80)
        .map(|i| i * 80)
        .filter(|&o| {
            d[o + 8..o + 10] == *b"= "
                && d[o..o + 8].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || b" -_".contains(c))
        })
        .collect();
    match rng.random_range(0..8) {
        0..=4 if !cards.is_empty() => {
            // Structural keywords are the interesting ones: prefer them.
            let structural: Vec<usize> = cards
                .iter()
                .copied()
                .filter(|&o| {
                    let k = &d[o..o + 8];
                    [
                        &b"NAXIS"[..],
                        b"BITPIX",
                        b"PCOUNT",
                        b"GCOUNT",
                        b"TFIELDS",
                        b"TFORM",
                        b"BSCALE",
                        b"BZERO",
                        b"TZERO",
                        b"TSCAL",
                        b"CD",
                        b"CDELT",
                        b"PIXSCALE",
                    ]
                    .iter()
                    .any(|p| k.starts_with(p))
                })
                .collect();
            let pool = if !structural.is_empty() && rng.random_range(0..4) != 0 { &structural } else { &cards };
            let o = pool[rng.random_range(0..pool.len())];
            let v = if rng.random_range(0..5) == 0 {
                format!(
                    "'{}'",
                    ["1PE", "99999999999999999999K", "0E", "2147483647D", "-1J", "E", "Q", "X"][rng.random_range(0..8)]
                )
            } else {
                INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())].to_string()
            };
            let field = format!("{v:>20}");
            let field = format!("{:<70}", &field[..field.len().min(70)]);
            d[o + 10..o + 80].copy_from_slice(field.as_bytes());
        }
        5 => {
            let ends: Vec<usize> = (0..d.len() / 80).map(|i| i * 80).filter(|&o| d[o..o + 8] == *b"END     ").collect();
            if let Some(&o) = ends.get(rng.random_range(0..ends.len().max(1))) {
                d[o..o + 3].copy_from_slice(b"   ");
            }
        }
        6 if d.len() > 2 * 2880 => {
            let b = rng.random_range(1..d.len() / 2880);
            d.drain(b * 2880..(b + 1) * 2880);
        }
        _ if d.len() >= 2880 => {
            let b = rng.random_range(0..d.len() / 2880);
            let block = d[b * 2880..(b + 1) * 2880].to_vec();
            d.splice(b * 2880..b * 2880, block);
        }
        _ => mutate_bytes(rng, &mut d, None),
    }
    d
}

/// The case as a file named for its format: a hard link to the engine's `current.bin` (which
/// holds these bytes), written anew only where linking fails.
fn case_file(scratch: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch.join(name);
    let _ = std::fs::remove_file(&p);
    if std::fs::hard_link(scratch.join("current.bin"), &p).is_err() {
        std::fs::write(&p, bytes).expect("scratch is writable");
    }
    p
}

fn run_desi(bytes: &[u8], scratch: &Path) {
    let p = case_file(scratch, "case-coadd.fits", bytes);
    let _ = desi::read_coadd(&p, None, OnBad::Skip);
    let _ = desi::read_coadd(&p, None, OnBad::Error);
    let _ = desi::read_redrock(&p);
    let _ = inspect::inspect(&p);
}

fn run_sdss(bytes: &[u8], scratch: &Path) {
    let p = case_file(scratch, "case-spec.fits", bytes);
    let _ = sdss::read_spec(&p, &grid::desi_grid());
    let _ = inspect::inspect(&p);
}

fn run_cutout(bytes: &[u8], scratch: &Path) {
    let p = case_file(scratch, "case-cutout.fits", bytes);
    let _ = legacy::read_cutout(&p);
    let _ = inspect::inspect(&p);
}

// ---------------------------------------------------------------- HDF5

/// A length that is usually `n` and sometimes off by a little (a dataset shorter or longer
/// than the others).
fn about(rng: &mut Rand, n: usize) -> usize {
    match rng.random_range(0..8) {
        0 => n.saturating_sub(1),
        1 => n + 1,
        2 => 0,
        _ => n,
    }
}

fn floats(rng: &mut Rand, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.random_range(0..40) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -1.0,
            3 => 0.0,
            _ => rng.random_range(0.0..10.0),
        })
        .collect()
}

fn ids_text(rng: &mut Rand, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match rng.random_range(0..6) {
            0 => format!("-{}", 39627745545617766i64 + i as i64),
            1 => format!("+{i}"),
            2 => format!("00{i}"),
            3 => format!("obj {i}"),
            4 => "18446744073709551615".to_string(),
            _ => format!("{}", 1000 + i),
        })
        .collect()
}

type H5 = rust_hdf5::Result<()>;

fn write_f32(f: &H5File, name: &str, shape: &[usize], rng: &mut Rand) -> H5 {
    // Sometimes a chunked dataset declaring a huge shape with nothing stored: the case of a
    // few kilobytes that claims hundreds of gigabytes.
    if rng.random_range(0..25) == 0 {
        let mut huge = shape.to_vec();
        let mut chunk: Vec<usize> = shape.iter().map(|&n| n.max(1)).collect();
        if let (Some(d), Some(c)) = (huge.first_mut(), chunk.first_mut()) {
            // (rows, rows per chunk): the writer allocates an index entry per chunk.
            (*d, *c) = [(200_000, 1), (1 << 30, 1 << 20), (50_000_000, 4096)][rng.random_range(0..3)];
        }
        f.new_dataset::<f32>().shape(&huge).chunk(&chunk).create(name)?;
        return Ok(());
    }
    let n: usize = shape.iter().product();
    f.new_dataset::<f32>().shape(shape).create(name)?.write_raw(&floats(rng, n))?;
    Ok(())
}

fn write_ids(f: &H5File, name: &str, n: usize, rng: &mut Rand) -> H5 {
    if rng.random() {
        let v: Vec<i64> = (0..n as i64).map(|i| if rng.random_range(0..5) == 0 { -i - 1 } else { 1000 + i }).collect();
        f.new_dataset::<i64>().shape([n]).create(name)?.write_raw(&v)?;
    } else {
        let v = ids_text(rng, n);
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        f.write_vlen_strings(name, &r)?;
    }
    Ok(())
}

fn gen_file(scratch: &Path, fill: impl FnOnce(&H5File) -> H5) -> Vec<u8> {
    let p = scratch.join("gen.hdf5");
    let _ = std::fs::remove_file(&p);
    let ok = H5File::create(&p).and_then(|f| {
        fill(&f)?;
        f.close()
    });
    match ok {
        Ok(()) => std::fs::read(&p).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn gen_mmu_spectra(rng: &mut Rand, scratch: &Path) -> Vec<u8> {
    let n = rng.random_range(0..5);
    let l = [0, 1, 3, 17, 40][rng.random_range(0..5)];
    let mut r = rng.clone();
    rng.random::<u64>();
    gen_file(scratch, |f| {
        write_ids(f, "object_id", n, &mut r)?;
        write_f32(f, "spectrum_flux", &[about(&mut r, n), l], &mut r)?;
        write_f32(f, "spectrum_ivar", &[about(&mut r, n), l], &mut r)?;
        let lam: Vec<f32> = (0..l).map(|i| 3600.0 + 0.8 * i as f32).collect();
        let mut lam = lam;
        if r.random_range(0..6) == 0 && l > 1 {
            let k = r.random_range(0..l);
            lam[k] = [f32::NAN, 0.0, -5.0, 3600.0][r.random_range(0..4)];
        }
        if r.random() {
            f.new_dataset::<f32>()
                .shape([about(&mut r, l)])
                .create("spectrum_lambda")?
                .write_raw(&lam[..lam.len().min(about(&mut r, l))])?;
        } else {
            write_f32(f, "spectrum_lambda", &[about(&mut r, n), l], &mut r)?;
        }
        if r.random() {
            let m = about(&mut r, n) * l;
            f.new_dataset::<u8>().shape([m]).create("spectrum_mask")?.write_raw(&vec![0u8; m])?;
        }
        for name in ["ra", "dec", "z"] {
            if r.random() {
                let k = about(&mut r, n);
                f.new_dataset::<f64>().shape([k]).create(name)?.write_raw(&vec![1.5f64; k])?;
            }
        }
        Ok(())
    })
}

fn gen_mmu_images(rng: &mut Rand, scratch: &Path) -> Vec<u8> {
    let n = rng.random_range(0..4);
    let (b, h, w) = (rng.random_range(0..4), rng.random_range(0..9), rng.random_range(0..9));
    let mut r = rng.clone();
    rng.random::<u64>();
    gen_file(scratch, |f| {
        write_ids(f, "object_id", n, &mut r)?;
        write_f32(f, "image_array", &[about(&mut r, n), b, h, w], &mut r)?;
        let nb = [b, b.saturating_sub(1), b + 1, n * b][r.random_range(0..4)];
        let bands: Vec<String> = (0..nb).map(|i| ["g", "r", "z", "i", ""][i % 5].to_string()).collect();
        let refs: Vec<&str> = bands.iter().map(String::as_str).collect();
        if r.random_range(0..6) != 0 {
            f.write_vlen_strings("image_band", &refs)?;
        }
        if r.random() {
            write_f32(f, "image_ivar", &[about(&mut r, n), b, h, w], &mut r)?;
        }
        if r.random() {
            let m = about(&mut r, n) * b * h * w;
            f.new_dataset::<u8>().shape([m]).create("image_mask")?.write_raw(&vec![1u8; m])?;
        }
        if r.random() {
            let k = [0, 1, n, n + 1][r.random_range(0..4)];
            let v: Vec<f32> = (0..k).map(|_| [0.262, 0.0, -1.0, f32::NAN][r.random_range(0..4)]).collect();
            f.new_dataset::<f32>().shape([k]).create("image_scale")?.write_raw(&v)?;
        }
        for name in ["ra", "dec"] {
            if r.random() {
                let k = about(&mut r, n);
                f.new_dataset::<f64>().shape([k]).create(name)?.write_raw(&vec![10.0f64; k])?;
            }
        }
        Ok(())
    })
}

fn gen_astroclip(rng: &mut Rand, scratch: &Path) -> Vec<u8> {
    let groups = rng.random_range(0..3);
    let mut r = rng.clone();
    rng.random::<u64>();
    gen_file(scratch, |f| {
        if r.random_range(0..4) == 0 {
            f.set_attr_string("bands", ["g,r", "", "g,g,g", "g,r,z"][r.random_range(0..4)])?;
        }
        if r.random_range(0..4) == 0 {
            f.set_attr_string("pixel_scale", ["nan", "0", "-1", "x", "0.262"][r.random_range(0..5)])?;
        }
        for g in 0..groups {
            let grp = f.create_group(&g.to_string())?;
            let n = r.random_range(0..4);
            let s = [0, 1, 4, 8][r.random_range(0..4)];
            let l = [0, 3, 16][r.random_range(0..3)];
            let nb = [3, 2, 3, 3][r.random_range(0..4)];
            let img = [about(&mut r, n), s, about(&mut r, s), nb];
            let data = floats(&mut r, img.iter().product());
            grp.new_dataset::<f32>().shape(img).create("images")?.write_raw(&data)?;
            let sp = if r.random() { vec![about(&mut r, n), l, 1] } else { vec![n, l] };
            let data = floats(&mut r, sp.iter().product());
            grp.new_dataset::<f32>().shape(&sp).create("spectra")?.write_raw(&data)?;
            if r.random() {
                let iv = vec![n, about(&mut r, l), 1];
                let data = floats(&mut r, iv.iter().product());
                grp.new_dataset::<f32>().shape(&iv).create("ivar")?.write_raw(&data)?;
            }
            if r.random() {
                let k = about(&mut r, l);
                let mut w: Vec<f32> = (0..k).map(|i| 3600.0 + i as f32).collect();
                if k > 1 && r.random_range(0..4) == 0 {
                    w[1] = f32::NAN;
                }
                grp.new_dataset::<f32>().shape([k]).create("wavelength")?.write_raw(&w)?;
            }
            let k = about(&mut r, n);
            if r.random() {
                let v: Vec<i64> = (0..k as i64).collect();
                grp.new_dataset::<i64>().shape([k]).create("targetids")?.write_raw(&v)?;
            } else {
                let v = ids_text(&mut r, k);
                let refs: Vec<&str> = v.iter().map(String::as_str).collect();
                grp.write_vlen_strings("targetids", &refs)?;
            }
            let k = about(&mut r, n);
            grp.new_dataset::<f32>().shape([k]).create("redshifts")?.write_raw(&floats(&mut r, k))?;
            if r.random() {
                let k = about(&mut r, n);
                grp.new_dataset::<f32>().shape([k]).create("truth_log_mass")?.write_raw(&floats(&mut r, k))?;
            }
        }
        Ok(())
    })
}

fn mutate_h5(rng: &mut Rand, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    // Few, small byte changes keep the decoder going deep enough to reach our checks.
    let n = d.len();
    for _ in 0..1 + rng.random_range(0..3) {
        if n == 0 {
            break;
        }
        let at = rng.random_range(0..n);
        d[at] = match rng.random_range(0..4) {
            0 => 0,
            1 => 0xff,
            2 => d[at].wrapping_add(1),
            _ => rng.random(),
        };
    }
    d
}

fn run_h5(bytes: &[u8], scratch: &Path) {
    let p = case_file(scratch, "case.hdf5", bytes);
    let _ = inspect::inspect(&p);
    let _ = mmu::read_spectra(&p, OnBad::Error);
    let _ = mmu::read_images(&p, OnBad::Skip);
    if let Ok(src) = AstroClipH5::open(&p) {
        // The training loader's path: every object through a reader.
        if let Ok(mut reader) = src.reader() {
            let s = src.image_size();
            let (mut img, mut fl, mut iv) = (
                vec![0f32; s * s * src.bands().len()],
                vec![0f32; src.wavelength().len()],
                vec![0f32; src.wavelength().len()],
            );
            for i in 0..src.len().min(50) {
                let _ = reader.read(i, &mut img, &mut fl, &mut iv);
            }
        }
    }
    let out = scratch.join("import-out.h5");
    let spec = inspect::ImportSpec {
        spectra: vec![p.clone()],
        images: vec![p.clone()],
        redrock: None,
        match_by: "id".into(),
        radius_arcsec: 1.0,
        image_size: 4,
        bands: vec!["g".into()],
        on_bad: OnBad::Skip,
    };
    let _ = inspect::import(&spec, &out);
}

// ---------------------------------------------------------------- configuration

/// Every configuration key of the quickstart preset, as `a.b.c`.
fn config_keys() -> Vec<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let cfg = config::ExperimentConfig::preset("quickstart").expect("quickstart preset");
    let mut out = Vec::new();
    walk("", &serde_json::to_value(&cfg).expect("config serialises"), &mut out);
    out
}

fn gen_set(rng: &mut Rand, _: &Path) -> Vec<u8> {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(config_keys);
    let mut lines = Vec::new();
    for _ in 0..1 + rng.random_range(0..3) {
        let key = match rng.random_range(0..10) {
            0 => "image.encoder.name".to_string(),
            1 => "experiment.preset".to_string(),
            2 => format!("{}.x", keys[rng.random_range(0..keys.len())]),
            _ => keys[rng.random_range(0..keys.len())].clone(),
        };
        let value = match rng.random_range(0..6) {
            0 => ["resnet", "specformer", "x/y", "/", "paper", "", "moco-v2", "stream"][rng.random_range(0..8)]
                .to_string(),
            _ => INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())].to_string(),
        };
        lines.push(format!("{key}={value}"));
    }
    lines.join("\n").into_bytes()
}

fn run_set(bytes: &[u8], _: &Path) {
    let text = String::from_utf8_lossy(bytes);
    let items: Vec<String> = text.lines().map(str::to_string).collect();
    if let Ok(ov) = CliOverrides::parse(&items) {
        let _ = config::load(None, &ov);
    }
}

fn run_toml(bytes: &[u8], scratch: &Path) {
    let p = case_file(scratch, "case-experiment.toml", bytes);
    let _ = config::load(Some(&p), &CliOverrides::default());
}

// ---------------------------------------------------------------- queries

const QUERIES: &[&str] = &[
    "params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift.max[source=image] > 0.5 and status = 'finished'\n-metrics.train.loss",
    "params.loss.logit_scale >= 10 and metrics.eval.r2.redshift[source=spectrum] > 0.5\nmetrics.eval.r2.redshift",
    "tags.baseline = yes\n",
    "tags.x ~ j_doe and name ~ '%quick%'\nstarted",
    "status != failed and params.train.steps < 1000 and metrics.train.loss.min <= 0.1\n-params.train.lr",
    "experiment = quickstart and git ~ abc\n",
];

fn mutate_query(rng: &mut Rand, data: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(data).into_owned();
    let (filter, order) = s.split_once('\n').unwrap_or((&s, ""));
    let mut toks: Vec<String> = filter.split(' ').map(str::to_string).collect();
    for _ in 0..1 + rng.random_range(0..3) {
        let i = rng.random_range(0..toks.len().max(1));
        let pick = [
            "and",
            "or",
            "(",
            ")",
            "[",
            "]",
            "[source=",
            "=",
            "~",
            "<",
            ">=",
            "!=",
            "'",
            "''",
            "\\",
            "%",
            "_",
            ";",
            "--",
            "metrics.",
            "params.",
            "tags.",
            ".max",
            ".min[",
            "status",
            "1e400",
            "-",
            "'; DROP TABLE runs; --",
        ];
        let t = pick[rng.random_range(0..pick.len())].to_string();
        match rng.random_range(0..3) {
            0 if i < toks.len() => toks[i] = t,
            1 if i < toks.len() => {
                toks.remove(i);
            }
            _ => toks.insert(i.min(toks.len()), t),
        }
    }
    format!("{}\n{order}", toks.join(" ")).into_bytes()
}

fn run_query(bytes: &[u8], _: &Path) {
    use astroclip_registry::{Dialect, query};
    let s = String::from_utf8_lossy(bytes);
    let (filter, order) = s.split_once('\n').unwrap_or((&s, ""));
    let order = (!order.trim().is_empty()).then_some(order.trim());
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        let _ = query::compile(Some(filter), order, d);
        let _ = query::field(filter, d);
    }
}

// ---------------------------------------------------------------- plugin manifests

const WASM_ENTRY: &[u8] = b"\0asm\x01\0\0\0";

fn gen_manifest(rng: &mut Rand, _: &Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let pick = |rng: &mut Rand, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let v = |rng: &mut Rand| {
        pick(rng, &["0.1.0", "1.2.0", "1.0.0", "2.0.0", "18446744073709551615.0.0", "1.2", "x", "", "1.2.0-beta"])
    };
    let (file, sha) = match rng.random_range(0..5) {
        0 => ("p.so".to_string(), hex::encode(Sha256::digest(b"not a library"))),
        1 => (
            pick(rng, &["../p.wasm", "/etc/passwd", "", ".", "sub/p.wasm", "p.wasm/"]),
            hex::encode(Sha256::digest(WASM_ENTRY)),
        ),
        2 => ("p.wasm".to_string(), "0".repeat(64)),
        _ => ("p.wasm".to_string(), hex::encode(Sha256::digest(WASM_ENTRY))),
    };
    let carrier =
        if file.ends_with(".so") { "native".to_string() } else { pick(rng, &["wasm", "wasm", "native", "python"]) };
    let mut text = format!(
        "[plugin]\nid = \"{}\"\nversion = \"{}\"\napi_version = \"{}\"\nkinds = [{}]\nmodality = \"photometry\"\n\n\
         [entry]\ncarrier = \"{carrier}\"\nfile = \"{file}\"\nsha256 = \"{sha}\"\n",
        pick(rng, &["photometry", "Photometry", "", "a/b", "x-1", &"a".repeat(65)]),
        v(rng),
        v(rng),
        pick(rng, &["\"tokenizer\"", "", "\"encoder\", \"loss\"", "\"nope\""]),
    );
    if rng.random() {
        text += &format!(
            "\n[capabilities]\nmax_memory_mb = {}\ndeadline_ms = {}\n",
            pick(rng, &["0", "4", "64", "4097", "4294967295", "-1"]),
            pick(rng, &["0", "1", "500", "18446744073709551615", "1e3"])
        );
    }
    text.into_bytes()
}

fn run_manifest(bytes: &[u8], scratch: &Path) {
    use astroclip_plugin_host::{Installed, PluginDir};
    let dir = scratch.join("plugin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).expect("scratch is writable");
    std::fs::write(dir.join("plugin.toml"), bytes).expect("scratch is writable");
    std::fs::write(dir.join("p.wasm"), WASM_ENTRY).expect("scratch is writable");
    std::fs::write(dir.join("sub/p.wasm"), WASM_ENTRY).expect("scratch is writable");
    std::fs::write(dir.join("p.so"), b"not a library").expect("scratch is writable");
    if let Ok(p) = PluginDir::open(&dir) {
        let _ = p.verify();
        let home = scratch.join("home");
        let _ = Installed::new(&home).add(&dir, true);
        let _ = Installed::new(&home).list();
    }
}

// ---------------------------------------------------------------- carrier frames

fn frame_seeds() -> Vec<Vec<u8>> {
    use astroclip_carrier_protocol::{Reply, Request, write_frame};
    let mut seeds = Vec::new();
    let mut b = Vec::new();
    write_frame(&mut b, &Request::Hello { protocol: 1 }, &[]).unwrap();
    write_frame(&mut b, &Request::Tokenize { shape: vec![2, 3], n: 1 }, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    seeds.push(b);
    let mut b = Vec::new();
    write_frame(&mut b, &Reply::Hello { protocol: 1, id: "p".into(), version: "0.1.0".into(), encoder: true }, &[])
        .unwrap();
    write_frame(&mut b, &Reply::Len { len: Some(4) }, &[]).unwrap();
    write_frame(&mut b, &Reply::Tokens { n: 1, len: 4 }, &[0.5; 4]).unwrap();
    seeds.push(b);
    seeds
}

fn run_frames(bytes: &[u8], _: &Path) {
    use astroclip_carrier_protocol::{Reply, Request, read_frame};
    let mut r = bytes;
    while let Ok(Some(_)) = read_frame::<Request>(&mut r) {}
    let mut r = bytes;
    while let Ok(Some(_)) = read_frame::<Reply>(&mut r) {}
}

// ---------------------------------------------------------------- the list

fn real(rel: &str) -> Vec<u8> {
    read(fixtures().join("real").join(rel))
}

fn generated(name: &str) -> Vec<u8> {
    read(fixtures().join("gen").join(name))
}

pub fn all() -> Vec<Target> {
    let experiments: Vec<Vec<u8>> = std::fs::read_dir(repo("experiments"))
        .expect("experiments/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(read)
        .collect();
    let manifests: Vec<Vec<u8>> = std::fs::read_dir(repo("plugins/examples"))
        .expect("plugins/examples/")
        .filter_map(|e| e.ok().map(|e| e.path().join("plugin.toml")))
        .filter(|p| p.exists())
        .map(read)
        .collect();
    vec![
        Target {
            name: "fits-desi",
            seeds: vec![
                real("specutils/io/default_loaders/tests/desi_test_data/coadd-sv3-dark-26065.fits"),
                real("fastspecfit/test/data/coadd-4-80613-thru20210324.fits"),
                real("fastspecfit/test/data/redrock-4-80613-thru20210324.fits"),
                generated("desi_missing_z.fits"),
            ],
            mutate: mutate_fits,
            generate: None,
            run: run_desi,
            cases: 1000,
        },
        Target {
            name: "fits-sdss",
            seeds: vec![real("ppxf/spectra/NGC3073_SDSS_DR18.fits")],
            mutate: mutate_fits,
            generate: None,
            run: run_sdss,
            cases: 1000,
        },
        Target {
            name: "fits-cutout",
            seeds: vec![generated("legacy_cutout.fits"), real("astroquery/image_cutouts/first/tests/data/image.fits")],
            mutate: mutate_fits,
            generate: None,
            run: run_cutout,
            cases: 3000,
        },
        Target {
            name: "hdf5-mmu-spectra",
            seeds: vec![generated("mmu_spectra.hdf5")],
            mutate: mutate_h5,
            generate: Some(gen_mmu_spectra),
            run: run_h5,
            cases: 1000,
        },
        Target {
            name: "hdf5-mmu-images",
            seeds: vec![],
            mutate: mutate_h5,
            generate: Some(gen_mmu_images),
            run: run_h5,
            cases: 1500,
        },
        Target {
            name: "hdf5-astroclip",
            seeds: vec![],
            mutate: mutate_h5,
            generate: Some(gen_astroclip),
            run: run_h5,
            cases: 2000,
        },
        Target {
            name: "config-toml",
            seeds: experiments,
            mutate: mutate_text,
            generate: None,
            run: run_toml,
            cases: 3000,
        },
        Target {
            name: "config-set",
            seeds: vec![],
            mutate: mutate_text,
            generate: Some(gen_set),
            run: run_set,
            cases: 3000,
        },
        Target {
            name: "query",
            seeds: QUERIES.iter().map(|q| q.as_bytes().to_vec()).collect(),
            mutate: mutate_query,
            generate: None,
            run: run_query,
            cases: 5000,
        },
        Target {
            name: "plugin-manifest",
            seeds: manifests,
            mutate: mutate_text,
            generate: Some(gen_manifest),
            run: run_manifest,
            cases: 2000,
        },
        Target {
            name: "carrier-frames",
            seeds: frame_seeds(),
            mutate: |rng, d| {
                let mut d = d.to_vec();
                mutate_bytes(rng, &mut d, None);
                d
            },
            generate: None,
            run: run_frames,
            cases: 5000,
        },
    ]
}
