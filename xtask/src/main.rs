//! Project tasks: `cargo xtask <task>`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod web;

const HELP: &str = "\
cargo xtask <task>

Tasks:
  demo [--out DIR]   the whole method on Fashion-MNIST in a few minutes on a laptop CPU:
                     hyper-search -> extract scales -> train with the RepOptimizer -> evaluate
  repro [--quick] [--data D] [--out DIR] [--seeds N] [--docs]
                     the paper's comparison on CIFAR-10: hyper-search, then RepOptimizer,
                     plain SGD, RepVGG and all-ones RepOptimizer from the same seeds;
                     table, curves and scale pictures (--docs: into docs/); --quick: a few
                     hundred steps per method, failing unless every method learns
  bench [--quick] [--json FILE]
                     training and inference throughput and peak memory of RepOpt-VGG against
                     RepVGG (tiny, A0, B1; one process per mode; release build); --quick: tiny
                     and A0 only; results in target/repopt-bench/ (--json: the summary there)
  web [--test] [--no-serve] [--port P] [--data D] [--per-class N]
                     the browser demo: builds RepOpt-VGG for wasm (WebGPU, CPU fallback), the
                     page, the model and a gallery of CIFAR-10 test images into
                     target/web-demo/, and serves it on http://127.0.0.1:8080/; --test: first
                     checks it in headless Chromium against the native model
  test               the whole test suite (cargo test --workspace)
