//! Project tasks: `cargo xtask <task>`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod bench;
mod compress;
mod ptq;
mod repro;
mod stats;
mod web;

/// Project tasks.
#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "Project tasks of the RepOptimizers workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// The whole method on Fashion-MNIST in a few minutes on a laptop CPU: hyper-search ->
    /// extract scales -> train with the RepOptimizer -> evaluate.
    Demo {
        /// Folder of the demo's runs.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// The data to run on, in any format `repopt` reads (IDX files, CIFAR binaries, an
        /// image folder) [default: Debian's Fashion-MNIST, installed with apt-get when missing].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// The paper's comparison on CIFAR-10: hyper-search, then RepOpt-VGG, plain SGD, RepVGG,
    /// all-ones RepOptimizer and both ablations over several seeds, with confidence intervals;
    /// resumable (a finished run is kept, an unfinished one continues).
    Repro(repro::Repro),
    /// The post-training int8 quantization study over the reproduction's RepOpt-VGG, RepVGG
    /// and plain runs: FP32 vs INT8 per scheme over seeds, per-layer SQNR, kernel distributions.
    Ptq(ptq::Ptq),
    /// Training and inference throughput and peak memory of RepOpt-VGG against RepVGG (tiny, A0,
    /// B1; one process per mode; release build), the large-gemm rate, and optionally the
    /// official PyTorch code; results in target/repopt-bench/.
    Bench(bench::Bench),
    /// The browser demo: builds RepOpt-VGG for wasm (WebGPU, CPU fallback), the page, the model
    /// and a gallery of CIFAR-10 test images into target/web-demo/ and serves it.
    Web(web::Web),
    /// The whole test suite (cargo test --workspace).
    Test,
}

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

/// `repopt plot FLAG a,b,… --labels x,y,… --out PNG`: one picture of `values` (runs, reports
/// or folders, as `flag` reads them), each labelled.
fn plot(
    repopt: &Path,
    flag: &str,
    values: &[String],
    labels: &[&str],
    png: &Path,
) -> Result<(), String> {
    let mut command = Command::new(repopt);
    command
        .args([
            "plot",
            flag,
            &values.join(","),
            "--labels",
            &labels.join(","),
        ])
        .arg("--out")
        .arg(png);
    run(command)
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

fn demo(out: &Path, data: Option<PathBuf>) -> Result<(), String> {
    let data = match data {
        Some(dir) if dir.is_dir() => dir,
        Some(dir) => return Err(format!("--data {}: no such folder", dir.display())),
        None => fashion_mnist()?,
    };
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
    println!("\n== 3/4 the plain model trained with the RepOptimizer built from them (all images)");
    let mut args = vec![
        "train", "--method", "repopt", "--scales", &scales, "--data", data,
    ];
    args.extend(model);
    args.extend(["--epochs", "3", "--lr", "0.05", "--out", trained]);
    repopt(&args)?;
    println!("\n== 4/4 evaluation of the plain model on the test images");
    repopt(&["eval", "--run", trained])?;
    println!(
        "\nDone. Artifacts:\n  scales      {scales}\n  model       {trained}/model.bpk\n  \
         metrics     {trained}/metrics.csv (and {hs}/metrics.csv)\n  logs        \
         {trained}/experiment.log\n  checkpoints {trained}/checkpoint/\n  settings    \
         {trained}/run.json"
    );
    Ok(())
}

/// Writes `text` to `path` through a temporary file, so that a reader never sees half of it.
fn write_text(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The folder of shared, uncommitted inputs: `$REPOPT_SHARED`, else `../shared` beside the
/// workspace.
fn shared_dir() -> PathBuf {
    std::env::var_os("REPOPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

/// Builds `bin` of `package` with cargo profile `profile` and returns its path.
fn binary(package: &str, bin: &str, profile: &str) -> Result<PathBuf, String> {
    let mut build = cargo();
    build.args(["build", "--profile", profile, "-p", package, "--bin", bin]);
    run(build)?;
    let folder = match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    };
    Ok(target_dir().join(folder).join(bin))
}

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Demo { out, data } => demo(&out, data),
        Task::Repro(settings) => repro::repro(&settings),
        Task::Ptq(settings) => ptq::ptq(&settings),
        Task::Bench(settings) => bench::bench(&settings),
        Task::Web(settings) => web::web(&settings),
        Task::Test => {
            let mut command = cargo();
            command.args(["test", "--workspace"]);
            run(command)
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
