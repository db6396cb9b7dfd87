//! Mutation ("fuzz") tests of every file loader, on stable Rust and without a fuzzing crate.
//!
//! Each test starts from REAL files (the official B1 scales, CIFAR-10 JPEGs, Fashion-MNIST IDX
//! files, the checkpoints and run records of a real `repopt train` run, ...) and mutates them
//! many times with a seeded driver: truncation at random lengths (0 bytes included), bit flips,
//! byte overwrites, runs of `0x00` / `0xFF`, insertions, deletions, stacks of those, targeted
//! overwrites of header and size fields with huge, zero and off-by-one values, and
//! format-aware mutations that keep checksums and length fields consistent so that the
//! mutation reaches the parser behind them (safetensors header JSON, burnpack CBOR, PyTorch
//! zip + pickle, PNG scanlines, IDX inside gzip).
//!
//! Every mutated input must give `Ok` or an `Err` (naming the file, for our own loaders) —
//! never a panic (caught with `catch_unwind`, counted, and printed with the loader, the
//! mutation and its seed) and never a single allocation above [`ALLOC_BOUND`]: the test binary's
//! global allocator refuses those (returns null, after printing the case on stderr) and records
//! them, and every test asserts that nothing was refused.
//!
//! `cargo test -p repopt-train --test mutation -- --nocapture` prints one line per loader:
//! `mutation: <loader>: N inputs, P panics, max allocation X MiB`.
//! `REPOPT_MUTATION_SCALE=10` runs ten times as many mutations (same seeds, more cases).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::fs;
use std::io::{Read, Write};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::Checkpoint;
use image::{DynamicImage, ImageFormat};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use repopt_models::{RepOptVggConfig, VggScales};
use repopt_train::data::idx::parse_idx;
use repopt_train::data::image_folder::{decode, to_item};
use repopt_train::data::{
    CifarDataset, CifarKind, ColorMode, IdxDataset, ImageFolder, ImageFolderOptions, ImageItem,
    Split, Validation, read_idx, write_cifar10,
};
use repopt_train::run_folder::{load_checkpoint_model, load_model_file};
use repopt_train::{RunConfig, RunRecord};

// ---------------------------------------------------------------------------------------------
// The allocation bound, enforced by the global allocator of this test binary.
// ---------------------------------------------------------------------------------------------

/// No single allocation may be larger than this (1 GiB). The real inputs need at most a few
/// tens of MiB (the largest is a decompressed Fashion-MNIST image file, 47 MiB).
const ALLOC_BOUND: usize = 1 << 30;

/// Wraps [`System`]: refuses (returns null) any allocation larger than [`ALLOC_BOUND`] after
/// recording it, and records per thread the largest allocation made.
struct BoundedAlloc;

/// The largest refused allocation of the whole process (0: none).
static REFUSED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The largest allocation of this thread since the driver last reset it.
    static PEAK: Cell<usize> = const { Cell::new(0) };
    /// The largest refused allocation of this thread since the driver last reset it.
    static REFUSED_HERE: Cell<usize> = const { Cell::new(0) };
    /// The case being run by this thread, printed when an allocation is refused.
    static CASE: RefCell<([u8; 320], usize)> = const { RefCell::new(([0; 320], 0)) };
    /// Whether this thread is inside a mutated case (its panics are recorded, not printed).
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic of a case on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl BoundedAlloc {
    /// Whether an allocation of `size` bytes may go ahead.
    fn admit(size: usize) -> bool {
        if size > ALLOC_BOUND {
            REFUSED.fetch_max(size, Ordering::Relaxed);
            let _ = REFUSED_HERE.try_with(|r| r.set(r.get().max(size)));
            report_refusal(size);
            return false;
        }
        let _ = PEAK.try_with(|p| {
            if size > p.get() {
                p.set(size);
            }
        });
        true
    }
}

// SAFETY: every call is forwarded to `System` unchanged, or answered with null (allowed: it
// means the allocation failed).
unsafe impl GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::admit(new_size) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
}

#[global_allocator]
static ALLOCATOR: BoundedAlloc = BoundedAlloc;

/// Writes "allocation of N bytes refused ... during <case>" to stderr without allocating (an
/// infallible allocation that gets null aborts the process right after).
fn report_refusal(size: usize) {
    let mut buf = [0u8; 640];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = size;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(b"\nmutation: REFUSED an allocation of ");
    put(&digits[d..]);
    put(b" bytes (bound: 1 GiB) during: ");
    let _ = CASE.try_with(|case| {
        if let Ok(case) = case.try_borrow() {
            put(&case.0[..case.1]);
        }
    });
    put(b"\n");
    let _ = std::io::stderr().write_all(&buf[..len]);
}

fn set_case(text: &str) {
    CASE.with(|case| {
        let mut case = case.borrow_mut();
        let n = text.len().min(case.0.len());
        case.0[..n].copy_from_slice(&text.as_bytes()[..n]);
        case.1 = n;
    });
}

/// Panics inside a case are recorded for the report instead of printed; others (the tests'
/// own assertions) go to the default hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let message = info.to_string();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
            } else {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// The mutation engine.
// ---------------------------------------------------------------------------------------------

/// A header or size field of a format, overwritten by the targeted mutations.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    at: usize,
    width: usize,
    big_endian: bool,
}

impl Field {
    fn be(name: impl Into<String>, at: usize, width: usize) -> Self {
        Self {
            name: name.into(),
            at,
            width,
            big_endian: true,
        }
    }

    fn le(name: impl Into<String>, at: usize, width: usize) -> Self {
        Self {
            name: name.into(),
            at,
            width,
            big_endian: false,
        }
    }

    fn max(&self) -> u64 {
        if self.width >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.width)) - 1
        }
    }

    fn read(&self, bytes: &[u8]) -> Option<u64> {
        let b = bytes.get(self.at..self.at + self.width)?;
        let mut v = 0u64;
        for i in 0..self.width {
            let byte = if self.big_endian {
                b[i]
            } else {
                b[self.width - 1 - i]
            };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    }

    fn write(&self, bytes: &mut [u8], value: u64) -> bool {
        let Some(b) = bytes.get_mut(self.at..self.at + self.width) else {
            return false;
        };
        for i in 0..self.width {
            let byte = (value >> (8 * i)) as u8;
            if self.big_endian {
                b[self.width - 1 - i] = byte;
            } else {
                b[i] = byte;
            }
        }
        true
    }
}

/// Where the interesting bytes of an input are: its fields, and a "hot" range (the header)
/// that half the random positions fall into.
#[derive(Debug, Clone, Default)]
struct Spots {
    fields: Vec<Field>,
    hot: Range<usize>,
}

type Custom = Box<dyn Fn(&[u8], &mut StdRng) -> Option<(Vec<u8>, String)> + Send + Sync>;
type Repair = fn(&mut [u8]);

