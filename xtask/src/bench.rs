//! `cargo xtask bench`: training and inference throughput and peak memory per mode, each mode in
//! a process of its own, beside the large-gemm rate and, with `--pytorch`, the same mode in the
//! official PyTorch code (`benches/pytorch/bench.py`), the two processes alternating.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run, target_dir, workspace_root};

/// Settings of `cargo xtask bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct Bench {
    /// Tiny and A0 only.
    #[arg(long)]
    pub quick: bool,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also measure the official PyTorch code with this Python interpreter (which needs
    /// benches/pytorch/requirements.txt): every mode right after (or, every other round,
    /// right before) the same mode here, with as many threads.
    #[arg(long, value_name = "PYTHON")]
    pub pytorch: Option<PathBuf>,
    /// The official RepOptimizers code for --pytorch [default: ../shared/official_code].
    #[arg(long, value_name = "DIR")]
    pub official_code: Option<PathBuf>,
    /// Measure every process this many times; ratios are the medians of the per-round ratios,
    /// shown with their range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

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
    /// Trained with gradient checkpointing (`--gradient-checkpointing`).
    checkpointed: bool,
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
        checkpointed: false,
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
        checkpointed: false,
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
        checkpointed: false,
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
        checkpointed: false,
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
        checkpointed: false,
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

/// Runs `command` (one measurement in a process of its own, so that its peak memory is its
/// own) and returns the one line of JSON it prints; an error names `what`.
fn one_json_line(mut command: Command, what: &str) -> Result<String, String> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
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

/// An appended-to file of JSON lines, rewritten after every line so that a failed run leaves
/// what it measured.
struct JsonLines {
    path: PathBuf,
    lines: String,
}

impl JsonLines {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            lines: String::new(),
        }
    }

    fn push(&mut self, line: &str) -> Result<(), String> {
        self.lines.push_str(line);
        self.lines.push('\n');
        std::fs::write(&self.path, &self.lines).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// The PyTorch side of a run: the interpreter and where the official code is.
struct Pytorch {
    python: PathBuf,
    official_code: Option<PathBuf>,
}

impl Pytorch {
    /// `bench.py` with `args` and as many threads as this machine has.
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(workspace_root().join("benches/pytorch/bench.py"))
            .args(args)
            .args(["--threads", &threads().to_string()])
            .env("OMP_WAIT_POLICY", "PASSIVE");
        if let Some(dir) = &self.official_code {
            command.arg("--official-code").arg(dir);
        }
        command
    }

    /// Fails early, in one line, when the interpreter cannot import what `bench.py` needs.
    fn check(&self) -> Result<(), String> {
        let status = Command::new(&self.python)
            .args(["-c", "import torch, numpy"])
            .status()
            .map_err(|e| format!("--pytorch {}: {e}", self.python.display()))?;
        if !status.success() {
            return Err(format!(
                "--pytorch {}: cannot import torch and numpy (pip install -r benches/pytorch/requirements.txt)",
                self.python.display()
            ));
        }
        Ok(())
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A run's processes and where their results go.
struct Results<'a> {
    /// The `repopt-bench` binary.
    bench: &'a Path,
    /// The PyTorch side, with `--pytorch`.
    pytorch: Option<&'a Pytorch>,
    /// `results.jsonl`: one measurement per line.
    measurements: JsonLines,
    /// `gemm.jsonl`: one large-gemm rate per round.
    gemm: JsonLines,
}

impl Results<'_> {
    /// Measures one mode in a process of this project's.
    fn measure_ours(&mut self, args: &[String], what: &str) -> Result<(), String> {
        let mut command = Command::new(self.bench);
        command.arg("measure").args(args);
        let line = one_json_line(command, what)?;
        self.measurements.push(&line)
    }

    /// Measures one mode in a process of the official code's.
    fn measure_theirs(
        &mut self,
        pytorch: &Pytorch,
        args: &[String],
        what: &str,
    ) -> Result<(), String> {
        let line = one_json_line(pytorch.command(args), &format!("{what} in PyTorch"))?;
        self.measurements.push(&line)
    }

    /// Measures one mode here and, with `--pytorch`, in the official code right after, or
    /// right before unless `ours_first`.
    fn measure(&mut self, args: &[String], what: &str, ours_first: bool) -> Result<(), String> {
        let Some(pytorch) = self.pytorch else {
            return self.measure_ours(args, what);
        };
        if ours_first {
            self.measure_ours(args, what)?;
            self.measure_theirs(pytorch, args, what)
        } else {
            self.measure_theirs(pytorch, args, what)?;
            self.measure_ours(args, what)
        }
    }

    /// Times 2048² matrix products through flex's gemm.
    fn measure_gemm(&mut self) -> Result<(), String> {
        let mut command = Command::new(self.bench);
        command.args(["gemm", "--size", "2048", "--repeats", "10"]);
        let line = one_json_line(command, "gemm 2048x2048")?;
        self.gemm.push(&line)
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
    if setting.checkpointed {
        args.push("--gradient-checkpointing".into());
    }
    args
}

/// Measures every mode of every setting (only those of `--quick` when `quick`), the gemm rate
/// first; `round` decides which side of a PyTorch pair goes first.
fn measure_settings(results: &mut Results, quick: bool, round: u32) -> Result<(), String> {
    results.measure_gemm()?;
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
            results.measure(&measure_args(setting, mode), &what, round.is_multiple_of(2))?;
        }
    }
    Ok(())
}

