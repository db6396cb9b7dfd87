//! `repopt`: hyper-search, scale extraction, training, evaluation and equivalence checks.

use std::process::ExitCode;

use clap::Parser;
use repopt_train::cli::{Cli, main_with};

fn main() -> ExitCode {
    match main_with(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
