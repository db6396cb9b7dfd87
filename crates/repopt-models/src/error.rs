//! Errors of the model crate.

use std::path::PathBuf;

use repopt_core::RepOptError;

/// Everything that can go wrong with RepOpt-VGG models, their rules and scale files.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The scales have no entry for a block of the model.
    #[error("scales from {source_name} have no entry for block `{block}` of the model")]
    MissingBlock {
        /// Where the scales came from.
        source_name: String,
        /// The block.
        block: String,
    },
    /// The scales have a block the model does not have.
    #[error("scales from {source_name} have block `{block}`, which the model does not have")]
    ExtraBlock {
        /// Where the scales came from.
        source_name: String,
        /// The block.
        block: String,
    },
    /// A block's scales or tensors have the wrong shape.
    #[error("block `{block}`, {what}: the model expects shape {expected:?}, found {found:?}")]
    BlockShape {
        /// The block.
        block: String,
        /// Which tensor.
        what: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// An operation needs a model in another mode.
    #[error("{operation} needs a model in mode {expected}, but it is in mode {found}")]
    WrongMode {
        /// What was attempted.
        operation: String,
        /// Required mode(s).
        expected: String,
        /// The model's mode.
        found: String,
    },
    /// A file is unreadable, truncated, or not of the expected kind.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A named tensor does not fit the model.
    #[error("tensor `{name}`: {message}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An architecture description that no model can be built from.
    #[error("invalid architecture: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// An error of the optimizer crate.
    #[error(transparent)]
    Core(#[from] RepOptError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn file_error(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelError {
    ModelError::File {
        path: path.into(),
        message: message.into(),
    }
}
