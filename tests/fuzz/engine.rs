//! The fuzz engine: seeded byte and structure-aware mutation, one process, one case after
//! another, each under `catch_unwind` (a panic is a finding), with a watchdog for hangs and a
//! capped allocator for allocation aborts. A finding is written as a reproducer file that
//! `tests/fuzz/main.rs` replays as a regression case.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type Rand = ChaCha8Rng;

/// One fuzz target: seeds, how to derive a case from them, and what to run on a case.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Structure-aware mutation of one seed (byte mutations are added by the engine).
    pub mutate: fn(&mut Rand, &[u8]) -> Vec<u8>,
    /// Generates a case from nothing (structure-aware generators), when the target has one.
    pub generate: Option<fn(&mut Rand, &Path) -> Vec<u8>>,
    /// Runs the library on one case; `scratch` is a directory for files the case needs.
    pub run: fn(&[u8], &Path),
    /// Cases in the fixed-seed (CI) set.
    pub cases: usize,
}

/// Interesting integers, as text, for header values, TOML values and `--set` values.
pub const INTERESTING_TEXT: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "2",
    "7",
    "255",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "99999999999999999999999999",
    "100000000",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "0.0",
    "-0.5",
    "1.0",
    "0.999999",
    "''",
    "\"\"",
    "[]",
    "[0]",
    "{}",
    "true",
    "false",
    "'x'",
    "\"\\u0000\"",
];

const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    200_000,
    1 << 40,
];

/// Generic byte mutations (AFL's havoc in miniature).
pub fn mutate_bytes(rng: &mut Rand, data: &mut Vec<u8>, other: Option<&[u8]>) {
    let rounds = 1 + rng.random_range(0..4);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.random());
            continue;
        }
        let n = data.len();
        let at = rng.random_range(0..n);
        match rng.random_range(0..9) {
            0 => data[at] ^= 1 << rng.random_range(0..8),
            1 => data[at] = [0u8, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)],
            2 => {
                let v = INTERESTING_INTS[rng.random_range(0..INTERESTING_INTS.len())];
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
                let bytes = if rng.random() { v.to_le_bytes() } else { v.to_be_bytes() };
                let src = if bytes[0] == 0 && width < 8 { &bytes[8 - width..] } else { &bytes[..width] };
                for (k, b) in src.iter().enumerate() {
                    if at + k < n {
                        data[at + k] = *b;
                    }
                }
            }
            3 => {
                let len = rng.random_range(1..=(n - at).min(4096));
                data.drain(at..at + len);
            }
            4 => {
                let len = rng.random_range(1..=(n - at).min(4096));
                let chunk = data[at..at + len].to_vec();
                let to = rng.random_range(0..=data.len());
                data.splice(to..to, chunk);
            }
            5 => {
                let len = rng.random_range(1..64);
                let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                data.splice(at..at, junk);
            }
            6 => data.truncate(at),
            7 => {
                if let Some(o) = other.filter(|o| !o.is_empty()) {
                    let from = rng.random_range(0..o.len());
                    let len = rng.random_range(1..=(o.len() - from).min(4096));
                    let end = (at + len).min(n);
                    data.splice(at..end, o[from..from + len].iter().copied());
                }
            }
            _ => {
                let len = rng.random_range(1..=(n - at).min(256));
                let b = rng.random();
                data[at..at + len].fill(b);
            }
        }
    }
}

/// Text mutation: replaces a token (number, quoted string, word) with an interesting value,
/// or deletes, duplicates or swaps lines.
pub fn mutate_text(rng: &mut Rand, text: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(text).into_owned();
    let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())].as_bytes().to_vec();
    }
    for _ in 0..1 + rng.random_range(0..3) {
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..6) {
            0..=2 => {
                // Replace the value after `=` (TOML) or a random token.
                let line = &lines[i];
                let value = INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())];
                lines[i] = match line.split_once('=') {
                    Some((k, _)) if rng.random_range(0..4) != 0 => format!("{k}= {value}"),
                    _ => {
                        let toks: Vec<&str> = line.split(' ').collect();
                        let t = rng.random_range(0..toks.len());
                        toks.iter()
                            .enumerate()
                            .map(|(j, w)| if j == t { value } else { w })
                            .collect::<Vec<_>>()
                            .join(" ")
                    }
                };
            }
            3 => {
                lines.remove(i);
                if lines.is_empty() {
                    break;
                }
            }
            4 => {
                let l = lines[i].clone();
                lines.insert(rng.random_range(0..=lines.len()), l);
            }
            _ => {
                let j = rng.random_range(0..lines.len());
                lines.swap(i, j);
            }
        }
    }
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