";

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut command: Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// The Fashion-MNIST folder, installed from Debian's package when missing and possible.
fn fashion_mnist() -> Result<PathBuf, String> {
    let dir = PathBuf::from(FASHION_MNIST);
    if dir.join("train-images-idx3-ubyte.gz").is_file() {
        return Ok(dir);
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_apt = Path::new("/usr/bin/apt-get").exists();
    if is_root && has_apt {
        println!("Fashion-MNIST is not installed: installing Debian's dataset-fashion-mnist");
        let mut update = Command::new("apt-get");
        update.args(["update", "-qq"]);
        let _ = run(update);
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "-qq", "dataset-fashion-mnist"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(install)?;
        if dir.join("train-images-idx3-ubyte.gz").is_file() {
            return Ok(dir);
        }
    }
    Err(format!(
        "Fashion-MNIST was not found in {FASHION_MNIST}.\n\
         On Debian or Ubuntu install it with:  sudo apt-get install dataset-fashion-mnist\n\
         Elsewhere, put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n\
         t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder and run\n\
         `cargo run -p repopt-train --bin repopt -- hs --data <folder> ...` (see README.md)."
    ))
}

fn repopt(args: &[&str]) -> Result<(), String> {
    let mut command = cargo();
    command
        .args([
            "run",
            "--quiet",
            "-p",
            "repopt-train",
            "--bin",
            "repopt",
            "--",
        ])
        .args(args);
    run(command)
}

fn demo(out: &Path) -> Result<(), String> {
    let data = fashion_mnist()?;
    let data = data.to_str().expect("utf-8 path");
    if out.join("hs/checkpoint").exists() || out.join("repopt/checkpoint").exists() {
        return Err(format!(
            "{} holds an earlier demo; remove it or pass --out another folder",
            out.display()
        ));
    }
    let hs = out.join("hs");
    let trained = out.join("repopt");
    let (hs, trained) = (hs.to_str().unwrap(), trained.to_str().unwrap());
    // A small but deep RepOpt-VGG: 11 blocks, 1-channel 32×32 inputs.
    let model = [
        "--preset",
        "tiny",
        "--num-blocks",
        "2,3,4,1",
        "--width",
        "0.25,0.25,0.25,0.5",
    ];
    println!("\n== 1/4 hyper-search: the three-branch model learns its scales (10k images)");
    let mut args = vec![
        "hs",
        "--data",
        data,
        "--train-limit",
        "10000",
        "--test-limit",
        "2000",
    ];
    args.extend(model);
    args.extend(["--epochs", "2", "--lr", "0.05", "--out", hs]);
    repopt(&args)?;
    println!("\n== 2/4 the searched scales");
    let scales = format!("{hs}/scales.safetensors");
    repopt(&["inspect-scales", &scales])?;
    println!("\n== 3/4 the plain model trained with the RepOptimizer built from them (60k images)");
    let mut args = vec![
        "train", "--method", "repopt", "--scales", &scales, "--data", data,
    ];
    args.extend(model);
    args.extend(["--epochs", "3", "--lr", "0.05", "--out", trained]);
    repopt(&args)?;
    println!("\n== 4/4 evaluation of the plain model on the 10k test images");
    repopt(&["eval", "--run", trained])?;
    println!(
        "\nDone. Artifacts:\n  scales      {scales}\n  model       {trained}/model.bpk\n  \
         metrics     {trained}/metrics.csv (and {hs}/metrics.csv)\n  logs        \
         {trained}/experiment.log\n  checkpoints {trained}/checkpoint/\n  settings    \
         {trained}/run.json"
    );
    Ok(())
}

/// Settings of one reproduction run.
struct Repro {
    quick: bool,
    data: Option<PathBuf>,
    out: PathBuf,
    seeds: usize,
    docs: bool,
}

/// `<out>/data/cifar10-jpg` extracted from the shared archive (once), or the folder given.
fn cifar10(repro: &Repro) -> Result<PathBuf, String> {
    let archive = match &repro.data {
        Some(path) if path.is_dir() => return Ok(path.clone()),
        Some(path) => path.clone(),
        None => PathBuf::from("../shared/data/cifar10-jpg.tar.gz"),
    };
    let root = repro.out.join("data/cifar10-jpg");
    if root.join("train").is_dir() && root.join("test").is_dir() {
        return Ok(root);
    }
    if !archive.is_file() {
        return Err(format!(
            "CIFAR-10 not found at {}: pass --data with the cifar10-jpg.tar.gz archive or an \
             extracted folder holding train/<class>/ and test/<class>/",
            archive.display()
        ));
    }
    let dest = repro.out.join("data");
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    println!("extracting {} into {}", archive.display(), dest.display());
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(&archive).arg("-C").arg(&dest);
    run(tar)?;
    Ok(root)
}

#[derive(Debug)]
struct Outcome {
    method: String,
    seed: usize,
    top1: f64,
    seconds_per_epoch: f64,
    peak_memory: Option<f64>,
}

fn read_outcome(dir: &Path, method: &str, seed: usize) -> Result<Outcome, String> {
    let path = dir.join("outcome.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let number = |v: &serde_json::Value| v.as_f64();
    Ok(Outcome {
        method: method.into(),
        seed,
        top1: number(&value["test"]["top1"]).ok_or("outcome without top-1")?,
        seconds_per_epoch: number(&value["seconds_per_epoch"]).unwrap_or(f64::NAN),
        peak_memory: number(&value["peak_memory_bytes"]).map(|b| b / (1 << 20) as f64),
    })
}

const METHODS: [(&str, &str); 4] = [
    (
        "repopt",
        "RepOpt-VGG (target + RepOptimizer, searched scales)",
    ),
    ("plain", "target + plain SGD (no Grad Mults)"),
    ("repvgg", "RepVGG (three branches, fused for evaluation)"),
    ("repopt-ones", "target + RepOptimizer with all scales 1"),
];

fn mean_spread(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, (hi - lo) / 2.0)
}

fn repro(repro: &Repro) -> Result<(), String> {
    let data = cifar10(repro)?;
    let data = data.to_str().expect("utf-8 path").to_string();
    let out = &repro.out;
    // A0's depth (2, 4, 14, 1 blocks) at a third of its width: depth is what the structural prior
    // is for, and the width keeps a full run within 90 minutes on 2 cores.
    let model = ["--preset", "a0", "--width", "0.25,0.25,0.25,0.5"];
    let (hs_epochs, epochs, limit, test_limit, workers) = if repro.quick {
        ("1", "2", "8000", "1000", "2")
    } else {
        ("4", "6", "20000", "10000", "2")
    };
    let common = |args: &mut Vec<String>| {
        args.extend([
            "--data".into(),
            data.clone(),
            "--test-limit".into(),
            test_limit.into(),
        ]);
        args.extend(model.iter().map(|s| s.to_string()));
        args.extend([
            "--workers".into(),
            workers.into(),
            "--batch-size".into(),
            "64".into(),
        ]);
        args.extend([
            "--lr".into(),
            "0.05".into(),
            "--train-limit".into(),
            limit.into(),
        ]);
    };
    let call = |args: Vec<String>| repopt(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let hs = out.join("hs");
    if !hs.join("scales.safetensors").is_file() {
        println!("\n== hyper-search");
        let mut args: Vec<String> = ["hs", "--epochs", hs_epochs].map(String::from).to_vec();
        common(&mut args);
        args.extend(["--out".into(), hs.display().to_string()]);
        call(args)?;
    }
    let scales = hs.join("scales.safetensors").display().to_string();
    let mut outcomes = Vec::new();
    for seed in 0..repro.seeds {
        for (method, _) in METHODS {
            let dir = out.join(format!("{method}-s{seed}"));
            if !dir.join("outcome.json").is_file() {
                println!("\n== {method}, seed {seed}");
                let mut args: Vec<String> = ["train", "--method", method, "--epochs", epochs]
                    .map(String::from)
                    .to_vec();
                if method == "repopt" {
                    args.extend(["--scales".into(), scales.clone()]);
                }
                common(&mut args);
                args.extend(["--seed".into(), seed.to_string()]);
                args.extend(["--out".into(), dir.display().to_string()]);
                call(args)?;
            }
            outcomes.push(read_outcome(&dir, method, seed)?);
        }
    }

    let curves: Vec<String> = METHODS
        .iter()
        .map(|(m, _)| out.join(format!("{m}-s0")).display().to_string())
        .collect();
    let labels: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
    let curves_png = out.join("curves.png");
    let scales_png = out.join("scales.png");
    repopt(&[
        "plot",
        "--runs",
        &curves.join(","),
        "--labels",
        &labels.join(","),
        "--out",
        curves_png.to_str().unwrap(),
    ])?;
    repopt(&[
        "plot",
        "--scales",
        &scales,
        "--out",
        scales_png.to_str().unwrap(),
    ])?;

    let mut table = String::from(
        "| method | top-1 (%) mean ± half-range | runs | s / epoch | peak memory (MiB) |\n|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (method, description) in METHODS {
        let runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.method == method).collect();
        let (top1, spread) = mean_spread(&runs.iter().map(|o| o.top1).collect::<Vec<_>>());
        let (seconds, _) =
            mean_spread(&runs.iter().map(|o| o.seconds_per_epoch).collect::<Vec<_>>());
        let memory = runs
            .iter()
            .filter_map(|o| o.peak_memory)
            .fold(0.0, f64::max);
        table.push_str(&format!(
            "| {description} | {top1:.2} ± {spread:.2} | {} | {seconds:.1} | {memory:.0} |\n",
            runs.len()
        ));
        if repro.quick && runs.iter().any(|o| o.top1 < 20.0) {
            failures.push(format!(
                "{method}: top-1 {:?}",
                runs.iter().map(|o| o.top1).collect::<Vec<_>>()
            ));
        }
    }
    let summary = out.join("results.md");
    std::fs::write(&summary, &table).map_err(|e| format!("{}: {e}", summary.display()))?;
    let runs: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "method": o.method, "seed": o.seed, "top1": o.top1,
                "seconds_per_epoch": o.seconds_per_epoch, "peak_memory_mib": o.peak_memory,
            })
        })
        .collect();
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&runs).expect("json"))
        .map_err(|e| format!("{}: {e}", json.display()))?;
    println!(
        "\n{table}\ncurves {}\nscales {}",
        curves_png.display(),
        scales_png.display()
    );
    if repro.docs {
        for (from, to) in [
            (&curves_png, "docs/results-curves.png"),
            (&scales_png, "docs/results-scales.png"),
            (&summary, "docs/results-table.md"),
            (&json, "docs/results.json"),
        ] {
            std::fs::copy(from, to).map_err(|e| format!("{to}: {e}"))?;
        }
        println!("copied the table and pictures into docs/");
    }
    if !failures.is_empty() {
        return Err(format!(
            "methods that did not learn (chance is 10 %): {}",
            failures.join("; ")
        ));
    }
    Ok(())
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

