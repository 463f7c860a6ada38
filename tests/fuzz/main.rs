//! In-process fuzzing of everything a user can hand astroclip: data files (FITS: DESI coadds
//! and redrock catalogues, SDSS spectra, cutouts; HDF5: AstroCLIP layout, Multimodal Universe
//! spectra and images), experiment TOML and `--set` values, registry queries, plugin
//! manifests and the WASM carrier's frames. Readers and parsers must answer every case with a
//! value or an error: a panic, an allocation abort (the allocator refuses anything over 1 GiB)
//! or a case running over 30 s (the watchdog) is a finding.
//!
//! * `fixed_seed_campaign_finds_no_panic_abort_or_hang` (CI) runs a fixed seed set, about
//!   28 000 cases, and prints cases and time per target;
//! * `scripts/fuzz.sh --minutes N` runs `campaign_for_minutes` (ignored here) with fresh seeds
//!   and writes every finding as a reproducer file;
//! * every file in `tests/fuzz/regressions/` (a past finding, named `<target>-<hash>.bin`) is
//!   replayed first, by `past_findings_stay_fixed`.
#![allow(unsafe_code)] // the capped global allocator (engine.rs)

mod engine;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Outcome, Target};

#[global_allocator]
static ALLOC: engine::CappedAlloc = engine::CappedAlloc;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/regressions")
}

/// Where cases are written: a temporary directory, or ASTROCLIP_FUZZ_SCRATCH (kept, so that
/// after an abort `scripts/fuzz.sh` finds the case in progress there).
enum Scratch {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Temp(t) => t.path(),
            Scratch::Kept(p) => p,
        }
    }
}

fn setup() -> (Scratch, PathBuf) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let out = std::env::var_os("ASTROCLIP_FUZZ_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-findings"));
    ONCE.call_once(|| {
        engine::install_quiet_hook();
        engine::start_watchdog(Duration::from_secs(30), out.clone());
    });
    // Plugins added by the manifest target go to the scratch home, not the user's.
    let scratch = match std::env::var_os("ASTROCLIP_FUZZ_SCRATCH") {
        Some(p) => {
            std::fs::create_dir_all(&p).expect("ASTROCLIP_FUZZ_SCRATCH is creatable");
            Scratch::Kept(PathBuf::from(p))
        }
        None => Scratch::Temp(tempfile::tempdir().expect("a scratch directory")),
    };
    (scratch, out)
}

fn report(t: &Target, o: &Outcome) -> String {
    format!(
        "{:<18} {:>7} cases {:>8.1} s (slowest case {:>6.3} s) {:>3} panics",
        t.name,
        o.cases,
        o.elapsed.as_secs_f64(),
        o.slowest.as_secs_f64(),
        o.panics.len()
    )
}

fn check(outcomes: &[(String, Outcome)]) {
    let findings: Vec<String> = outcomes
        .iter()
        .flat_map(|(name, o)| {
            o.panics.iter().map(move |(msg, file)| format!("{name}: {msg} (case {})", file.display()))
        })
        .collect();
    let mut unique = findings.clone();
    unique.sort();
    unique.dedup_by(|a, b| a.split(" (case").next() == b.split(" (case").next());
    assert!(
        findings.is_empty(),
        "{} panicking cases, {} distinct:\n{}\nCopy a case file into tests/fuzz/regressions/ to keep it as a regression.",
        findings.len(),
        unique.len(),
        unique.join("\n")
    );
}

#[test]
fn past_findings_stay_fixed() {
    let (scratch, out) = setup();
    let targets = targets::all();
    let mut outcomes = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(regressions())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "bin")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let t = targets
            .iter()
            .find(|t| name.starts_with(&format!("{}-", t.name)))
            .unwrap_or_else(|| panic!("{name}: no fuzz target named by its prefix"));
        let mut o = Outcome::default();
        engine::run_case(t, &std::fs::read(file).unwrap(), scratch.path(), &out, &mut o);
        outcomes.push((t.name.to_string(), o));
    }
    println!("replayed {} past findings", outcomes.len());
    check(&outcomes);
}

#[test]
fn fixed_seed_campaign_finds_no_panic_abort_or_hang() {
    let (scratch, out) = setup();
    let scale: f64 = std::env::var("ASTROCLIP_FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut total = 0;
    let only = std::env::var("ASTROCLIP_FUZZ_TARGETS").ok();
    for t in targets::all().into_iter().filter(|t| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == t.name))) {
        let cases = ((t.cases as f64) * scale).round() as usize;
        let o = engine::fuzz(&t, 20_261_202, cases, None, scratch.path(), &out);
        println!("{}", report(&t, &o));
        total += o.cases;
        outcomes.push((t.name.to_string(), o));
    }
    println!("fuzz: {total} cases in {:.1} s", started.elapsed().as_secs_f64());
    check(&outcomes);
}

/// `scripts/fuzz.sh --minutes N`: fresh seeds (ASTROCLIP_FUZZ_SEED or the clock), the time
/// split evenly between targets; findings go to ASTROCLIP_FUZZ_OUT.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn campaign_for_minutes() {
    let (scratch, out) = setup();
    let minutes: f64 = std::env::var("ASTROCLIP_FUZZ_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let seed: u64 = std::env::var("ASTROCLIP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    println!("fuzz seed {seed}, {minutes} minutes, findings to {}", out.display());
    let targets = targets::all();
    let share = Duration::from_secs_f64(minutes * 60.0 / targets.len() as f64);
    let mut outcomes = Vec::new();
    for t in &targets {
        let o = engine::fuzz(t, seed, usize::MAX, Some(Instant::now() + share), scratch.path(), &out);
        println!("{}", report(t, &o));
        outcomes.push((t.name.to_string(), o));
    }
    check(&outcomes);
}