/// A real input and how to mutate it.
struct Target {
    name: String,
    bytes: Vec<u8>,
    spots: Spots,
    /// Format-aware mutations.
    custom: Vec<(&'static str, Custom)>,
    /// Re-computes checksums after a mutation (applied to half the cases).
    repair: Option<(&'static str, Repair)>,
    cases: usize,
}

impl Target {
    fn new(name: impl Into<String>, bytes: Vec<u8>, cases: usize) -> Self {
        let hot = 0..bytes.len().min(64);
        Self {
            name: name.into(),
            bytes,
            spots: Spots {
                fields: Vec::new(),
                hot,
            },
            custom: Vec::new(),
            repair: None,
            cases,
        }
    }

    fn spots(mut self, spots: Spots) -> Self {
        self.spots = spots;
        self
    }

    fn custom(mut self, name: &'static str, f: Custom) -> Self {
        self.custom.push((name, f));
        self
    }

    fn repair(mut self, name: &'static str, f: Repair) -> Self {
        self.repair = Some((name, f));
        self
    }
}

const GENERIC_KINDS: usize = 8;

fn pick_pos(len: usize, hot: &Range<usize>, rng: &mut StdRng) -> usize {
    if len == 0 {
        return 0;
    }
    let hot_end = hot.end.min(len);
    if hot.start < hot_end && rng.random_bool(0.5) {
        rng.random_range(hot.start..hot_end)
    } else {
        rng.random_range(0..len)
    }
}

fn run_len(len: usize, rng: &mut StdRng) -> usize {
    if rng.random_bool(0.75) || len < 2 {
        rng.random_range(1..=16)
    } else {
        rng.random_range(1..=len)
    }
}

/// An interesting value for a field of `width` bytes that held `orig`.
fn field_value(max: u64, orig: u64, rng: &mut StdRng) -> u64 {
    match rng.random_range(0..11) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max - 1,
        4 => max >> 1,
        5 => (max >> 1) + 1,
        6 => orig.wrapping_add(1) & max,
        7 => orig.wrapping_sub(1) & max,
        8 => orig.saturating_mul(2).min(max),
        9 => (1u64 << rng.random_range(8..64)).min(max),
        _ => rng.random::<u64>() & max,
    }
}

/// Applies one generic mutation of kind `kind` (0..GENERIC_KINDS) and describes it.
fn generic_kind(bytes: &mut Vec<u8>, kind: usize, spots: &Spots, rng: &mut StdRng) -> String {
    let len = bytes.len();
    let kind = if kind == 7 && spots.fields.is_empty() {
        2
    } else {
        kind
    };
    match kind {
        0 => {
            let new = match rng.random_range(0..4) {
                0 => 0,
                1 => pick_pos(len, &spots.hot, rng),
                _ => rng.random_range(0..=len),
            };
            bytes.truncate(new);
            format!("truncate {len} -> {new} bytes")
        }
        1 => {
            let mut at = Vec::new();
            for _ in 0..rng.random_range(1..=8) {
                if bytes.is_empty() {
                    break;
                }
                let p = pick_pos(len, &spots.hot, rng);
                let bit = rng.random_range(0..8);
                bytes[p] ^= 1 << bit;
                at.push(format!("{p}.{bit}"));
            }
            format!("bit flips at {}", at.join(","))
        }
        2 => {
            let mut at = Vec::new();
            for _ in 0..rng.random_range(1..=8) {
                if bytes.is_empty() {
                    break;
                }
                let p = pick_pos(len, &spots.hot, rng);
                let v = rng.random::<u8>();
                bytes[p] = v;
                at.push(format!("{p}={v:#04x}"));
            }
            format!("byte overwrites {}", at.join(","))
        }
        3 | 4 => {
            let v = if kind == 3 { 0x00 } else { 0xFF };
            let p = pick_pos(len, &spots.hot, rng);
            let n = run_len(len, rng);
            let end = (p + n).min(len);
            bytes[p..end].fill(v);
            format!("run of {v:#04x} over {p}..{end}")
        }
        5 => {
            let p = pick_pos(len + 1, &spots.hot, rng).min(len);
            let n = run_len(len.max(64), rng);
            let what = rng.random_range(0..3);
            let insert: Vec<u8> = match what {
                0 => vec![0; n],
                1 => vec![0xFF; n],
                _ => (0..n).map(|_| rng.random()).collect(),
            };
            bytes.splice(p..p, insert);
            let what = ["0x00", "0xff", "random"][what];
            format!("insert {n} {what} bytes at {p}")
        }
        6 => {
            if len == 0 {
                return "delete nothing (empty)".into();
            }
            let p = pick_pos(len, &spots.hot, rng);
            let n = run_len(len, rng).min(len - p);
            bytes.drain(p..p + n);
            format!("delete {n} bytes at {p}")
        }
        _ => {
            let f = &spots.fields[rng.random_range(0..spots.fields.len())];
            let orig = f.read(bytes).unwrap_or(0);
            let v = field_value(f.max(), orig, rng);
            if f.write(bytes, v) {
                format!(
                    "field {} @{} ({} bytes): {orig} -> {v}",
                    f.name, f.at, f.width
                )
            } else {
                format!("field {} @{} beyond the end (unchanged)", f.name, f.at)
            }
        }
    }
}

/// One random generic mutation.
fn generic(bytes: &mut Vec<u8>, spots: &Spots, rng: &mut StdRng) -> String {
    let kind = rng.random_range(0..GENERIC_KINDS);
    generic_kind(bytes, kind, spots, rng)
}

/// A mutated copy of `target` and its description.
fn mutate(target: &Target, rng: &mut StdRng) -> (Vec<u8>, String) {
    let kinds = GENERIC_KINDS + target.custom.len() + 1;
    let kind = rng.random_range(0..kinds);
    let (mut bytes, mut desc) = if kind < GENERIC_KINDS {
        let mut b = target.bytes.clone();
        let d = generic_kind(&mut b, kind, &target.spots, rng);
        (b, d)
    } else if kind < GENERIC_KINDS + target.custom.len() {
        let (name, f) = &target.custom[kind - GENERIC_KINDS];
        match f(&target.bytes, rng) {
            Some((b, d)) => (b, format!("{name}: {d}")),
            None => {
                let mut b = target.bytes.clone();
                let d = generic_kind(&mut b, 1, &target.spots, rng);
                (b, format!("{name} not applicable; {d}"))
            }
        }
    } else {
        let mut b = target.bytes.clone();
        let parts: Vec<String> = (0..rng.random_range(2..=4))
            .map(|_| generic(&mut b, &target.spots, rng))
            .collect();
        (b, format!("stacked: {}", parts.join(" + ")))
    };
    if let Some((name, repair)) = target.repair
        && rng.random_bool(0.5)
    {
        repair(&mut bytes);
        desc.push_str(&format!(", then {name}"));
    }
    (bytes, desc)
}

// ---------------------------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------------------------

/// What one mutated input gave. `Err` messages are the loaders' errors; messages starting
/// with `FAIL:` are broken expectations (an error that does not name the file, a dataset
/// item that does not have its shape, ...), which fail the test like a panic.
type Outcome = Vec<String>;

/// Pushes the error of `result` (checked to name one of `paths`), returns the value.
fn named<T, E: Display>(out: &mut Outcome, paths: &[&Path], result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = e.to_string();
            if !paths.iter().any(|p| msg.contains(&p.display().to_string())) {
                out.push(format!("FAIL: error does not name the file: {msg}"));
            }
            out.push(msg);
            None
        }
    }
}

/// Pushes the error of `result` (a loader that is not ours: no check of the message).
fn noted<T, E: Display>(out: &mut Outcome, result: Result<T, E>) -> Option<T> {
    result.map_err(|e| out.push(e.to_string())).ok()
}

fn check(out: &mut Outcome, ok: bool, what: impl FnOnce() -> String) {
    if !ok {
        out.push(format!("FAIL: {}", what()));
    }
}

/// Panics found in code this crate's loaders cannot fix here (Burn, or files owned elsewhere),
/// reported in docs/reliability.md: `(loader name prefix, text of the panic message, why)`.
/// They are counted and printed, but do not fail the test; any other panic does.
const KNOWN_PANICS: &[(&str, &str, &str)] = &[];

#[derive(Default)]
struct Report {
    inputs: usize,
    loaded: usize,
    errors: usize,
    panics: Vec<String>,
    known_panics: Vec<String>,
    peak_case: String,
    failures: Vec<String>,
    refusals: Vec<String>,
    base_errors: Vec<String>,
    peak: usize,
}

