//! Checkpoints written atomically, and finding the last complete one.

use std::path::{Path, PathBuf};

use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::ModuleRecord;
use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};
use repopt_core::tensor_io::write_atomic;

/// Burn's file checkpointer layout (`<dir>/<name>-<epoch>.bpk`), but every file is written to a
/// temporary name and renamed, so an interruption never leaves a half-written checkpoint.
pub struct AtomicFileCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `name` in `directory`.
    pub fn new(directory: impl AsRef<Path>, name: &str) -> Self {
        Self {
            directory: directory.as_ref().to_path_buf(),
            name: name.into(),
        }
    }

    /// The file of `epoch`.
    pub fn path(&self, epoch: usize) -> PathBuf {
        self.directory.join(format!("{}-{epoch}.bpk", self.name))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        write_atomic(&self.path(epoch), &bytes)
            .map_err(|e| CheckpointerError::IOError(std::io::Error::other(e.to_string())))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }
}

/// The last epoch for which model, optimizer and scheduler checkpoints all exist in `dir`.
pub fn last_complete_epoch(dir: &Path) -> Option<usize> {
    let entries = std::fs::read_dir(dir).ok()?;
    let epochs = entries.filter_map(|e| {
        let name = e.ok()?.file_name().into_string().ok()?;
        name.strip_prefix("model-")?
            .strip_suffix(".bpk")?
            .parse::<usize>()
            .ok()
    });
    epochs
        .filter(|epoch| {
            ["optim", "scheduler"]
                .iter()
                .all(|n| dir.join(format!("{n}-{epoch}.bpk")).is_file())
        })
        .max()
}

/// Every epoch for which model, optimizer and scheduler checkpoints all exist in `dir`, newest
/// first.
fn complete_epochs(dir: &Path) -> Vec<usize> {
    let mut epochs = Vec::new();
    let mut newest = last_complete_epoch(dir);
    while let Some(epoch) = newest {
        epochs.push(epoch);
        newest = (1..epoch).rev().find(|e| {
            ["model", "optim", "scheduler"]
                .iter()
                .all(|n| dir.join(format!("{n}-{e}.bpk")).is_file())
        });
    }
    epochs
}

/// Why the checkpoint files of `epoch` in `dir` cannot be resumed from, if they cannot.
pub fn damaged(dir: &Path, epoch: usize) -> Option<String> {
    let file = |name: &str| dir.join(format!("{name}-{epoch}.bpk"));
    let problem = |name: &str, e: String| Some(format!("{}: {e}", file(name).display()));
    if let Err(e) = ModuleRecord::load(file("model")) {
        return problem("model", e.to_string());
    }
    if let Err(e) = <OptimizerRecord as Checkpoint>::load(file("optim")) {
        return problem("optim", e.to_string());
    }
    if let Err(e) = <LrSchedulerRecord as Checkpoint>::load(file("scheduler")) {
        return problem("scheduler", e.to_string());
    }
    None
}

/// The newest epoch of `dir` whose three checkpoint files all read, and a message for each
/// newer one skipped as damaged.
pub fn last_readable_epoch(dir: &Path) -> (Option<usize>, Vec<String>) {
    let mut skipped = Vec::new();
    for epoch in complete_epochs(dir) {
        match damaged(dir, epoch) {
            None => return (Some(epoch), skipped),
            Some(why) => skipped.push(format!("checkpoint of epoch {epoch} is damaged ({why})")),
        }
    }
    (None, skipped)
}
