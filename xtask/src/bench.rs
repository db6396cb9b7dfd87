//! `cargo xtask bench`: training and inference throughput and peak memory per mode, each mode in
//! a process of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run, target_dir, workspace_root};

/// One model and input that `cargo xtask bench` measures, and how many steps each mode takes.
struct BenchSetting {
    preset: &'static str,
    /// Width multipliers replacing the preset's (`--width`).
    width: Option<&'static str>,
    image_size: usize,
    batch_size: usize,
    classes: usize,
    /// Untimed steps before the timed ones.
    warmup: usize,
    /// Timed training steps per training mode.
    train_steps: usize,
    /// Timed forward passes per inference mode.
    infer_steps: usize,
    /// Part of `--quick`.
    quick: bool,
}

/// What `cargo xtask bench` measures. B1 at 224×224 takes most of the time (about 12–16 s a
/// training step on 2 cores), so it takes the minimum of 3 warm-up and 10 timed steps.
const BENCH_SETTINGS: [BenchSetting; 5] = [
    BenchSetting {
        preset: "tiny",
        width: None,
        image_size: 32,
        batch_size: 32,
        classes: 10,
        warmup: 3,
        train_steps: 30,
        infer_steps: 30,
        quick: true,
    },
    // The "tiny" of the PyTorch reference figures: [2, 2, 1, 1] blocks at width 0.25.
    BenchSetting {
        preset: "tiny",
        width: Some("0.25,0.25,0.25,0.25"),
        image_size: 32,
        batch_size: 32,
        classes: 10,
        warmup: 3,
        train_steps: 30,
        infer_steps: 30,
        quick: true,
    },
    BenchSetting {
        preset: "a0",
        width: None,
        image_size: 32,
        batch_size: 32,
        classes: 10,
        warmup: 3,
        train_steps: 15,
        infer_steps: 20,
        quick: true,
    },
    BenchSetting {
        preset: "b1",
        width: None,
        image_size: 32,
        batch_size: 32,
        classes: 10,
        warmup: 3,
        train_steps: 10,
        infer_steps: 10,
        quick: false,
    },
    BenchSetting {
        preset: "b1",
        width: None,
        image_size: 224,
        batch_size: 8,
        classes: 1000,
        warmup: 3,
        train_steps: 10,
        infer_steps: 10,
        quick: false,
    },
];

/// Training modes first (RepOpt and RepVGG next to each other, as they are compared), then
/// inference modes.
const BENCH_MODES: [&str; 8] = [
    "train-repopt",
    "train-repvgg",
    "train-sgd",
    "train-hs",
    "infer-target",
    "infer-target-fused",
    "infer-repvgg-fused",
    "infer-repvgg-unfused",
];

/// Runs `repopt-bench measure` with `args` in its own process (so that its peak memory is its
/// own) and returns its one line of JSON; an error names the mode.
fn bench_measure(bench: &Path, args: &[String], what: &str) -> Result<String, String> {
    let output = Command::new(bench)
        .arg("measure")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    if !output.status.success() {
        return Err(format!("benchmark {what} failed ({})", output.status));
    }
    let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if line.lines().count() != 1 || !line.starts_with('{') {
        return Err(format!(
            "benchmark {what} printed no single JSON line: {line:?}"
        ));
    }
    Ok(line)
}

/// The results of a run so far: one JSON line per measured process, kept in `path`.
struct Results<'a> {
    /// The `repopt-bench` binary.
    bench: &'a Path,
    /// `results.jsonl`, rewritten after every measurement.
    path: &'a Path,
    /// What `path` holds.
    lines: String,
}

impl Results<'_> {
    /// Measures one mode in a process of its own and appends its line to the results file.
    fn measure(&mut self, args: &[String], what: &str) -> Result<(), String> {
        let line = bench_measure(self.bench, args, what)?;
        self.lines.push_str(&line);
        self.lines.push('\n');
        // Written after every measurement, so that a failed run leaves what it measured.
        std::fs::write(self.path, &self.lines).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Builds `repopt-bench` in release with the `ndarray` backend and returns the binary.
fn build_bench() -> Result<PathBuf, String> {
    let mut build = cargo();
    build.current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "repopt-bench",
        "--features",
        "ndarray",
    ]);
    run(build)?;
    Ok(target_dir().join("release/repopt-bench"))
}

