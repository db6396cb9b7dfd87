//! Errors of the RepOptimizers.

use std::path::PathBuf;

/// Everything that can go wrong when building or feeding a RepOptimizer.
#[derive(Debug, thiserror::Error)]
pub enum RepOptError {
    /// A Grad Mult names a parameter path that the module does not have.
    #[error(
        "Grad Mult for `{path}` names no parameter of the module (known 3-D+ parameters include: {known})"
    )]
    UnknownParam {
        /// The path the mult was registered under.
        path: String,
        /// A few parameter paths the module does have, to help spot a prefix mismatch.
        known: String,
    },
    /// A Grad Mult's shape differs from its parameter's shape.
    #[error("Grad Mult for `{path}` has shape {found:?}, but the parameter has shape {expected:?}")]
    ShapeMismatch {
        /// Parameter path.
        path: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The mult's shape.
        found: Vec<usize>,
    },
    /// A Grad Mult holds a number of values that does not fit its shape.
    #[error("Grad Mult for `{path}` holds {len} values, but its shape {shape:?} needs {needed}")]
    BadMultData {
        /// Parameter path.
        path: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// Number of values given.
        len: usize,
        /// Number of values the shape needs.
        needed: usize,
    },
    /// A Grad Mult contains NaN or infinity.
    #[error("Grad Mult for `{path}` contains a non-finite value at flat index {index}")]
    NonFiniteMult {
        /// Parameter path.
        path: String,
        /// Flat index of the first offending value.
        index: usize,
    },
    /// The same path was given two Grad Mults.
    #[error("Grad Mult for `{path}` was given twice")]
    DuplicateMult {
        /// Parameter path.
        path: String,
    },
    /// Gradient clipping was asked for together with Grad Mults.
    #[error(
        "gradient clipping cannot be combined with Grad Mults: clipping the multiplied gradient \
         changes the update, so the plain model no longer trains like its multi-branch (CSLA) \
         counterpart. Clip only the hyper-search model, or train without Grad Mults"
    )]
    ClippingWithMults,
    /// A scale vector or kernel has the wrong shape for the rule it feeds.
    #[error("{what}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// What was being built (e.g. `Grad Mult of stage1.1`).
        what: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Found shape.
        found: Vec<usize>,
    },
    /// A hyper-parameter is outside its valid range.
    #[error("invalid optimizer setting: {0}")]
    InvalidConfig(String),
    /// A tensor file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = RepOptError> = std::result::Result<T, E>;