fn scale() -> f64 {
    std::env::var("REPOPT_MUTATION_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The seed of case `i` of target `name` of `loader`.
fn case_seed(loader: &str, name: &str, i: usize) -> u64 {
    fnv(loader) ^ fnv(name).rotate_left(17) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs `run` on each target unmodified (it must load) and on `cases` mutations of it; prints
/// the report line and panics on a panic, a refused allocation or a broken expectation.
fn fuzz(loader: &str, targets: &[Target], run: &mut dyn FnMut(&Target, &[u8]) -> Outcome) {
    install_panic_hook();
    let started = Instant::now();
    let mut report = Report::default();
    for target in targets {
        let cases = ((target.cases as f64) * scale()).round() as usize;
        for i in 0..=cases {
            let seed = case_seed(loader, &target.name, i);
            let mut rng = StdRng::seed_from_u64(seed);
            let (bytes, desc) = if i == 0 {
                (target.bytes.clone(), "unmodified".to_string())
            } else {
                mutate(target, &mut rng)
            };
            let case = format!("{loader} / {} / {desc} / seed {seed:#018x}", target.name);
            set_case(&case);
            PEAK.with(|p| p.set(0));
            REFUSED_HERE.with(|r| r.set(0));
            LAST_PANIC.with(|p| p.borrow_mut().take());
            IN_CASE.with(|c| c.set(true));
            let result = catch_unwind(AssertUnwindSafe(|| run(target, &bytes)));
            IN_CASE.with(|c| c.set(false));
            let peak = PEAK.with(Cell::get);
            if peak > report.peak {
                report.peak = peak;
                report.peak_case = case.clone();
            }
            let refused = REFUSED_HERE.with(Cell::get);
            if refused > 0 {
                report
                    .refusals
                    .push(format!("{refused} bytes refused in {case}"));
            }
            if i > 0 {
                report.inputs += 1;
            }
            match result {
                Err(_) => {
                    let message = LAST_PANIC
                        .with(|p| p.borrow_mut().take())
                        .unwrap_or_else(|| "(no message)".into());
                    let known = KNOWN_PANICS
                        .iter()
                        .find(|(l, text, _)| loader.starts_with(l) && message.contains(text));
                    let line = format!("{case}\n      {}", message.replace('\n', " "));
                    match known {
                        Some((_, _, why)) => report
                            .known_panics
                            .push(format!("{line}\n      known: {why}")),
                        None => report.panics.push(line),
                    }
                }
                Ok(outcome) => {
                    let (fails, errors): (Vec<String>, Vec<String>) =
                        outcome.into_iter().partition(|m| m.starts_with("FAIL:"));
                    for f in fails {
                        report.failures.push(format!("{case}\n      {f}"));
                    }
                    if i == 0 {
                        if let Some(e) = errors.first() {
                            report.base_errors.push(format!("{case}: {e}"));
                        }
                    } else if errors.is_empty() {
                        report.loaded += 1;
                    } else {
                        report.errors += 1;
                    }
                }
            }
        }
    }
    set_case("");
    let known = if report.known_panics.is_empty() {
        String::new()
    } else {
        format!(
            " ({} known, outside this crate's loaders; {} new)",
            report.known_panics.len(),
            report.panics.len()
        )
    };
    println!(
        "mutation: {loader}: {} inputs, {} panics{known}, max allocation {:.1} MiB",
        report.inputs,
        report.panics.len() + report.known_panics.len(),
        report.peak as f64 / (1 << 20) as f64
    );
    println!(
        "    ({} loaded, {} rejected with an error; {} real input(s): {}; {:.1} s)",
        report.loaded,
        report.errors,
        targets.len(),
        targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    println!("    largest allocation in: {}", report.peak_case);
    for p in report.panics.iter().take(20) {
        println!("  PANIC {p}");
    }
    for p in report.known_panics.iter().take(3) {
        println!("  KNOWN PANIC {p}");
    }
    for f in report.failures.iter().take(20) {
        println!("  FAILURE {f}");
    }
    for r in &report.refusals {
        println!("  ALLOCATION {r}");
    }
    assert!(
        report.base_errors.is_empty(),
        "{loader}: the unmodified real input does not load: {:?}",
        report.base_errors
    );
    assert_eq!(report.panics.len(), 0, "{loader}: new panics (see above)");
    assert!(
        report.refusals.is_empty() && REFUSED.load(Ordering::Relaxed) == 0,
        "{loader}: allocations above the 1 GiB bound (see above)"
    );
    assert!(
        report.failures.is_empty(),
        "{loader}: {} broken expectations (see above)",
        report.failures.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Real inputs, made once per test binary.
// ---------------------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mutation-fixtures")
}

/// The run folder of one short real `repopt train` run on Fashion-MNIST.
fn run_dir() -> Option<&'static Path> {
    static RUN: OnceLock<Option<PathBuf>> = OnceLock::new();
    RUN.get_or_init(|| {
        let data = common::fashion_mnist()?;
        let out = fixtures_dir().join("run");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(fixtures_dir()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_repopt"))
            .args(common::tiny_train(
                "repopt-ones",
                data,
                [256, 64, 1, 64],
                &out,
            ))
            .output()
            .expect("run the repopt binary");
        assert!(
            output.status.success(),
            "repopt train failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(out)
    })
    .as_deref()
}

/// Real CIFAR-10 test images (2 per class): the JPEG bytes and the decoded item.
type EncodedAndDecoded = (Vec<u8>, ImageItem);

fn cifar_images() -> Option<&'static [EncodedAndDecoded]> {
    static IMAGES: OnceLock<Option<Vec<EncodedAndDecoded>>> = OnceLock::new();
    IMAGES
        .get_or_init(|| {
            let archive = common::cifar10_jpg()?;
            let dest = fixtures_dir().join("cifar");
            let _ = fs::remove_dir_all(&dest);
            let test = common::extract_cifar10_subset(&archive, &dest, "test", &["0000", "0001"]);
            let folder = ImageFolder::open(&test).unwrap();
            assert_eq!(folder.len(), 20);
            Some(
                (0..folder.len())
                    .map(|i| {
                        let bytes = fs::read(&folder.samples()[i].0).unwrap();
                        (bytes, folder.load(i).unwrap())
                    })
                    .collect(),
            )
        })
        .as_deref()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

fn u16_le(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_le(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn u16_be(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_be(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Replaces a digit run of `text` (chosen at random) by a huge, zero, negative or odd number.
fn replace_number(text: &[u8], rng: &mut StdRng) -> Option<(Vec<u8>, String)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let start = i;
            while i < text.len() && text[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return None;
    }
    const VALUES: [&str; 14] = [
        "0",
        "1",
        "-1",
        "255",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
        "1e999",
        "-1e999",
        "1.5",
        "1e-999",
    ];
    let run = runs[rng.random_range(0..runs.len())].clone();
    let value = VALUES[rng.random_range(0..VALUES.len())];
    let mut out = text[..run.start].to_vec();
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&text[run.end..]);
    let old = String::from_utf8_lossy(&text[run.clone()]).into_owned();
    Some((out, format!("number {old} at {} -> {value}", run.start)))
}

/// Replaces one occurrence of one of `from` by one of `to`.
fn replace_token(
    text: &[u8],
    from: &[&str],
    to: &[&str],
    rng: &mut StdRng,
) -> Option<(Vec<u8>, String)> {
    let mut hits = Vec::new();
    for f in from {
        let f = f.as_bytes();
        for i in 0..text.len().saturating_sub(f.len() - 1) {
            if &text[i..i + f.len()] == f {
                hits.push((i, f.len()));
            }
        }
    }
    if hits.is_empty() {
        return None;
    }
    let (at, len) = hits[rng.random_range(0..hits.len())];
    let value = to[rng.random_range(0..to.len())];
    let mut out = text[..at].to_vec();
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&text[at + len..]);
    let old = String::from_utf8_lossy(&text[at..at + len]).into_owned();
    Some((out, format!("{old} at {at} -> {value}")))
}

/// JSON-aware mutations (for run records and configs).
fn json_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let len = bytes.len();
    Target::new(name, bytes, cases)
        .spots(Spots {
            fields: Vec::new(),
            hot: 0..len,
        })
        .custom("json number", Box::new(replace_number))
        .custom(
            "json literal",
            Box::new(|b, rng| {
                replace_token(
                    b,
                    &["true", "false", "null", "\""],
                    &["false", "true", "null", "0", "\"\"", "[]", "{}", "\"x"],
                    rng,
                )
            }),
        )
        .custom(
            "json deep nesting",
            Box::new(|b, rng| {
                let at = rng.random_range(0..=b.len());
                let depth = [200, 10_000, 100_000][rng.random_range(0..3)];
                let open = if rng.random_bool(0.5) { b'[' } else { b'{' };
                let mut out = b[..at].to_vec();
                out.extend(std::iter::repeat_n(open, depth));
                out.extend_from_slice(&b[at..]);
                Some((out, format!("{depth} x {} at {at}", open as char)))
            }),
        )
}

// ---------------------------------------------------------------------------------------------
// Format helpers: safetensors, burnpack (CBOR), zip + pickle, PNG, JPEG.
// ---------------------------------------------------------------------------------------------

fn safetensors_split(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?;
    Some((b.get(8..8usize.checked_add(n)?)?, &b[8 + n..]))
}

fn safetensors_join(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Positions `(value start, width)` of the CBOR unsigned integers that follow the text keys
/// `keys` (a single value or an array of them); width 0 = value in the initial byte.
fn cbor_uints_after(meta: &[u8], keys: &[&str]) -> Vec<(usize, usize)> {
    let uint = |p: usize| -> Option<(usize, usize, usize)> {
        let h = *meta.get(p)?;
        if h >> 5 != 0 {
            return None;
        }
        match h & 0x1f {
            0..=23 => Some((p, 0, p + 1)),
            24 => Some((p + 1, 1, p + 2)),
            25 => Some((p + 1, 2, p + 3)),
            26 => Some((p + 1, 4, p + 5)),
            27 => Some((p + 1, 8, p + 9)),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for key in keys {
        let mut pattern = vec![0x60 + key.len() as u8];
        pattern.extend_from_slice(key.as_bytes());
        for i in 0..meta.len().saturating_sub(pattern.len() - 1) {
            if meta[i..i + pattern.len()] != pattern[..] {
                continue;
            }
            let mut p = i + pattern.len();
            let Some(&h) = meta.get(p) else { continue };
            let count = match h {
                0x80..=0x97 => {
                    p += 1;
                    usize::from(h - 0x80)
                }
                0x98 => {
                    p += 2;
                    meta.get(p - 1).map_or(0, |&n| usize::from(n))
                }
                _ => 1,
            };
            for _ in 0..count {
                let Some((at, width, next)) = uint(p) else {
                    break;
                };
                out.push((at, width));
                p = next;
            }
        }
    }
    out
}

/// Burnpack mutations that keep the header consistent: CBOR integers of shapes, data offsets,
/// parameter ids and scalars overwritten in place, dtype names swapped.
fn burnpack_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let meta_len = u32_le(&bytes, 6).unwrap_or(0);
    let spots = Spots {
        fields: vec![
            Field::le("magic", 0, 4),
            Field::le("version", 4, 2),
            Field::le("metadata size", 6, 4),
        ],
        hot: 0..(10 + meta_len).min(bytes.len()),
    };
    Target::new(name, bytes, cases)
        .spots(spots)
        .custom(
            "cbor integer",
            Box::new(|b, rng| {
                let meta_len = u32_le(b, 6)?;
                let meta = b.get(10..10 + meta_len)?;
                let spots =
                    cbor_uints_after(meta, &["shape", "data_offsets", "param_id", "UInt", "Int"]);
                if spots.is_empty() {
                    return None;
                }
                let (at, width) = spots[rng.random_range(0..spots.len())];
                let mut out = b.to_vec();
                let at = at + 10;
                if width == 0 {
                    let v = [0u8, 1, 23][rng.random_range(0..3)];
                    out[at] = v;
                    Some((out, format!("immediate integer at {at} -> {v}")))
                } else {
                    let f = Field::be("cbor", at, width);
                    let v = field_value(f.max(), f.read(b)?, rng);
                    f.write(&mut out, v);
                    Some((out, format!("{width}-byte integer at {at} -> {v}")))
                }
            }),
        )
        .custom(
            "cbor dtype",
            Box::new(|b, rng| {
                replace_token(
                    b,
                    &["\x63F32", "\x63I64", "\x63U64", "\x63F64"],
                    &[
                        "\x63F64", "\x63F16", "\x63I64", "\x63I32", "\x63I16", "\x63U32",
                        "\x63U16", "\x63XYZ",
                    ],
                    rng,
                )
            }),
        )
        .custom(
            "cbor float",
            Box::new(|b, rng| {
                let hits: Vec<usize> = (0..b.len().saturating_sub(9))
                    .filter(|&i| b[i] == 0xfb && i > 6 && &b[i - 6..i] == b"\x65Float")
                    .collect();
                if hits.is_empty() {
                    return None;
                }
                let at = hits[rng.random_range(0..hits.len())] + 1;
                let v = [
                    f64::NAN,
                    f64::INFINITY,
                    -1.0,
                    1e308,
                    -0.0,
                    f64::MIN_POSITIVE,
                ][rng.random_range(0..6)];
                let mut out = b.to_vec();
                out[at..at + 8].copy_from_slice(&v.to_be_bytes());
                Some((out, format!("float at {at} -> {v}")))
            }),
        )
}

#[derive(Clone)]
struct ZipEntry {
    name: Vec<u8>,
    data: Vec<u8>,
}

/// The stored entries of a zip archive (from its central directory), or `None`.
fn zip_entries(b: &[u8]) -> Option<Vec<ZipEntry>> {
    let eocd = (0..=b.len().checked_sub(22)?)
        .rev()
        .find(|&i| b[i..i + 4] == [0x50, 0x4b, 5, 6])?;
    let count = u16_le(b, eocd + 10)?;
    let mut p = u32_le(b, eocd + 16)?;
    let mut out = Vec::new();
    for _ in 0..count {
        if b.get(p..p + 4)? != [0x50, 0x4b, 1, 2] || u16_le(b, p + 10)? != 0 {
            return None;
        }
        let size = u32_le(b, p + 20)?;
        let (nlen, elen, clen) = (u16_le(b, p + 28)?, u16_le(b, p + 30)?, u16_le(b, p + 32)?);
        let local = u32_le(b, p + 42)?;
        let name = b.get(p + 46..p + 46 + nlen)?.to_vec();
        let start = local + 30 + u16_le(b, local + 26)? + u16_le(b, local + 28)?;
        let data = b.get(start..start + size)?.to_vec();
        out.push(ZipEntry { name, data });
        p += 46 + nlen + elen + clen;
    }
    Some(out)
}

/// A zip archive of stored entries with correct sizes and checksums.
fn zip_build(entries: &[ZipEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let crc = crc32(&e.data);
        let size = e.data.len() as u32;
        let mut common = Vec::new();
        common.extend_from_slice(&20u16.to_le_bytes()); // version needed
        common.extend_from_slice(&0u16.to_le_bytes()); // flags
        common.extend_from_slice(&0u16.to_le_bytes()); // stored
        common.extend_from_slice(&0u32.to_le_bytes()); // time, date
        common.extend_from_slice(&crc.to_le_bytes());
        common.extend_from_slice(&size.to_le_bytes());
        common.extend_from_slice(&size.to_le_bytes());
        common.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        common.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(&[0x50, 0x4b, 3, 4]);
        out.extend_from_slice(&common);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);
        central.extend_from_slice(&[0x50, 0x4b, 1, 2]);
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&common);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 5, 6, 0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Re-computes the checksum of every entry (local header and central directory), in place.
fn zip_fix_crc(b: &mut [u8]) {
    let Some(eocd) = b.len().checked_sub(22).and_then(|last| {
        (0..=last)
            .rev()
            .find(|&i| b[i..i + 4] == [0x50, 0x4b, 5, 6])
    }) else {
        return;
    };
    let (Some(count), Some(mut p)) = (u16_le(b, eocd + 10), u32_le(b, eocd + 16)) else {
        return;
    };
    for _ in 0..count {
        let fields = (|| {
            if b.get(p..p + 4)? != [0x50, 0x4b, 1, 2] {
                return None;
            }
            let size = u32_le(b, p + 20)?;
            let local = u32_le(b, p + 42)?;
            let start = local + 30 + u16_le(b, local + 26)? + u16_le(b, local + 28)?;
            let crc = crc32(b.get(start..start + size)?);
            let next = p + 46 + u16_le(b, p + 28)? + u16_le(b, p + 30)? + u16_le(b, p + 32)?;
            Some((local, crc, next))
        })();
        let Some((local, crc, next)) = fields else {
            return;
        };
        b[p + 16..p + 20].copy_from_slice(&crc.to_le_bytes());
        if local + 18 <= b.len() {
            b[local + 14..local + 18].copy_from_slice(&crc.to_le_bytes());
        }
        p = next;
    }
}

/// The opcodes of a protocol-2 pickle as `(position, opcode, length)`, up to the first one
/// this walker does not know.
fn pickle_ops(p: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut ops = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let op = p[i];
        let arg = match op {
            0x80 | b'q' | b'h' | b'K' => Some(1),
            b'r' | b'j' | b'J' => Some(4),
            b'M' => Some(2),
            b'G' => Some(8),
            b'X' => u32_le(p, i + 1).map(|n| 4 + n),
            0x8a | 0x8c => p.get(i + 1).map(|&n| 1 + usize::from(n)),
            b'c' => {
                let first = p[i + 1..].iter().position(|&c| c == b'\n');
                first.and_then(|f| {
                    let rest = &p[i + 2 + f..];
                    rest.iter().position(|&c| c == b'\n').map(|s| f + s + 2)
                })
            }
            b')' | b'R' | b'(' | b't' | 0x85 | 0x86 | 0x87 | b'Q' | 0x88 | 0x89 | b'}' | b']'
            | b'u' | b'e' | b'N' | b's' | b'b' | b'a' | b'.' => Some(0),
            _ => None,
        };
        let Some(arg) = arg else { break };
        ops.push((i, op, 1 + arg));
        if op == b'.' {
            break;
        }
        i += 1 + arg;
    }
    ops
}

fn is_pickle_int(op: u8) -> bool {
    matches!(op, b'K' | b'M' | b'J')
}

/// Replaces the pickle ops at `edits` (position, length) with the given bytes.
fn pickle_edit(p: &[u8], mut edits: Vec<(usize, usize, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = p.to_vec();
    for (at, len, with) in edits {
        out.splice(at..at + len, with);
    }
    out
}

fn binint(v: i32) -> Vec<u8> {
    let mut out = vec![b'J'];
    out.extend_from_slice(&v.to_le_bytes());
    out
}

type PickleOp = (usize, u8, usize);

/// The (storage offset, size, stride) integers of every 1-D tensor of a `.pth` pickle:
/// `BINPERSID, offset, size, TUPLE1, BINPUT, stride, TUPLE1`.
fn pickle_shape_sites(p: &[u8]) -> Vec<[PickleOp; 3]> {
    pickle_ops(p)
        .windows(7)
        .filter(|w| {
            w[0].1 == b'Q'
                && is_pickle_int(w[1].1)
                && is_pickle_int(w[2].1)
                && w[3].1 == 0x85
                && is_pickle_int(w[5].1)
                && w[6].1 == 0x85
        })
        .map(|w| [w[1], w[2], w[5]])
        .collect()
}

/// The pickle with the tensor at `site` given a new size, stride and (optionally) offset.
fn pickle_set_shape(
    p: &[u8],
    site: [PickleOp; 3],
    size: i32,
    stride: i32,
    offset: Option<i32>,
) -> Vec<u8> {
    let [o, s, t] = site;
    let mut edits = vec![(s.0, s.2, binint(size)), (t.0, t.2, binint(stride))];
    if let Some(offset) = offset {
        edits.push((o.0, o.2, binint(offset)));
    }
    pickle_edit(p, edits)
}

/// Mutates entry `name` of the zip `b` with `f` and rebuilds a consistent archive.
fn zip_with_entry(
    b: &[u8],
    name: &[u8],
    rng: &mut StdRng,
    f: impl FnOnce(&[u8], &mut StdRng) -> Option<(Vec<u8>, String)>,
) -> Option<(Vec<u8>, String)> {
    let mut entries = zip_entries(b)?;
    let entry = entries.iter_mut().find(|e| e.name.ends_with(name))?;
    let (data, desc) = f(&entry.data, rng)?;
    entry.data = data;
    Some((zip_build(&entries), desc))
}

/// The PyTorch `.pth` mutations: the pickle mutated (bytes, integers, tensor shapes) or
/// storages cut or dropped, in a rebuilt archive with correct sizes and checksums.
fn pth_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let mut fields = vec![
        Field::le("local crc", 14, 4),
        Field::le("local compressed size", 18, 4),
        Field::le("local size", 22, 4),
        Field::le("local name length", 26, 2),
        Field::le("local extra length", 28, 2),
    ];
    if let Some(eocd) = (0..=bytes.len() - 22)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 5, 6])
    {
        fields.push(Field::le("eocd entries", eocd + 10, 2));
        fields.push(Field::le("eocd central size", eocd + 12, 4));
        fields.push(Field::le("eocd central offset", eocd + 16, 4));
        if let Some(cd) = u32_le(&bytes, eocd + 16) {
            fields.push(Field::le("central crc", cd + 16, 4));
            fields.push(Field::le("central compressed size", cd + 20, 4));
            fields.push(Field::le("central size", cd + 24, 4));
            fields.push(Field::le("central name length", cd + 28, 2));
            fields.push(Field::le("central local offset", cd + 42, 4));
        }
    }
    let pickle_end = u32_le(&bytes, 18).map_or(512, |n| n + 64).min(bytes.len());
    Target::new(name, bytes, cases)
        .spots(Spots {
            fields,
            hot: 0..pickle_end,
        })
        .repair("zip checksums recomputed", zip_fix_crc)
        .custom(
            "pickle bytes",
            Box::new(|b, rng| {
                zip_with_entry(b, b"data.pkl", rng, |p, rng| {
                    let mut p = p.to_vec();
                    let spots = Spots {
                        fields: Vec::new(),
                        hot: 0..p.len(),
                    };
                    let d = generic(&mut p, &spots, rng);
                    Some((p, d))
                })
            }),
        )
        .custom(
            "pickle integer",
            Box::new(|b, rng| {
                zip_with_entry(b, b"data.pkl", rng, |p, rng| {
                    let ints: Vec<_> = pickle_ops(p)
                        .into_iter()
                        .filter(|o| is_pickle_int(o.1))
                        .collect();
                    let (at, _, len) = ints[rng.random_range(0..ints.len().max(1))];
                    let v = [
                        0,
                        1,
                        -1,
                        63,
                        65,
                        65_535,
                        1 << 20,
                        1 << 30,
                        i32::MAX,
                        i32::MIN,
                    ][rng.random_range(0..10)];
                    Some((
                        pickle_edit(p, vec![(at, len, binint(v))]),
                        format!("integer at {at} -> {v}"),
                    ))
                })
            }),
        )
        .custom(
            "pickle tensor shape",
            Box::new(|b, rng| {
                zip_with_entry(b, b"data.pkl", rng, |p, rng| {
                    let sites = pickle_shape_sites(p);
                    if sites.is_empty() {
                        return None;
                    }
                    let site = sites[rng.random_range(0..sites.len())];
                    let size = [1 << 28, 1 << 30, i32::MAX, 0, 65_536][rng.random_range(0..5)];
                    let stride = [0, 1, -1][rng.random_range(0..3)];
                    let offset = rng.random_bool(0.25).then_some(i32::MAX);
                    Some((
                        pickle_set_shape(p, site, size, stride, offset),
                        format!(
                            "tensor at {}: size -> {size}, stride -> {stride}, offset -> {offset:?}",
                            site[1].0
                        ),
                    ))
                })
            }),
        )
        .custom(
            "storage cut",
            Box::new(|b, rng| {
                let mut entries = zip_entries(b)?;
                let storages: Vec<usize> = (0..entries.len())
                    .filter(|&i| entries[i].name.windows(5).any(|w| w == b"data/"))
                    .collect();
                let i = storages[rng.random_range(0..storages.len())];
                let len = entries[i].data.len();
                let new = rng.random_range(0..len.max(1));
                entries[i].data.truncate(new);
                let name = String::from_utf8_lossy(&entries[i].name).into_owned();
                Some((zip_build(&entries), format!("{name}: {len} -> {new} bytes")))
            }),
        )
        .custom(
            "entry dropped",
            Box::new(|b, rng| {
                let mut entries = zip_entries(b)?;
                let i = rng.random_range(0..entries.len());
                let e = entries.remove(i);
                Some((
                    zip_build(&entries),
                    String::from_utf8_lossy(&e.name).into_owned(),
                ))
            }),
        )
}

/// The chunks of a PNG as `(offset of the length field, data length, type)`.
fn png_chunks(b: &[u8]) -> Vec<(usize, usize, [u8; 4])> {
    let mut out = Vec::new();
    let mut p = 8;
    while let Some(len) = u32_be(b, p) {
        if p + 12 + len > b.len() {
            break;
        }
        out.push((p, len, b[p + 4..p + 8].try_into().unwrap()));
        p += 12 + len;
    }
    out
}

fn png_fix_crc(b: &mut [u8]) {
    for (p, len, _) in png_chunks(b) {
        let crc = crc32(&b[p + 4..p + 8 + len]);
        b[p + 8 + len..p + 12 + len].copy_from_slice(&crc.to_be_bytes());
    }
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn png_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let fields = vec![
        Field::be("IHDR length", 8, 4),
        Field::be("IHDR width", 16, 4),
        Field::be("IHDR height", 20, 4),
        Field::be("IHDR bit depth", 24, 1),
        Field::be("IHDR color type", 25, 1),
        Field::be("IHDR compression", 26, 1),
        Field::be("IHDR filter", 27, 1),
        Field::be("IHDR interlace", 28, 1),
        Field::be("first IDAT length", 33, 4),
    ];
    Target::new(name, bytes, cases)
        .spots(Spots { fields, hot: 0..64 })
        .repair("chunk CRCs recomputed", png_fix_crc)
        .custom(
            "IHDR field with a valid CRC",
            Box::new(|b, rng| {
                let spots = Spots {
                    fields: vec![
                        Field::be("width", 16, 4),
                        Field::be("height", 20, 4),
                        Field::be("bit depth", 24, 1),
                        Field::be("color type", 25, 1),
                        Field::be("interlace", 28, 1),
                    ],
                    hot: 16..29,
                };
                let mut out = b.to_vec();
                let d = generic_kind(&mut out, 7, &spots, rng);
                png_fix_crc(&mut out);
                Some((out, d))
            }),
        )
        .custom(
            "scanlines",
            Box::new(|b, rng| {
                let chunks = png_chunks(b);
                let idats: Vec<_> = chunks.iter().filter(|c| &c.2 == b"IDAT").collect();
                let (first, last) = (idats.first()?, idats.last()?);
                let z: Vec<u8> = idats
                    .iter()
                    .flat_map(|c| b[c.0 + 8..c.0 + 8 + c.1].iter().copied())
                    .collect();
                let mut raw = Vec::new();
                flate2::read::ZlibDecoder::new(&z[..])
                    .read_to_end(&mut raw)
                    .ok()?;
                let spots = Spots {
                    fields: Vec::new(),
                    hot: 0..raw.len(),
                };
                let d = generic(&mut raw, &spots, rng);
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&raw).ok()?;
                let mut out = b[..first.0].to_vec();
                out.extend(png_chunk(b"IDAT", &enc.finish().ok()?));
                out.extend_from_slice(&b[last.0 + 12 + last.1..]);
                Some((out, format!("decompressed data: {d}")))
            }),
        )
}

fn jpeg_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let mut fields = Vec::new();
    let mut p = 2;
    let mut hot_end = bytes.len().min(64);
    while p + 4 <= bytes.len() && bytes[p] == 0xFF {
        let marker = bytes[p + 1];
        let Some(len) = u16_be(&bytes, p + 2) else {
            break;
        };
        fields.push(Field::be(format!("FF{marker:02X} length"), p + 2, 2));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            fields.push(Field::be("SOF precision", p + 4, 1));
            fields.push(Field::be("SOF height", p + 5, 2));
            fields.push(Field::be("SOF width", p + 7, 2));
            fields.push(Field::be("SOF components", p + 9, 1));
            fields.push(Field::be("SOF sampling 1", p + 11, 1));
            fields.push(Field::be("SOF table 1", p + 12, 1));
            fields.push(Field::be("SOF sampling 2", p + 14, 1));
        }
        if marker == 0xDD {
            fields.push(Field::be("DRI interval", p + 4, 2));
        }
        if marker == 0xDA {
            fields.push(Field::be("SOS components", p + 4, 1));
            fields.push(Field::be("SOS tables 1", p + 6, 1));
            hot_end = p + 2 + len;
            break;
        }
        p += 2 + len;
    }
    Target::new(name, bytes, cases).spots(Spots {
        fields,
        hot: 0..hot_end,
    })
}

/// A baseline CMYK JPEG (Adobe APP14, 4 components) of `rgb`, written by hand since the
/// image crate's encoder writes only gray and RGB: each 8×8 block keeps its mean (DC only, a
/// blocky but real rendering of the image), with C, M, Y = 255 - R, G, B and K = 0.
fn cmyk_jpeg(item: &ImageItem) -> Vec<u8> {
    let (h, w) = (item.height, item.width);
    assert!(h % 8 == 0 && w % 8 == 0 && item.channels == 3);
    let mut out = vec![0xFF, 0xD8];
    let mut segment = |marker: u8, body: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00"); // version 100, transform 0 (CMYK)
    let mut dqt = vec![0x00];
    dqt.extend_from_slice(&[1; 64]);
    segment(0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&(h as u16).to_be_bytes());
    sof.extend_from_slice(&(w as u16).to_be_bytes());
    sof.push(4);
    for c in 1..=4 {
        sof.extend_from_slice(&[c, 0x11, 0]);
    }
    segment(0xC0, &sof);
    // DC table: categories 0..=11, all with 4-bit codes (the code of category k is k).
    let mut dc = vec![0x00, 0, 0, 0, 12];
    dc.extend_from_slice(&[0; 12]);
    dc.extend(0..12u8);
    segment(0xC4, &dc);
    // AC table: only end-of-block, code `0`.
    let mut ac = vec![0x10, 1];
    ac.extend_from_slice(&[0; 15]);
    ac.push(0x00);
    segment(0xC4, &ac);
    segment(0xDA, &[4, 1, 0x00, 2, 0x00, 3, 0x00, 4, 0x00, 0, 63, 0]);
    let (mut acc, mut nbits, mut data) = (0u32, 0u32, Vec::new());
    let mut put = |value: u32, bits: u32, data: &mut Vec<u8>| {
        for i in (0..bits).rev() {
            acc = (acc << 1) | ((value >> i) & 1);
            nbits += 1;
            if nbits == 8 {
                data.push(acc as u8);
                if acc == 0xFF {
                    data.push(0);
                }
                acc = 0;
                nbits = 0;
            }
        }
    };
    let mut prev = [0i32; 4];
    for by in 0..h / 8 {
        for bx in 0..w / 8 {
            for (c, prev) in prev.iter_mut().enumerate() {
                let mut sum = 0i32;
                for y in 0..8 {
                    for x in 0..8 {
                        let v = if c < 3 {
                            255 - i32::from(item.at(by * 8 + y, bx * 8 + x, c))
                        } else {
                            0
                        };
                        sum += v;
                    }
                }
                let dc = (sum - 64 * 128) / 8; // 8 x (mean - 128)
                let diff = dc - *prev;
                *prev = dc;
                let category = 32 - diff.unsigned_abs().leading_zeros();
                put(category, 4, &mut data);
                let bits = if diff < 0 {
                    (diff + (1 << category) - 1) as u32
                } else {
                    diff as u32
                };
                put(bits, category, &mut data);
                put(0, 1, &mut data); // end of block
            }
        }
    }
    put(0x7F, 7, &mut data); // pad with ones
    let data = data;
    out.extend_from_slice(&data);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn rgb_image(item: &ImageItem) -> image::RgbImage {
    image::RgbImage::from_raw(item.width as u32, item.height as u32, item.pixels.clone()).unwrap()
}

fn idx_spots(bytes: &[u8]) -> Spots {
    let mut fields = vec![Field::be("type", 2, 1), Field::be("dimensions", 3, 1)];
    let ndims = bytes.get(3).copied().unwrap_or(0) as usize;
    for d in 0..ndims.min(3) {
        fields.push(Field::be(format!("size {d}"), 4 + 4 * d, 4));
    }
    Spots {
        fields,
        hot: 0..(4 + 4 * ndims + 16).min(bytes.len()),
    }
}

/// The first `n` records of an IDX file (header rewritten).
fn idx_head(bytes: &[u8], n: usize) -> Vec<u8> {
    let array = parse_idx(bytes).unwrap();
    let per: usize = array.dims[1..].iter().product();
    let mut out = vec![0, 0, 0x08, array.dims.len() as u8];
    out.extend_from_slice(&(n as u32).to_be_bytes());
    for d in &array.dims[1..] {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data[..n * per]);
    out
}

fn idx_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let spots = idx_spots(&bytes);
    Target::new(name, bytes, cases).spots(spots)
}

fn idx_gz_target(name: &str, bytes: Vec<u8>, cases: usize) -> Target {
    let len = bytes.len();
    let spots = Spots {
        fields: vec![
            Field::le("gzip flags", 3, 1),
            Field::le("gzip mtime", 4, 4),
            Field::le("gzip method", 2, 1),
            Field::le("gzip crc32", len - 8, 4),
            Field::le("gzip size", len - 4, 4),
        ],
        hot: 0..64,
    };
    Target::new(name, bytes, cases)
        .spots(spots)
        .custom(
            "IDX content mutated, then gzipped",
            Box::new(|b, rng| {
                let mut inner = gunzip(b);
                let spots = idx_spots(&inner);
                let d = generic(&mut inner, &spots, rng);
                Some((gzip(&inner), d))
            }),
        )
        .custom(
            "gzip bomb",
            Box::new(|b, rng| {
                // Members of 1 MiB of zeros (1 KiB each, compressed) appended, and the header
                // made to declare anything from the real size to 4 GiB.
                let members = [1, 64, 1536][rng.random_range(0..3)];
                let mut inner = gunzip(b);
                let sizes = Spots {
                    fields: idx_spots(&inner).fields.split_off(2),
                    hot: 4..16,
                };
                let d = if rng.random_bool(0.5) {
                    generic_kind(&mut inner, 7, &sizes, rng)
                } else {
                    "header kept".to_string()
                };
                let mut out = gzip(&inner);
                for _ in 0..members {
                    out.extend_from_slice(zeros_member());
                }
                Some((out, format!("{d}, {members} MiB of zeros appended")))
            }),
        )
}

/// A gzip member of 1 MiB of zeros.
fn zeros_member() -> &'static [u8] {
    static MEMBER: OnceLock<Vec<u8>> = OnceLock::new();
    MEMBER.get_or_init(|| gzip(&vec![0; 1 << 20]))
}

// ---------------------------------------------------------------------------------------------
// The loaders.
// ---------------------------------------------------------------------------------------------

/// The architecture of the training run (tiny preset at width 0.25).
fn tiny_quarter() -> RepOptVggConfig {
    let mut config = RepOptVggConfig::preset("tiny").unwrap();
    config.width_multiplier = [0.25; 4];
    config
}

#[test]
fn scales_file_mutations() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_quarter();
    // Real scales: per-channel values of every block, as a hyper-search leaves them.
    let mut scales = VggScales::constant(&config, 1.0);
    for (b, block) in scales.blocks.iter_mut().enumerate() {
        for (i, v) in block.conv.iter_mut().enumerate() {
            *v = 0.5 + 0.01 * (b * 7 + i) as f32;
        }
        for (i, v) in block.conv_1x1.iter_mut().enumerate() {
            *v = 0.25 + 0.002 * i as f32;
        }
    }
    let original = tmp.path().join("original.safetensors");
    scales.save(&original).unwrap();
    let bytes = fs::read(&original).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let target = Target::new("scales.safetensors", bytes, 1500)
        .spots(Spots {
            fields: vec![
                Field::le("header length", 0, 8),
                Field::le("header length (low 4 bytes)", 0, 4),
            ],
            hot: 0..8 + header_len,
        })
        .custom(
            "header number",
            Box::new(|b, rng| {
                let (header, data) = safetensors_split(b)?;
                let (header, d) = replace_number(header, rng)?;
                Some((safetensors_join(&header, data), d))
            }),
        )
        .custom(
            "header dtype",
            Box::new(|b, rng| {
                let (header, data) = safetensors_split(b)?;
                let (header, d) = replace_token(
                    header,
                    &["\"F32\""],
                    &[
                        "\"F64\"", "\"I64\"", "\"F16\"", "\"BF16\"", "\"U8\"", "\"BOOL\"",
                        "\"F4\"", "\"XYZ\"",
                    ],
                    rng,
                )?;
                Some((safetensors_join(&header, data), d))
            }),
        )
        .custom(
            "header key",
            Box::new(|b, rng| {
                let (header, data) = safetensors_split(b)?;
                let (header, d) = replace_token(
                    header,
                    &["scale_conv", "scale_1x1", "scale_identity", "stage1"],
                    &["scale_conv", "scale_1x1", "scale_identity", "stage9", "x"],
                    rng,
                )?;
                Some((safetensors_join(&header, data), d))
            }),
        );
    let path = tmp.path().join("scales.safetensors");
    fuzz(
        "scales file (VggScales::load)",
        &[target],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            let loose = named(&mut out, &[&path], VggScales::load(&path, None));
            let strict = noted(&mut out, VggScales::load(&path, Some(&config)));
            if let (Some(loose), Some(strict)) = (&loose, &strict) {
                check(&mut out, loose == strict, || {
                    "loose and strict loads differ".into()
                });
            }
            out
        },
    );
}

