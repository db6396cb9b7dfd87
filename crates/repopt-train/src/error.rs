//! Errors of training runs and the CLI.

use std::path::PathBuf;

use repopt_core::RepOptError;
use repopt_models::ModelError;

use crate::data::DataError;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A model, scales file or rule failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The optimizer refused its settings.
    #[error(transparent)]
    Optimizer(#[from] RepOptError),
    /// A setting is invalid or settings contradict each other.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The command's output could not be written (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// Training stopped before its end (non-finite loss, interruption, device failure).
    #[error("{0}")]
    Stopped(String),
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn file_error(path: impl Into<PathBuf>, message: impl ToString) -> TrainError {
    TrainError::File {
        path: path.into(),
        message: message.to_string(),
    }
}
