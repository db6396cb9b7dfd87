//! `repopt`: hyper-search, scale extraction, training, evaluation and equivalence checks.
//!
//! Every failure ends in one line on stderr. A panic (from a dependency: the CLI checks what it
//! can before training starts) is caught here and reported the same way, naming the run folder;
//! the panic's own report and backtrace are printed only when `RUST_BACKTRACE` is set.

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use repopt_train::TrainError;
use repopt_train::cli::{Cli, main_with};

/// The first panic's message and place, kept by the hook for the one-line report.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            eprintln!("{}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
    };
    repopt_train::logging::init(cli.verbosity());
    let folder = cli.run_folder();
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let mut first = PANIC.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| format!("{}{place}", message.replace('\n', " ")));
        }));
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| main_with(cli)));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(TrainError::Output(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader of our output went away (`repopt … | head`): stop quietly.
            ExitCode::from(141)
        }
        Ok(Err(error)) => {
            let message = joined(&error.to_string());
            eprintln!("error: {message}{}", hint(&message));
            ExitCode::FAILURE
        }
        Err(payload) => {
            let what = PANIC
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            if what.contains("Broken pipe") {
                // The reader of our output went away (`repopt … | head`): stop quietly.
                return ExitCode::from(141);
            }
            let place = folder
                .map(|f| {
                    format!(
                        "; the run folder {} keeps its last complete checkpoint (continue with \
                         --resume)",
                        f.display()
                    )
                })
                .unwrap_or_default();
            eprintln!(
                "error: internal failure: {what}{place}. Rerun with RUST_BACKTRACE=1 for the \
                 backtrace"
            );
            ExitCode::FAILURE
        }
    }
}

/// A message in one line: its non-empty lines, trimmed, joined by spaces (an error from a
/// dependency, such as the trainer's, may span several).
fn joined(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What to do about an error whose remedy is a flag: an unreadable image (at opening or, for
/// a file whose header reads but whose pixels do not, when a batch reaches it).
fn hint(message: &str) -> &'static str {
    if message.contains(": cannot decode image: ") {
        " (replace or remove the file; --skip-invalid decodes every image before training and \
         leaves the unreadable ones out)"
    } else {
        ""
    }
}

/// clap's error report in one line: its first line, what a first line ending in `:` announces
/// (the missing arguments), and its tip, without the usage block.
fn one_line(report: &str) -> String {
    let mut lines = report.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines
        .next()
        .unwrap_or("error: invalid command line")
        .to_string();
    let (mut items, mut tip) = (Vec::new(), None);
    for line in lines.take_while(|l| !l.starts_with("Usage:")) {
        match line.strip_prefix("tip: ") {
            Some(text) => tip = tip.or(Some(text)),
            None => items.push(line),
        }
    }
    if first.ends_with(':') && !items.is_empty() {
        first = format!("{first} {}", items.join(", "));
    }
    match tip {
        Some(tip) => format!("{first} ({tip})"),
        None => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_several_lines_is_printed_as_one() {
        assert_eq!(
            joined("training failed: step 3\n  caused by: NaN loss\n\n; checkpoints in x"),
            "training failed: step 3 caused by: NaN loss ; checkpoints in x"
        );
        assert_eq!(joined("one line"), "one line");
    }

    /// clap's reports as it renders them: the missing arguments are named, the tip kept, the
    /// usage dropped.
    #[test]
    fn a_command_line_error_names_what_is_missing() {
        let missing = "error: the following required arguments were not provided:\n  \
                       --run <RUN>\n  --out <OUT>\n\nUsage: repopt eval --run <RUN>\n\n\
                       For more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "error: the following required arguments were not provided: --run <RUN>, --out <OUT>"
        );
        let unexpected = "error: unexpected argument '--foo' found\n\n  tip: to pass '--foo' \
                          as a value, use '-- --foo'\n\nUsage: repopt eval [OPTIONS] --run \
                          <RUN>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(unexpected),
            "error: unexpected argument '--foo' found (to pass '--foo' as a value, use '-- --foo')"
        );
        assert_eq!(one_line(""), "error: invalid command line");
    }

    #[test]
    fn an_unreadable_image_names_the_flag_that_skips_it() {
        let opening = "x/train/a/1.png: cannot decode image: unexpected end of file";
        assert!(hint(opening).contains("--skip-invalid"));
        let training = format!("training failed: Dataset error: worker 1 failed: {opening}; ...");
        assert!(hint(&training).contains("--skip-invalid"));
        assert_eq!(hint("x: no such data folder"), "");
    }
}