#[test]
fn official_pth_mutations() {
    let original = common::shared_dir().join("official_scales/RepOpt-VGG-B1-scales.pth");
    if !common::require_data(&original, "the official RepOpt-VGG-B1 scales") {
        return;
    }
    let b1 = RepOptVggConfig::preset("b1").unwrap();
    let bytes = fs::read(&original).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The archive rebuilt by this test's zip writer must load like the original, or the
    // format-aware mutations would test the writer.
    let rebuilt = zip_build(&zip_entries(&bytes).expect("parse the .pth archive"));
    let copy = tmp.path().join("rebuilt.pth");
    fs::write(&copy, &rebuilt).unwrap();
    assert_eq!(
        VggScales::load(&copy, Some(&b1)).unwrap().blocks,
        VggScales::load(&original, Some(&b1)).unwrap().blocks
    );
    let targets = [
        pth_target("RepOpt-VGG-B1-scales.pth", bytes, 300),
        pth_target("RepOpt-VGG-B1-scales.pth rebuilt", rebuilt, 100),
    ];
    let path = tmp.path().join("scales.pth");
    fuzz(
        "official .pth (VggScales::load)",
        &targets,
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            if let Some(scales) = noted(&mut out, VggScales::load(&path, Some(&b1))) {
                check(&mut out, scales.validate_for(&b1).is_ok(), || {
                    "loaded scales fail validation".into()
                });
            }
            out
        },
    );
}