/// What one target's run found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub cases: usize,
    /// The slowest case's time.
    pub slowest: Duration,
    pub panics: Vec<(String, PathBuf)>,
    pub elapsed: Duration,
}

thread_local! {
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Silences the panic message of panics inside a case (they are collected), keeps others.
pub fn install_quiet_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_CASE.with(|c| c.get()) {
            default(info);
        } else {
            let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.lock().map(|mut p| *p = format!("{} at {loc}", payload_text(info.payload()))).ok();
        }
    }));
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// The case in progress, for the watchdog: (target, start in ms since `EPOCH`, reproducer path).
static CURRENT: Mutex<Option<(&'static str, PathBuf)>> = Mutex::new(None);
static CASE_START_MS: AtomicU64 = AtomicU64::new(u64::MAX);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Starts the watchdog: a case running longer than `limit` is a hang; its reproducer is
/// saved under `out` and the process exits with status 3.
pub fn start_watchdog(limit: Duration, out: PathBuf) {
    now_ms();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let start = CASE_START_MS.load(Ordering::SeqCst);
            if start != u64::MAX && now_ms().saturating_sub(start) > limit.as_millis() as u64 {
                let cur = CURRENT.lock().ok().and_then(|c| c.clone());
                if let Some((target, case)) = cur {
                    let dest = out.join(format!("{target}-hang.bin"));
                    std::fs::create_dir_all(&out).ok();
                    std::fs::copy(&case, &dest).ok();
                    eprintln!("HANG: target {target}: a case ran over {limit:?}; reproducer {}", dest.display());
                }
                std::process::exit(3);
            }
        }
    });
}

fn hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Runs one case: writes it to `scratch/current.bin` first (so an abort or hang leaves its
/// reproducer), then the target under `catch_unwind`.
pub fn run_case(t: &Target, case: &[u8], scratch: &Path, out: &Path, outcome: &mut Outcome) {
    let current = scratch.join("current.bin");
    std::fs::write(&current, case).expect("scratch directory is writable");
    *CURRENT.lock().unwrap() = Some((t.name, current));
    CASE_START_MS.store(now_ms(), Ordering::SeqCst);
    IN_CASE.with(|c| c.set(true));
    let t0 = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(case, scratch)));
    IN_CASE.with(|c| c.set(false));
    CASE_START_MS.store(u64::MAX, Ordering::SeqCst);
    outcome.slowest = outcome.slowest.max(t0.elapsed());
    outcome.cases += 1;
    if result.is_err() {
        let msg = LAST_PANIC.lock().map(|p| p.clone()).unwrap_or_default();
        std::fs::create_dir_all(out).ok();
        let file = out.join(format!("{}-{}.bin", t.name, hash(case)));
        std::fs::File::create(&file).and_then(|mut f| f.write_all(case)).ok();
        outcome.panics.push((msg, file));
    }
}

/// Runs `t` for `cases` cases (or until `deadline`) from `seed`: a quarter generated (when the
/// target has a generator), the rest a seed file under structure-aware and byte mutation.
pub fn fuzz(t: &Target, seed: u64, cases: usize, deadline: Option<Instant>, scratch: &Path, out: &Path) -> Outcome {
    let started = Instant::now();
    std::fs::write(scratch.join("current-target"), t.name).expect("scratch directory is writable");
    let mut rng = Rand::seed_from_u64(seed ^ hash_name(t.name));
    let mut outcome = Outcome::default();
    for i in 0..cases {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let case = match t.generate {
            Some(g) if t.seeds.is_empty() || i % 4 == 0 => {
                let mut c = g(&mut rng, scratch);
                if rng.random_range(0..3) == 0 {
                    mutate_bytes(&mut rng, &mut c, None);
                }
                c
            }
            _ => {
                let s = &t.seeds[rng.random_range(0..t.seeds.len())];
                let other = &t.seeds[rng.random_range(0..t.seeds.len())];
                match rng.random_range(0..4) {
                    0 => {
                        let mut c = s.clone();
                        mutate_bytes(&mut rng, &mut c, Some(other));
                        c
                    }
                    1 => {
                        let mut c = (t.mutate)(&mut rng, s);
                        mutate_bytes(&mut rng, &mut c, Some(other));
                        c
                    }
                    _ => (t.mutate)(&mut rng, s),
                }
            }
        };
        run_case(t, &case, scratch, out, &mut outcome);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn hash_name(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The global allocator of the fuzz binary: refuses any single allocation over `CAP`, so a
/// file declaring a huge array aborts here ("memory allocation of N bytes failed") instead
/// of swapping the machine — an abort is a finding.
pub struct CappedAlloc;

pub const CAP: usize = 1 << 30;

// SAFETY: delegates to the system allocator; refusing (null) is allowed by GlobalAlloc.
unsafe impl std::alloc::GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