/// The workspace's target folder.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

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

/// `cargo xtask bench`: builds `repopt-bench` in release, measures every setting and mode in a
/// process of its own, then prints the tables and writes the results as JSON.
fn bench(quick: bool, json: Option<PathBuf>) -> Result<(), String> {
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
    let bench = target_dir().join("release/repopt-bench");
    let out = target_dir().join("repopt-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let results_path = out.join("results.jsonl");
    let json_given = json.is_some();
    let json = json.unwrap_or_else(|| out.join("benchmarks.json"));

    let started = std::time::Instant::now();
    let mut results = String::new();
    let mut measure = |args: Vec<String>, what: String| -> Result<(), String> {
        let line = bench_measure(&bench, &args, &what)?;
        results.push_str(&line);
        results.push('\n');
        // Written after every measurement, so that a failed run leaves what it measured.
        std::fs::write(&results_path, &results)
            .map_err(|e| format!("{}: {e}", results_path.display()))
    };
    for setting in BENCH_SETTINGS.iter().filter(|s| s.quick || !quick) {
        for mode in BENCH_MODES {
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
            let what = format!(
                "{mode} ({} {}, 3x{}x{}, batch {})",
                setting.preset,
                setting.width.unwrap_or(""),
                setting.image_size,
                setting.image_size,
                setting.batch_size
            );
            measure(args, what)?;
        }
    }
    if !quick {
        // flex against Burn's deprecated ndarray backend, on the A0 training step.
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
        measure(
            args.map(String::from).to_vec(),
            "train-repopt (a0, 3x32x32, batch 32, ndarray)".into(),
        )?;
    }
    let elapsed = started.elapsed().as_secs_f64();

    let mut command = String::from("cargo xtask bench");
    if quick {
        command.push_str(" --quick");
    }
    if json_given {
        command.push_str(&format!(" --json {}", json.display()));
    }
    let mut report = Command::new(&bench);
    report
        .arg("report")
        .arg("--results")
        .arg(&results_path)
        .arg("--json")
        .arg(&json)
        .args(["--command", &command])
        .args(["--elapsed-seconds", &format!("{elapsed:.0}")]);
    run(report)?;
    println!(
        "\nMeasured in {elapsed:.0} s. Results: {} (one line per process), {}",
        results_path.display(),
        json.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => {
            let out = match args.get(1).map(String::as_str) {
                Some("--out") => args.get(2).map(PathBuf::from),
                _ => None,
            };
            demo(&out.unwrap_or_else(|| PathBuf::from("runs/demo")))
        }
        Some("repro") => {
            let mut settings = Repro {
                quick: false,
                data: None,
                out: PathBuf::from("runs/repro"),
                seeds: 2,
                docs: false,
            };
            let mut rest = args[1..].iter();
            let mut bad = None;
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--quick" => settings.quick = true,
                    "--docs" => settings.docs = true,
                    "--data" => settings.data = rest.next().map(PathBuf::from),
                    "--out" => settings.out = rest.next().map(PathBuf::from).unwrap_or_default(),
                    "--seeds" => {
                        settings.seeds = rest.next().and_then(|n| n.parse().ok()).unwrap_or(0)
                    }
                    other => bad = Some(other.to_string()),
                }
            }
            if settings.quick && !args.iter().any(|a| a == "--seeds") {
                settings.seeds = 1;
            }
            match bad {
                Some(flag) => Err(format!("repro: unknown flag `{flag}`\n{HELP}")),
                None if settings.seeds == 0 => Err("repro: --seeds needs a number ≥ 1".into()),
                None => repro(&settings),
            }
        }
        Some("bench") => {
            let mut quick = false;
            let mut json = None;
            let mut bad = None;
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--quick" => quick = true,
                    "--json" => json = rest.next().map(PathBuf::from),
                    other => bad = Some(other.to_string()),
                }
            }
            match bad {
                Some(flag) => Err(format!("bench: unknown flag `{flag}`\n{HELP}")),
                None => bench(quick, json),
            }
        }
        Some("web") => {
            let mut settings = web::Web {
                data: None,
                port: 8080,
                serve: true,
                test: false,
                per_class: 2,
            };
            let mut rest = args[1..].iter();
            let mut bad = None;
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--test" => settings.test = true,
                    "--no-serve" => settings.serve = false,
                    "--data" => settings.data = rest.next().map(PathBuf::from),
                    "--port" => {
                        settings.port = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0)
                    }
                    "--per-class" => {
                        settings.per_class = rest.next().and_then(|n| n.parse().ok()).unwrap_or(0)
                    }
                    other => bad = Some(other.to_string()),
                }
            }
            match bad {
                Some(flag) => Err(format!("web: unknown flag `{flag}`\n{HELP}")),
                None if settings.port == 0 => Err("web: --port needs a port number".into()),
                None if settings.per_class == 0 => {
                    Err("web: --per-class needs a number ≥ 1".into())
                }
                None => web::web(&settings),
            }
        }
        Some("test") => {
            let mut command = cargo();
            command.args(["test", "--workspace"]);
            run(command)
        }
        _ => {
            eprint!("{HELP}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