#[test]
fn burnpack_model_mutations() {
    let Some(run) = run_dir() else { return };
    let record = RunRecord::load(run).unwrap();
    let device = Device::flex();
    let target = burnpack_target("model.bpk", fs::read(run.join("model.bpk")).unwrap(), 250);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.bpk");
    fuzz(
        "model record (load_model_file, ModuleRecord::load)",
        &[target],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            if let Some(model) = named(
                &mut out,
                &[&path],
                load_model_file(&path, &record.architecture, &device),
            ) {
                check(&mut out, model.blocks().len() == 7, || {
                    "wrong block count".into()
                });
            }
            if let Some(r) = noted(&mut out, ModuleRecord::load(&path)) {
                // Reads every tensor's bytes (they are read lazily from the file).
                if let Some(b) = noted(&mut out, r.checkpoint_into_bytes()) {
                    noted(&mut out, ModuleRecord::from_bytes(b));
                }
            }
            out
        },
    );
}

#[test]
fn burnpack_checkpoint_mutations() {
    let Some(run) = run_dir() else { return };
    let record = RunRecord::load(run).unwrap();
    let device = Device::flex();
    let dir = run.join("checkpoint");
    let tmp = tempfile::tempdir().unwrap();

    let target = burnpack_target(
        "checkpoint/model-1.bpk",
        fs::read(dir.join("model-1.bpk")).unwrap(),
        200,
    );
    let path = tmp.path().join("model-1.bpk");
    fuzz(
        "checkpoint model (load_checkpoint_model, ModuleRecord::load)",
        &[target],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            load_and_round_trip::<ModuleRecord>(&mut out, &path);
            named(
                &mut out,
                &[&path],
                load_checkpoint_model(&path, &record.architecture, &device),
            );
            out
        },
    );
}

