//! Project tasks: `cargo xtask <task>`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  demo [--out DIR]   the whole method on Fashion-MNIST in a few minutes on a laptop CPU:
                     hyper-search -> extract scales -> train with the RepOptimizer -> evaluate
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