/// The `repopt-bench measure` arguments of `mode` on `setting`.
fn measure_args(setting: &BenchSetting, mode: &str) -> Vec<String> {
    let steps = if mode.starts_with("train") {
        setting.train_steps
    } else {
        setting.infer_steps
    };
    let mut args: Vec<String> = vec![
        "--preset".into(),
        setting.preset.into(),
        "--image-size".into(),
        setting.image_size.to_string(),
        "--batch-size".into(),
        setting.batch_size.to_string(),
        "--classes".into(),
        setting.classes.to_string(),
        "--mode".into(),
        mode.into(),
        "--warmup".into(),
        setting.warmup.to_string(),
        "--steps".into(),
        steps.to_string(),
    ];
    if let Some(width) = setting.width {
        args.extend(["--width".into(), width.into()]);
    }
    args
}

/// Measures every mode of every setting (only those of `--quick` when `quick`).
fn measure_settings(results: &mut Results, quick: bool) -> Result<(), String> {
    for setting in BENCH_SETTINGS.iter().filter(|s| s.quick || !quick) {
        for mode in BENCH_MODES {
            let what = format!(
                "{mode} ({} {}, 3x{}x{}, batch {})",
                setting.preset,
                setting.width.unwrap_or(""),
                setting.image_size,
                setting.image_size,
                setting.batch_size
            );
            results.measure(&measure_args(setting, mode), &what)?;
        }
    }
    Ok(())
}

/// Measures the A0 RepOpt training step on Burn's deprecated ndarray backend, to compare with
/// flex.
fn measure_ndarray(results: &mut Results) -> Result<(), String> {
    let args = [
        "--preset",
        "a0",
        "--mode",
        "train-repopt",
        "--backend",
        "ndarray",
        "--steps",
        "10",
    ];
    results.measure(
        &args.map(String::from),
        "train-repopt (a0, 3x32x32, batch 32, ndarray)",
    )
}

/// The `cargo xtask bench` command line that the report records.
fn bench_command(quick: bool, json: Option<&Path>) -> String {
    let mut command = String::from("cargo xtask bench");
    if quick {
        command.push_str(" --quick");
    }
    if let Some(json) = json {
        command.push_str(&format!(" --json {}", json.display()));
    }
    command
}

/// Runs `repopt-bench report` on the results: prints the tables and writes `json`.
fn report(
    bench: &Path,
    results_path: &Path,
    json: &Path,
    command: &str,
    elapsed: f64,
) -> Result<(), String> {
    let mut report = Command::new(bench);
    report
        .arg("report")
        .arg("--results")
        .arg(results_path)
        .arg("--json")
        .arg(json)
        .args(["--command", command])
        .args(["--elapsed-seconds", &format!("{elapsed:.0}")]);
    run(report)
}

/// `cargo xtask bench`: builds `repopt-bench` in release, measures every setting and mode in a
/// process of its own, then prints the tables and writes the results as JSON.
pub fn bench(quick: bool, json: Option<PathBuf>) -> Result<(), String> {
    let bench = build_bench()?;
    let out = target_dir().join("repopt-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let results_path = out.join("results.jsonl");
    let command = bench_command(quick, json.as_deref());
    let json = json.unwrap_or_else(|| out.join("benchmarks.json"));

    let started = std::time::Instant::now();
    let mut results = Results {
        bench: &bench,
        path: &results_path,
        lines: String::new(),
    };
    measure_settings(&mut results, quick)?;
    if !quick {
        measure_ndarray(&mut results)?;
    }
    let elapsed = started.elapsed().as_secs_f64();

    report(&bench, &results_path, &json, &command, elapsed)?;
    println!(
        "\nMeasured in {elapsed:.0} s. Results: {} (one line per process), {}",
        results_path.display(),
        json.display()
    );
    Ok(())
}