/// Loads the checkpoint record at `path` as `R` and round-trips it through its bytes (read
/// lazily from the file), noting every error.
fn load_and_round_trip<R: Checkpoint>(out: &mut Outcome, path: &Path) {
    if let Some(r) = noted(out, R::load(path.to_path_buf()))
        && let Some(b) = noted(out, r.checkpoint_into_bytes())
    {
        noted(out, R::checkpoint_from_bytes(b));
    }
}

/// Fuzzes `loader`, the [`load_and_round_trip`] of the checkpoint record `file` of the real run,
/// with `cases` mutations.
fn fuzz_checkpoint_record<R: Checkpoint>(loader: &str, file: &str, cases: usize) {
    let Some(run) = run_dir() else { return };
    let target = burnpack_target(file, fs::read(run.join(file)).unwrap(), cases);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(Path::new(file).file_name().unwrap());
    fuzz(loader, &[target], &mut |_, bytes| {
        fs::write(&path, bytes).unwrap();
        let mut out = Vec::new();
        load_and_round_trip::<R>(&mut out, &path);
        out
    });
}

#[test]
fn burnpack_optimizer_mutations() {
    fuzz_checkpoint_record::<OptimizerRecord>(
        "optimizer record (OptimizerRecord as Checkpoint)",
        "checkpoint/optim-1.bpk",
        400,
    );
}