/// Batches of the scaling sweep at 3×32×32 (A0 training, RepOpt-VGG and RepVGG).
const SCALING_BATCHES: [usize; 5] = [8, 16, 32, 64, 128];
/// Image sizes of the scaling sweep at batch 8.
const SCALING_SIZES: [usize; 4] = [32, 64, 128, 224];
/// The modes of the scaling sweep.
const SCALING_MODES: [&str; 2] = ["train-repopt", "train-repvgg"];

/// The settings of the scaling sweep that the main settings do not already measure.
fn scaling_settings() -> Vec<BenchSetting> {
    let point = |batch_size, image_size| BenchSetting {
        preset: "a0",
        width: None,
        image_size,
        batch_size,
        classes: 10,
        warmup: 2,
        train_steps: 5,
        infer_steps: 0,
        quick: false,
        checkpointed: false,
    };
    let batches = SCALING_BATCHES.iter().map(|&b| point(b, 32));
    let sizes = SCALING_SIZES.iter().map(|&s| point(8, s));
    let mut settings: Vec<BenchSetting> = Vec::new();
    for setting in batches.chain(sizes) {
        let same = |s: &BenchSetting| {
            (s.preset, s.width, s.image_size, s.batch_size, s.classes)
                == (
                    setting.preset,
                    setting.width,
                    setting.image_size,
                    setting.batch_size,
                    setting.classes,
                )
        };
        if !BENCH_SETTINGS.iter().any(same) && !settings.iter().any(same) {
            settings.push(setting);
        }
    }
    settings
}

/// Measures the scaling sweep, on flex only.
fn measure_scaling(results: &mut Results) -> Result<(), String> {
    for setting in scaling_settings() {
        for mode in SCALING_MODES {
            let what = format!(
                "{mode} (scaling: a0, 3x{0}x{0}, batch {1})",
                setting.image_size, setting.batch_size
            );
            results.measure_ours(&measure_args(&setting, mode), &what)?;
        }
    }
    Ok(())
}

/// The settings trained with gradient checkpointing, whose memory RepOpt-VGG and RepVGG are
/// compared in: A0 at 32×32 and B1 at 224×224 (fewer steps: memory is the point).
const CHECKPOINTED: [BenchSetting; 2] = [
    BenchSetting {
        preset: "a0",
        width: None,
        image_size: 32,
        batch_size: 32,
        classes: 10,
        warmup: 3,
        train_steps: 15,
        infer_steps: 0,
        quick: true,
        checkpointed: true,
    },
    BenchSetting {
        preset: "b1",
        width: None,
        image_size: 224,
        batch_size: 8,
        classes: 1000,
        warmup: 2,
        train_steps: 5,
        infer_steps: 0,
        quick: false,
        checkpointed: true,
    },
];

