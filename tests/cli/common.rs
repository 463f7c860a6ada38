//! Helpers shared by the end-to-end test files: the `astroclip` binary with a clean
//! environment, the repository root, output text and JSON, the tiny configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_astroclip"));
    // Tests must not inherit a developer's ASTROCLIP_* settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("ASTROCLIP_") {
            c.env_remove(k);
        }
    }
    c.arg("--log").arg("warn");
    c
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn run(home: &Path, args: &[&str]) -> Output {
    bin().arg("--home").arg(home).args(args).output().expect("spawn astroclip")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A small but complete configuration: 96 galaxies with 64-px cutouts, a few steps.
pub const TINY: &[&str] = &[
    "--set",
    "data.synth.n_galaxies=96",
    "--set",
    "data.synth.image_size=64",
    "--set",
    "data.test_fraction=0.25",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.steps=6",
    "--set",
    "train.warmup_steps=2",
    "--set",
    "train.log_every=2",
    "--set",
    "train.checkpoint_every=3",
    "--set",
    "eval.k=8",
];

pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", text(o)))
}

/// `run` against a given registry (`--registry`: a PostgreSQL URL) instead of `<home>/registry.db`.
pub fn runr(home: &Path, registry: Option<&str>, args: &[&str]) -> Output {
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
pub fn registries() -> Vec<Option<String>> {
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

pub fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{t}", std::process::id())
}

/// A run's logged `key` metric rows `(step, value)` in logging order, from `<home>/registry.db`.
pub fn metric_rows(home: &Path, id: &str, key: &str) -> Vec<(i64, f64)> {
    let reg = astroclip_registry::Registry::open(&home.join("registry.db")).expect("the test registry opens");
    reg.metric_history(id, key).expect("metric history").into_iter().map(|m| (m.step, m.value)).collect()
}

/// A stopped and resumed run must have logged exactly what the uninterrupted run logged: each
/// step once (a resume that restarted from step 0 would log the first steps twice) and the same
/// loss at every step — including the first one after the checkpoint, which a restart from
/// step 0 could only match by retraining the steps before it.
pub fn assert_resumed_exactly(home: &Path, resumed: &str, full: &str, stopped_after: i64) {
    let (r, f) = (metric_rows(home, resumed, "train.loss"), metric_rows(home, full, "train.loss"));
    assert!(!f.is_empty(), "the uninterrupted run logged no train.loss");
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), f.iter().map(|x| x.0).collect::<Vec<_>>(), "steps logged");
    let first_after = f.iter().position(|x| x.0 >= stopped_after).expect("a step logged after the stop");
    for (a, b) in r.iter().zip(&f) {
        assert_eq!(a.1, b.1, "train.loss at step {} (first resumed logged step {})", a.0, f[first_after].0);
    }
}

/// The DOM of a page after headless Chromium (Debian `chromium`, installed by scripts/test.sh)
/// loaded it, checked free of script errors. Without Chromium: `None`, with a note, unless
/// ASTROCLIP_REQUIRE_CHROMIUM=1, which scripts/test.sh (CI) always sets: there a missing
/// Chromium fails the test.
pub fn chromium_dom(page: &Path) -> Option<String> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(chromium) = chromium else {
        assert!(std::env::var("ASTROCLIP_REQUIRE_CHROMIUM").is_err(), "chromium is required but not found");
        eprintln!("chromium not installed: browser check skipped");
        return None;
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
    Some(dom.into_owned())
}

/// A numeric `data-*` attribute the page's load script wrote onto `<body>`.
pub fn dom_attr(dom: &str, name: &str) -> usize {
    let key = format!("{name}=\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not set: the page script did not run\n{}", &dom[..dom.len().min(2000)]));
    dom[at + key.len()..].split('"').next().unwrap().parse().unwrap()
}
