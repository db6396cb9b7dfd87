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
use repopt_bench::{Backend, BenchError, Case, Mode, gemm, measure};
use repopt_models::ConvImpl;
use repopt_train::compute_pool::{Denormals, compute_pool};

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
    /// Time products of two random square `f32` matrices; print one JSON line: the large-gemm
    /// rate of a backend, the yardstick of the training rate.
    Gemm(GemmArgs),
}

#[derive(Args)]
struct GemmArgs {
    /// Side of the square matrices.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Timed products (after one untimed one); the median is reported.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// flex, or ndarray (needs the `ndarray` feature).
    #[arg(long, default_value = "flex")]
    backend: Backend,
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
    /// How the model's convolutions are computed: patches (one matrix product per convolution
    /// for the whole batch, as an operation of its own on flex; the fastest on CPU backends),
    /// im2col (the same product through tensor operations) or native (Burn's conv2d).
    #[arg(long, default_value = "patches")]
    conv: ConvImpl,
    /// Recompute the activations of memory-bound operations in the backward pass instead of
    /// keeping them (training modes; Burn's balanced gradient checkpointing).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Seed of data, scales and initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute on a rayon pool of this many threads that the measurement runs inside, as
    /// `repopt --threads N` trains (subnormals flushed to zero) [default: rayon's global pool,
    /// one thread per core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
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
    /// JSON lines of `repopt-bench gemm`, measured in the same run.
    #[arg(long)]
    gemm: Option<PathBuf>,
    /// Draw the scaling sweep (A0 training, RepOpt against RepVGG: images/s and peak memory
    /// against batch and image size) as a PNG here, if the results hold it.
    #[arg(long)]
    scaling_png: Option<PathBuf>,
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
        gradient_checkpointing: args.gradient_checkpointing,
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
    let m = match args.threads {
        None => measure::run(&case),
        Some(threads) => compute_pool(Some(threads as usize), Denormals::Flush)
            .map_err(|e| format!("--threads {threads}: {e}"))?
            .install(|| measure::run(&case)),
    }
    .map_err(|e| format!("{what} failed: {e}"))?;
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

fn gemm_one(args: GemmArgs) -> Result<(), String> {
    let what = format!("gemm {0}x{0} on {1}", args.size, args.backend);
    let m = gemm::run(args.backend, args.size, args.repeats)
        .map_err(|e| format!("{what} failed: {e}"))?;
    eprintln!(
        "{what}: {:.1} GFLOP/s (median {:.1} ms of {})",
        m.gflops,
        m.median_seconds * 1e3,
        m.seconds.len()
    );
    let line = serde_json::to_string(&m).map_err(|e| format!("{what}: {e}"))?;
    println!("{line}");
    Ok(())
}

/// Writes `text` to `path` through a temporary file beside it, so that a reader never sees
/// half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), String> {
    let io = |source| {
        BenchError::Io {
            path: path.display().to_string(),
            source,
        }
        .to_string()
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn report_run(args: ReportArgs) -> Result<(), String> {
    let measurements = report::read_measurements(&args.results).map_err(|e| e.to_string())?;
    let gemm = match &args.gemm {
        Some(path) => report::read_gemm(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let mut ratios = report::ratios(&measurements);
    ratios.extend(report::step_gflops_ratios(&measurements, &gemm));
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
    print!("{}", report::markdown(&measurements, &ratios, &gemm));
    if let Some(png) = &args.scaling_png {
        let panels = report::scaling_panels(&measurements);
        if panels.is_empty() {
            eprintln!(
                "repopt-bench: no scaling sweep in the results; {} not drawn",
                png.display()
            );
        } else {
            repopt_train::plot::plot_panels(&panels, (1600, 1100), png)
                .map_err(|e| e.to_string())?;
            println!("\nScaling plot: {}", png.display());
        }
    }
    if let Some(path) = args.json {
        let summary = Summary {
            command: args.command,
            elapsed_seconds: args.elapsed_seconds,
            machine,
            measurements,
            ratios,
            gemm,
        };
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        write_atomically(&path, &(text + "\n"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Measure(args) => measure_one(args),
        Command::Report(args) => report_run(args),
        Command::Gemm(args) => gemm_one(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("repopt-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