/// Measures RepOpt-VGG, plain SGD and RepVGG training with gradient checkpointing, on flex only.
fn measure_checkpointed(results: &mut Results, quick: bool) -> Result<(), String> {
    for setting in CHECKPOINTED.iter().filter(|s| s.quick || !quick) {
        for mode in ["train-repopt", "train-sgd", "train-repvgg"] {
            let what = format!(
                "{mode} (checkpointed: {}, 3x{1}x{1}, batch {2})",
                setting.preset, setting.image_size, setting.batch_size
            );
            results.measure_ours(&measure_args(setting, mode), &what)?;
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
    results.measure_ours(
        &args.map(String::from),
        "train-repopt (a0, 3x32x32, batch 32, ndarray)",
    )
}

/// The `cargo xtask bench` command line that the report records.
fn bench_command(settings: &Bench) -> String {
    let mut command = String::from("cargo xtask bench");
    if settings.quick {
        command.push_str(" --quick");
    }
    if settings.rounds > 1 {
        command.push_str(&format!(" --rounds {}", settings.rounds));
    }
    if let Some(python) = &settings.pytorch {
        command.push_str(&format!(" --pytorch {}", python.display()));
    }
    if let Some(dir) = &settings.official_code {
        command.push_str(&format!(" --official-code {}", dir.display()));
    }
    if let Some(json) = &settings.json {
        command.push_str(&format!(" --json {}", json.display()));
    }
    command
}

/// Runs `repopt-bench report` on the results: prints the tables and writes `json`.
fn report(
    bench: &Path,
    results: &Results,
    json: &Path,
    command: &str,
    elapsed: f64,
) -> Result<(), String> {
    let mut report = Command::new(bench);
    report
        .arg("report")
        .arg("--results")
        .arg(&results.measurements.path)
        .arg("--gemm")
        .arg(&results.gemm.path)
        .arg("--json")
        .arg(json)
        .arg("--scaling-png")
        .arg(json.with_file_name("benchmarks-scaling.png"))
        .args(["--command", command])
        .args(["--elapsed-seconds", &format!("{elapsed:.0}")]);
    run(report)
}

/// `cargo xtask bench`: builds `repopt-bench` in release, measures every setting and mode in a
/// process of its own (`--rounds` times, with the official PyTorch code beside each with
/// `--pytorch`), then prints the tables and writes the results as JSON.
pub fn bench(settings: &Bench) -> Result<(), String> {
    let pytorch = settings.pytorch.clone().map(|python| Pytorch {
        python,
        official_code: settings.official_code.clone(),
    });
    if let Some(pytorch) = &pytorch {
        pytorch.check()?;
    }
    let bench = build_bench()?;
    let out = target_dir().join("repopt-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let command = bench_command(settings);
    let json = settings
        .json
        .clone()
        .unwrap_or_else(|| out.join("benchmarks.json"));

    let started = std::time::Instant::now();
    let mut results = Results {
        bench: &bench,
        pytorch: pytorch.as_ref(),
        measurements: JsonLines::new(out.join("results.jsonl")),
        gemm: JsonLines::new(out.join("gemm.jsonl")),
    };
    for round in 0..settings.rounds {
        measure_settings(&mut results, settings.quick, round)?;
        measure_checkpointed(&mut results, settings.quick)?;
        if !settings.quick {
            measure_scaling(&mut results)?;
        }
    }
    if !settings.quick {
        measure_ndarray(&mut results)?;
    }
    let elapsed = started.elapsed().as_secs_f64();

    report(&bench, &results, &json, &command, elapsed)?;
    println!(
        "\nMeasured in {elapsed:.0} s. Results: {} (one line per process), {}",
        results.measurements.path.display(),
        json.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaling_sweep_measures_each_point_once() {
        let points: Vec<(usize, usize)> = scaling_settings()
            .iter()
            .map(|s| (s.batch_size, s.image_size))
            .collect();
        // a0 at batch 32, 32×32 is a main setting; batch 8 at 32×32 is in both sweeps.
        assert_eq!(
            points,
            [
                (8, 32),
                (16, 32),
                (64, 32),
                (128, 32),
                (8, 64),
                (8, 128),
                (8, 224)
            ]
        );
    }
}
