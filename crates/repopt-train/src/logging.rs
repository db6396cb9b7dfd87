//! Logging through `tracing`, the ecosystem's (and Burn's) logger.
//!
//! What the library says while it works — epoch progress, warnings, which checkpoint it resumes
//! from — are `tracing` events, never prints. [`init`] installs the subscriber the `repopt` CLI
//! uses:
//!
//! * **stderr**, at the level `-q` / `-v` choose ([`Verbosity`]): this crate's events at
//!   `info` by default, other crates' (Burn's) only from `warn`;
//! * **the run's `experiment.log`**, every event at `info` and above with time and origin,
//!   the file a run folder keeps (the [`RunLogInstaller`] points it at the run being trained).
//!
//! A program that embeds the library installs its own subscriber, or none: the trainer then
//! keeps Burn's own file logger for `experiment.log`. A command's results (tables, reports,
//! the paths it wrote) are its output and go to stdout, not through the logger.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::train::{ApplicationLoggerInstaller, FileApplicationLoggerInstaller};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// How much the CLI says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Warnings and errors only (`-q`).
    Quiet,
    /// Progress and warnings (the default).
    Normal,
    /// Also this crate's debug events and other crates' progress (`-v`).
    Verbose,
    /// Everything, from every crate (`-vv`).
    Trace,
}

impl Verbosity {
    /// From the number of `-v` flags and whether `-q` was given (`-q` wins).
    pub fn from_flags(verbose: u8, quiet: bool) -> Self {
        match (quiet, verbose) {
            (true, _) => Self::Quiet,
            (false, 0) => Self::Normal,
            (false, 1) => Self::Verbose,
            (false, _) => Self::Trace,
        }
    }

    /// The most detailed level shown: for this workspace's crates, and for the others.
    fn levels(self) -> (LevelFilter, LevelFilter) {
        match self {
            Self::Quiet => (LevelFilter::WARN, LevelFilter::ERROR),
            Self::Normal => (LevelFilter::INFO, LevelFilter::WARN),
            Self::Verbose => (LevelFilter::DEBUG, LevelFilter::INFO),
            Self::Trace => (LevelFilter::TRACE, LevelFilter::TRACE),
        }
    }
}

/// Whether [`init`] installed the subscriber (and so owns `experiment.log`).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Whether progress is hidden (`-q`): no full-screen progress display either.
static QUIET: AtomicBool = AtomicBool::new(false);
/// The run log the file layer writes to, once a run has named it.
static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Installs the CLI's subscriber (stderr at `verbosity`, and the run log). Returns `false`, and
/// changes nothing, when the program already has a global subscriber.
pub fn init(verbosity: Verbosity) -> bool {
    let (ours, others) = verbosity.levels();
    let stderr = fmt::layer()
        .event_format(Plain)
        .with_writer(io::stderr)
        .with_filter(filter_fn(move |m| level_allows(m, ours, others)));
    let run_log = fmt::layer()
        .with_ansi(false)
        .with_writer(|| RunLogWriter)
        .with_filter(LevelFilter::INFO);
    let installed = tracing_subscriber::registry()
        .with(stderr)
        .with(run_log)
        .try_init()
        .is_ok();
    if installed {
        INSTALLED.store(true, Ordering::SeqCst);
        QUIET.store(verbosity == Verbosity::Quiet, Ordering::SeqCst);
    }
    installed
}

/// Whether `-q` asked for silence (the trainer then draws no progress screen).
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

fn level_allows(metadata: &Metadata<'_>, ours: LevelFilter, others: LevelFilter) -> bool {
    let own = metadata.target().starts_with("repopt");
    *metadata.level() <= if own { ours } else { others }
}

/// Points the run log at `path` (appending: a resumed run continues its log).
fn set_run_log(path: &Path) -> io::Result<()> {
    let file = File::options().create(true).append(true).open(path)?;
    *RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Writes to the current run log, or nowhere before a run has named one.
struct RunLogWriter;

impl Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(file) => file.write_all(buf).map(|()| buf.len()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match RUN_LOG.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// The trainer's `experiment.log`: the run log of [`init`]'s subscriber when it is installed,
/// Burn's own file logger otherwise.
pub struct RunLogInstaller {
    path: PathBuf,
}

impl RunLogInstaller {
    /// A run log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl ApplicationLoggerInstaller for RunLogInstaller {
    fn install(&self) -> Result<(), String> {
        if !INSTALLED.load(Ordering::SeqCst) {
            return FileApplicationLoggerInstaller::new(&self.path).install();
        }
        set_run_log(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Stderr lines as a person reads them: the message, with `warning:` / `error:` before the
/// serious ones and the origin before debug and trace events.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        let mut fields = String::new();
        ctx.format_fields(Writer::new(&mut fields), event)?;
        if *metadata.level() == Level::ERROR && fields.starts_with(LEARNER_STOPPED) {
            return Ok(());
        }
        match *metadata.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            level => write!(writer, "{} {}: ", level.as_str(), metadata.target())?,
        }
        writeln!(writer, "{fields}")
    }
}

/// How Burn's Learner logs the error that stopped it. The trainer returns that error, and the
/// CLI prints it as its one line; on stderr Burn's copy is left out (the run log keeps it).
const LEARNER_STOPPED: &str = "Stopped by an error: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_over_verbose() {
        assert_eq!(Verbosity::from_flags(2, true), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(0, false), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(1, false), Verbosity::Verbose);
        assert_eq!(Verbosity::from_flags(3, false), Verbosity::Trace);
    }

    #[test]
    fn levels_separate_this_workspace_from_the_rest() {
        let (ours, others) = Verbosity::Normal.levels();
        assert_eq!((ours, others), (LevelFilter::INFO, LevelFilter::WARN));
        let (ours, others) = Verbosity::Quiet.levels();
        assert_eq!((ours, others), (LevelFilter::WARN, LevelFilter::ERROR));
    }
}
