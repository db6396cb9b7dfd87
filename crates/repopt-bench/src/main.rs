//! `repopt-bench`: measures one case per process, and reports on a whole run.
//!
//! ```sh
//! repopt-bench measure --preset a0 --mode train-repopt      # one JSON line on stdout
//! repopt-bench report --results results.jsonl --json out.json
//! ```
//!
//! `cargo xtask bench` builds it in release and runs `measure` once per preset, input and mode,
//! so that each peak resident memory belongs to one mode alone, then `report`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use repopt_bench::report::{self, Machine, Summary};
use repopt_bench::{Backend, BenchError, Case, Mode, measure};
use repopt_models::ConvImpl;

#[derive(Parser)]
#[command(
    name = "repopt-bench",
    about = "Training and inference throughput and peak memory of RepOpt-VGG against RepVGG"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one case in this process; print it as one JSON line on stdout.
    Measure(MeasureArgs),
    /// Print the tables of a run's measurements (JSON lines) and optionally write them as JSON.
    Report(ReportArgs),
}

#[derive(Args)]
struct MeasureArgs {
    /// RepOpt-VGG preset (tiny, a0, a1, b0, b1, b2, l1, l2).
    #[arg(long)]
    preset: String,
    /// Width multipliers of stages 1–4 replacing the preset's: four comma-separated numbers.
    #[arg(long, value_parser = parse_width)]
    width: Option<[f32; 4]>,
    /// What to time: train-repopt, train-repopt-dense, train-sgd, train-repvgg, train-hs,
    /// infer-target, infer-target-fused, infer-repvgg-fused, infer-repvgg-unfused.
    #[arg(long)]
    mode: Mode,
    /// Height and width of the 3-channel input.
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Classifier outputs.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// flex, or ndarray (needs the `ndarray` feature).
    #[arg(long, default_value = "flex")]
    backend: Backend,
    /// How the model's convolutions are computed: im2col (one matrix product per convolution
    /// for the whole batch; the faster on CPU backends) or native (Burn's conv2d).
    #[arg(long, default_value = "im2col")]
    conv: ConvImpl,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Seed of data, scales and initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct ReportArgs {
    /// Measurements, one JSON object a line (the stdout of `measure`).
    #[arg(long)]
    results: PathBuf,
    /// Also write the measurements, ratios and machine as one JSON document here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The command that produced the run, to record.
    #[arg(long)]
    command: Option<String>,
    /// Wall seconds the run took, to record.
    #[arg(long)]
    elapsed_seconds: Option<f64>,
}

fn parse_width(text: &str) -> Result<[f32; 4], String> {
    let values = text
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|e| format!("`{v}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    values
        .try_into()
        .map_err(|v: Vec<f32>| format!("four width multipliers expected, got {}", v.len()))
}

fn measure_one(args: MeasureArgs) -> Result<(), String> {
    let case = Case {
        preset: args.preset,
        width: args.width,
        image_size: args.image_size,
        batch_size: args.batch_size,
        classes: args.classes,
        mode: args.mode,
        backend: args.backend,
        conv: args.conv,
        warmup_steps: args.warmup,
        measured_steps: args.steps,
        seed: args.seed,
    };
    let what = format!(
        "mode {} ({}, 3x{}x{}, batch {}, {}, {} conv)",
        case.mode,
        case.model_name(),
        case.image_size,
        case.image_size,
        case.batch_size,
        case.backend,
        case.conv
    );
    let m = measure::run(&case).map_err(|e| format!("{what} failed: {e}"))?;
    let peak = m
        .peak_resident_bytes
        .map_or("?".into(), |b| format!("{:.0}", b as f64 / 1048576.0));
    eprintln!(
        "{what}: {:.1} img/s (median step {:.1} ms of {}), peak {peak} MiB, {:.0} s",
        m.images_per_second,
        m.median_step_seconds * 1e3,
        m.step_seconds.len(),
        m.wall_seconds
    );
    let line = serde_json::to_string(&m).map_err(|e| format!("{what}: {e}"))?;
    println!("{line}");
    Ok(())
}

fn report_run(args: ReportArgs) -> Result<(), String> {
    let measurements = report::read_measurements(&args.results).map_err(|e| e.to_string())?;
    let ratios = report::ratios(&measurements);
    let machine = Machine::this();
    let mut convs: Vec<String> = measurements
        .iter()
        .map(|m| m.case.conv.to_string())
        .collect();
    convs.sort();
    convs.dedup();
    println!(
        "\nMachine: {} ({} threads, {:.0} GiB); backend flex unless stated; convolution: {}; {} processes{}\n",
        machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        machine.threads,
        machine.memory_bytes.unwrap_or(0) as f64 / (1u64 << 30) as f64,
        convs.join(", "),
        measurements.len(),
        args.elapsed_seconds
            .map_or(String::new(), |s| format!(", {s:.0} s of measuring")),
    );
    print!("{}", report::markdown(&measurements, &ratios));
    if let Some(path) = args.json {
        let summary = Summary {
            command: args.command,
            elapsed_seconds: args.elapsed_seconds,
            machine,
            measurements,
            ratios,
        };
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|source| {
            BenchError::Io {
                path: path.display().to_string(),
                source,
            }
            .to_string()
        })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Measure(args) => measure_one(args),
        Command::Report(args) => report_run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("repopt-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