#[test]
fn burnpack_scheduler_mutations() {
    fuzz_checkpoint_record::<LrSchedulerRecord>(
        "LR scheduler record (LrSchedulerRecord as Checkpoint)",
        "checkpoint/scheduler-1.bpk",
        1000,
    );
}

#[test]
fn run_record_and_config_mutations() {
    let Some(run) = run_dir() else { return };
    let run_json = fs::read(run.join("run.json")).unwrap();
    let record = RunRecord::load(run).unwrap();
    let config_json = serde_json::to_vec_pretty(&record.config).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let dir = tmp.path().join("run");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.json");
    fuzz(
        "run record (RunRecord::load)",
        &[json_target("run.json", run_json, 1000)],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            named(&mut out, &[&path], RunRecord::load(&dir));
            out
        },
    );

    let path = tmp.path().join("config.json");
    fuzz(
        "run config (RunConfig::load)",
        &[json_target("config.json", config_json, 1000)],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            named(&mut out, &[&path], RunConfig::load(&path));
            out
        },
    );
}

/// Opens every item of a dataset that loaded, checking its shape.
fn visit_items(out: &mut Outcome, dataset: &impl Dataset<ImageItem>, shape: (usize, usize, usize)) {
    for i in 0..dataset.len() {
        match dataset.get(i) {
            Ok(item) => check(out, item.shape() == shape, || {
                format!("item {i} has shape {:?}", item.shape())
            }),
            Err(e) => out.push(format!("FAIL: item {i} of a loaded dataset: {e}")),
        }
    }
}

#[test]
fn cifar_binary_mutations() {
    let Some(images) = cifar_images() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("original.bin");
    write_cifar10(&original, images.iter().map(|(_, item)| item)).unwrap();
    let bytes = fs::read(&original).unwrap();
    let record = 3073;
    let records = bytes.len() / record;
    let mut fields: Vec<Field> = (0..records)
        .map(|r| Field::be(format!("label {r}"), r * record, 1))
        .collect();
    fields.push(Field::be("pixel (0, 0) of record 0", 1, 1));
    let target = Target::new("test_batch.bin (20 CIFAR-10 test images)", bytes, 1200)
        .spots(Spots {
            fields,
            hot: 0..2 * record,
        })
        .custom(
            "label out of range",
            Box::new(move |b, rng| {
                let mut out = b.to_vec();
                let r = rng.random_range(0..records);
                let v = rng.random_range(10..=255u8);
                *out.get_mut(r * record)? = v;
                Some((out, format!("record {r} label -> {v}")))
            }),
        )
        .custom(
            "whole records added or removed",
            Box::new(move |b, rng| {
                let mut out = b.to_vec();
                let n = rng.random_range(1..records);
                if rng.random_bool(0.5) {
                    out.truncate((records - n) * record);
                    Some((out, format!("{n} records removed")))
                } else {
                    let extra: Vec<u8> = (0..n * record).map(|_| rng.random::<u8>() % 10).collect();
                    out.extend_from_slice(&extra);
                    Some((out, format!("{n} records of small bytes added")))
                }
            }),
        );
    let dir = tmp.path().join("cifar");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test_batch.bin");
    fuzz(
        "CIFAR binary (CifarDataset::from_files / open)",
        &[target],
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
                let loaded = CifarDataset::from_files(&[&path], kind);
                let loaded = if kind == CifarKind::Cifar10 {
                    named(&mut out, &[&path], loaded)
                } else {
                    // CIFAR-100 reads the same bytes as 3074-byte records: an error is the
                    // normal outcome, and must name the file too.
                    let mut side = Vec::new();
                    let d = named(&mut side, &[&path], loaded);
                    out.extend(side.into_iter().filter(|m| m.starts_with("FAIL:")));
                    d
                };
                if let Some(dataset) = loaded {
                    check(
                        &mut out,
                        dataset.len() * kind.record_size() == bytes.len(),
                        || format!("{} records from {} bytes", dataset.len(), bytes.len()),
                    );
                    visit_items(&mut out, &dataset, (32, 32, 3));
                    for (i, label) in dataset.labels().enumerate() {
                        check(&mut out, label < kind.num_classes(), || {
                            format!("record {i} has label {label}")
                        });
                        check(&mut out, dataset.item(i).label == label, || {
                            format!("record {i}: item label differs")
                        });
                    }
                }
            }
            let opened = CifarDataset::open(&dir, CifarKind::Cifar10, Split::Test);
            named(&mut out, &[&path], opened);
            out
        },
    );
}

