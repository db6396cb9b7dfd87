//! The subcommands of `repopt`: each writes its results (tables, reports, the files it wrote)
//! to the `stdout` it is given; progress and warnings go through `tracing`.

mod inspect;
mod plots;
mod quantize;
mod runs;

use std::io::Write;

use crate::cli::Command;
use crate::config::Method;
use crate::error::{Result, TrainError};

/// `writeln!` to a command's output, a failed write as [`TrainError::Output`].
macro_rules! say {
    ($out:expr) => {
        writeln!($out).map_err($crate::error::TrainError::Output)
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err($crate::error::TrainError::Output)
    };
}
pub(crate) use say;

/// Runs `command`, writing its results to `stdout`.
pub fn run(command: Command, stdout: &mut dyn Write) -> Result<()> {
    match command {
        Command::Hs(args) => {
            let mut config = args.resolve()?;
            if args.gave("method") && config.method != Method::Hs {
                return Err(TrainError::Config(
                    "`repopt hs` trains the hyper-search model; use `repopt train` for --method"
                        .into(),
                ));
            }
            config.method = Method::Hs;
            runs::train(&config, stdout)
        }
        Command::Train(args) => {
            let config = args.resolve()?;
            if config.method == Method::Hs {
                return Err(TrainError::Config(
                    "use `repopt hs` for the hyper-search".into(),
                ));
            }
            runs::train(&config, stdout)
        }
        Command::ExtractScales { run, out } => runs::extract_scales(&run, out, stdout),
        Command::Eval(args) => runs::eval(&args, stdout),
        Command::Quantize(args) => quantize::quantize(&args, stdout),
        Command::Export { run, out } => runs::export(&run, &out, stdout),
        Command::Verify(args) => crate::verify::verify(&args, stdout),
        Command::InspectScales {
            file,
            preset,
            kernels,
            seed,
        } => inspect::inspect_scales(&file, preset.as_deref(), kernels.then_some(seed), stdout),
        Command::Plot {
            runs,
            labels,
            scales,
            quantization,
            kernels,
            preset,
            out,
        } => {
            if !quantization.is_empty() {
                plots::plot_quantization(&quantization, &labels, &out, stdout)
            } else if !kernels.is_empty() {
                plots::plot_kernels(&kernels, &labels, &out, stdout)
            } else {
                plots::plot(
                    &runs,
                    &labels,
                    scales.as_deref(),
                    preset.as_deref(),
                    &out,
                    stdout,
                )
            }
        }
    }
}
