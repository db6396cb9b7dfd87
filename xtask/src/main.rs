//! Project tasks: `cargo xtask <task>`.

use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  test    run the whole test suite (cargo test --workspace)
";

fn cargo(args: &[&str]) -> ExitCode {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => cargo(&["test", "--workspace"]),
        _ => {
            eprint!("{HELP}");
            ExitCode::FAILURE
        }
    }
}