#[test]
fn idx_mutations() {
    let dir = Path::new(common::FASHION_MNIST_DIR);
    if !common::require_data(dir, "Fashion-MNIST (Debian's dataset-fashion-mnist)") {
        return;
    }
    let images_gz = fs::read(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let labels_gz = fs::read(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let images = idx_head(&gunzip(&images_gz), 100);
    let labels = idx_head(&gunzip(&labels_gz), 100);
    let tmp = tempfile::tempdir().unwrap();
    let images_partner = tmp.path().join("partner-images-idx3-ubyte");
    let labels_partner = tmp.path().join("partner-labels-idx1-ubyte");
    fs::write(&images_partner, &images).unwrap();
    fs::write(&labels_partner, &labels).unwrap();
    let targets = [
        idx_target("100 t10k images, raw", images.clone(), 500),
        idx_target("100 t10k labels, raw", labels.clone(), 400),
        idx_gz_target("100 t10k images, gzipped", gzip(&images), 250),
        idx_gz_target("t10k-labels-idx1-ubyte.gz", labels_gz, 250),
        // The full 4.4 MB file (47 MB inflated): a few cases, it is slow to inflate.
        Target::new("t10k-images-idx3-ubyte.gz", images_gz, 6),
    ];
    let path = tmp.path().join("mutated-idx");
    fuzz(
        "IDX (read_idx, parse_idx, IdxDataset::from_files)",
        &targets,
        &mut |target, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            let read = named(&mut out, &[&path], read_idx(&path));
            if !bytes.starts_with(&[0x1f, 0x8b]) {
                let parsed = parse_idx(bytes);
                check(&mut out, parsed.is_ok() == read.is_some(), || {
                    format!(
                        "parse_idx says {:?}, read_idx {:?}",
                        parsed.is_ok(),
                        read.is_some()
                    )
                });
            }
            if let Some(array) = &read {
                let product = array.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                check(&mut out, product == Some(array.data.len()), || {
                    format!("dims {:?} for {} bytes", array.dims, array.data.len())
                });
            }
            if !target.name.starts_with("100 ") {
                return out;
            }
            let (images, labels) = if target.name.contains("images") {
                (path.as_path(), labels_partner.as_path())
            } else {
                (images_partner.as_path(), path.as_path())
            };
            let dataset = IdxDataset::from_files(images, labels);
            // An error may be about either file; it must name one of them.
            let mut side = Vec::new();
            let dataset = named(&mut side, &[images, labels], dataset);
            if read.is_some() {
                out.extend(side);
            } else {
                out.extend(side.into_iter().filter(|m| m.starts_with("FAIL:")));
            }
            if let Some(dataset) = dataset {
                let (h, w) = dataset.image_size();
                visit_items(&mut out, &dataset, (h, w, 1));
                let classes = dataset.num_classes();
                check(
                    &mut out,
                    dataset.labels().all(|l| l < classes.max(1)),
                    || "label above num_classes".into(),
                );
            }
            out
        },
    );
}

#[test]
fn image_file_mutations() {
    let Some(images) = cifar_images() else { return };
    let (jpeg, item) = &images[3];
    let rgb = DynamicImage::ImageRgb8(rgb_image(item));
    let (_, second) = &images[14];
    let gray = DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb_image(second)).into_luma8());
    let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(32, 32, |x, y| {
        let p = item.pixels[(y as usize * 32 + x as usize) * 3..][..3].to_vec();
        image::Rgba([p[0], p[1], p[2], (x * 8) as u8])
    }));
    let rgb16 = DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb_image(second)).into_rgb16());
    let gray16 = DynamicImage::ImageLuma16(rgb.to_luma16());
    let one_rgb = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        1,
        1,
        image::Rgb(item.pixels[..3].try_into().unwrap()),
    ));
    let one_gray = DynamicImage::ImageLuma8(one_rgb.to_luma8());
    let cmyk = cmyk_jpeg(item);
    // The hand-made CMYK JPEG must decode (as RGB) for its mutations to mean something.
    let tmp = tempfile::tempdir().unwrap();
    let check_path = tmp.path().join("cmyk.jpg");
    fs::write(&check_path, &cmyk).unwrap();
    let decoded = decode(&check_path).expect("the CMYK JPEG decodes");
    assert_eq!((decoded.width(), decoded.height()), (32, 32));

    let targets = [
        jpeg_target("CIFAR-10 JPEG (as shipped)", jpeg.clone(), 300),
        jpeg_target("gray JPEG", encode(&gray, ImageFormat::Jpeg), 150),
        jpeg_target("CMYK JPEG (Adobe, hand-made)", cmyk, 200),
        jpeg_target("1x1 JPEG", encode(&one_rgb, ImageFormat::Jpeg), 100),
        png_target("RGB PNG", encode(&rgb, ImageFormat::Png), 250),
        png_target("gray PNG", encode(&gray, ImageFormat::Png), 120),
        png_target("RGBA PNG", encode(&rgba, ImageFormat::Png), 120),
        png_target("16-bit RGB PNG", encode(&rgb16, ImageFormat::Png), 120),
        png_target("16-bit gray PNG", encode(&gray16, ImageFormat::Png), 80),
        png_target("1x1 RGB PNG", encode(&one_rgb, ImageFormat::Png), 80),
        png_target("1x1 gray PNG", encode(&one_gray, ImageFormat::Png), 80),
    ];
    let path = tmp.path().join("image");
    let classes = vec!["class".to_string()];
    let header_check = ImageFolderOptions {
        validation: Validation::Header,
        threads: 1,
        ..Default::default()
    };
    fuzz(
        "image files (image_folder::decode + to_item)",
        &targets,
        &mut |_, bytes| {
            fs::write(&path, bytes).unwrap();
            let mut out = Vec::new();
            if let Some(image) = named(&mut out, &[&path], decode(&path)) {
                let (w, h) = (image.width() as usize, image.height() as usize);
                for color in [ColorMode::Rgb, ColorMode::Gray] {
                    let item = to_item(image.clone(), color, 7);
                    check(&mut out, item.shape() == (h, w, color.channels()), || {
                        format!("{:?} item has shape {:?}", color, item.shape())
                    });
                }
            }
            // The header-only check an image folder can run at open time.
            let folder = ImageFolder::from_samples_with(
                vec![(path.clone(), 0)],
                classes.clone(),
                &header_check,
            );
            let mut side = Vec::new();
            if named(&mut side, &[&path], folder).is_some() {
                out.extend(side.into_iter().filter(|m| m.starts_with("FAIL:")));
            } else if out.is_empty() {
                // The header is refused although the whole image decoded.
                out.extend(side);
            } else {
                out.extend(side.into_iter().filter(|m| m.starts_with("FAIL:")));
            }
            out
        },
    );
}

/// The known panic of the model loaders (see [`KNOWN_PANICS`]), made on purpose: a float
/// parameter whose burnpack dtype reads `I32`. Loading the record with
/// `.cast_to_module_dtype()`, the fix proposed for `run_folder::load_model_file` and
/// `run_folder::load_checkpoint_model`, turns it into a clean load.
#[test]
fn integer_dtype_in_a_model_record_loads_when_cast_to_the_module_dtype() {
    let Some(run) = run_dir() else { return };
    let record = RunRecord::load(run).unwrap();
    let device = Device::flex();
    let mut bytes = fs::read(run.join("model.bpk")).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"\x63F32")
        .expect("a float tensor");
    bytes[at..at + 4].copy_from_slice(b"\x63I32");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.bpk");
    fs::write(&path, &bytes).unwrap();

    install_panic_hook();
    IN_CASE.with(|c| c.set(true));
    let today = catch_unwind(AssertUnwindSafe(|| {
        load_model_file(&path, &record.architecture, &device).map(|_| ())
    }));
    let fixed = catch_unwind(AssertUnwindSafe(|| {
        let loaded = ModuleRecord::load(&path).unwrap().cast_to_module_dtype();
        record
            .architecture
            .init(&device)
            .try_load_record(loaded)
            .map(|_| ())
    }));
    IN_CASE.with(|c| c.set(false));
    println!(
        "integer dtype in model.bpk: load_model_file {}",
        match &today {
            Err(_) => "panics (known, run_folder.rs / Burn)".to_string(),
            Ok(r) => format!("gives {r:?}"),
        }
    );
    assert!(
        matches!(fixed, Ok(Ok(()))),
        "loading with cast_to_module_dtype() does not load the record: {fixed:?}"
    );
}

/// Regression: a `.pth` whose pickle declares a scale vector of 2^28 .. 2^31 values over a
/// stride-0 view of its 64-value storage made `VggScales::from_official_pth` allocate up to
/// 8 GiB (Burn's reader allows 10 GiB per tensor). The element count is now checked against
/// the architecture before any data is read.
#[test]
fn official_pth_broadcast_tensor_is_refused_before_its_data_is_read() {
    let original = common::shared_dir().join("official_scales/RepOpt-VGG-B1-scales.pth");
    if !common::require_data(&original, "the official RepOpt-VGG-B1 scales") {
        return;
    }
    let b1 = RepOptVggConfig::preset("b1").unwrap();
    let entries = zip_entries(&fs::read(&original).unwrap()).unwrap();
    let pickle = entries
        .iter()
        .position(|e| e.name.ends_with(b"data.pkl"))
        .unwrap();
    let sites = pickle_shape_sites(&entries[pickle].data);
    assert!(
        sites.len() >= 60,
        "{} tensors found in the pickle",
        sites.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broadcast.pth");
    for (site, size) in [
        (0, i32::MAX),
        (sites.len() / 2, 1 << 28),
        (sites.len() - 1, 1 << 30),
    ] {
        let mut mutated = entries.clone();
        mutated[pickle].data = pickle_set_shape(&entries[pickle].data, sites[site], size, 0, None);
        fs::write(&path, zip_build(&mutated)).unwrap();
        set_case(&format!(
            "regression: .pth tensor {site} broadcast to {size} values"
        ));
        PEAK.with(|p| p.set(0));
        let err = VggScales::load(&path, Some(&b1)).unwrap_err().to_string();
        let peak = PEAK.with(Cell::get);
        assert!(
            err.contains(&path.display().to_string()) && err.contains("architecture expects"),
            "{err}"
        );
        assert!(
            peak < 16 << 20,
            "tensor {site} of size {size}: {peak} bytes allocated"
        );
    }
}

/// Regression: `read_idx` inflated a gzipped IDX file to its end, so a few MB of gzip members
/// of zeros after a real header made it allocate gigabytes. It now reads no further than the
/// header declares (and refuses headers that declare more than `MAX_GZIP_IDX_BYTES`).
#[test]
fn gzip_bomb_idx_is_refused_without_inflating_it() {
    let dir = Path::new(common::FASHION_MNIST_DIR);
    if !common::require_data(dir, "Fashion-MNIST (Debian's dataset-fashion-mnist)") {
        return;
    }
    let labels = gunzip(&fs::read(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    let bomb = |header: Option<[u32; 3]>, members: usize| {
        let mut inner = labels.clone();
        if let Some(dims) = header {
            inner = vec![0, 0, 8, 3];
            dims.iter()
                .for_each(|d| inner.extend_from_slice(&d.to_be_bytes()));
        }
        let mut out = gzip(&inner);
        for _ in 0..members {
            out.extend_from_slice(zeros_member());
        }
        fs::write(&path, out).unwrap();
    };
    let cases = [
        // The real labels, then 2 GiB of zeros.
        (None, 2048, "IDX data too long"),
        // A header that declares 4 GiB, with the zeros to match.
        (
            Some([4096, 1024, 1024]),
            4096,
            "more than the 1073741824 bytes",
        ),
        // A header that declares 512 MiB, over a stream that holds 8 MiB.
        (Some([512, 1024, 1024]), 8, "truncated IDX data"),
    ];
    for (header, members, problem) in cases {
        bomb(header, members);
        set_case(&format!(
            "regression: IDX gzip bomb of {members} MiB, header {header:?}"
        ));
        PEAK.with(|p| p.set(0));
        let started = Instant::now();
        let err = read_idx(&path).unwrap_err().to_string();
        let peak = PEAK.with(Cell::get);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(problem),
            "{err}"
        );
        // The file itself is read whole (4.5 KiB per MiB of zeros); nothing near the
        // gigabytes it inflates to.
        assert!(
            peak <= 64 << 20,
            "{members} MiB of zeros: {peak} bytes allocated"
        );
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }
}
