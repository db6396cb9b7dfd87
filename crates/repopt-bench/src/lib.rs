//! Training and inference throughput and peak memory of RepOpt-VGG against RepVGG, on Burn.
//!
//! One [`Case`] (preset, input size, batch, [`Mode`], backend) is measured per process by
//! [`measure::run`], so that the peak resident memory a [`Measurement`] reports belongs to that
//! mode alone. [`report`] turns the measurements of a whole run into tables and ratios.
//!
//! * Training modes time one step each: forward, cross-entropy, backward, optimizer step.
//! * Inference modes time one forward pass in eval mode (running BN statistics, no autodiff).
//! * Every mode of a case sees the same seeded random images and labels and the same settings;
//!   warm-up steps are not timed; the throughput is `batch / median step time`.

pub mod case;
pub mod gemm;
pub mod measure;
pub mod memory;
pub mod report;

pub use case::{Backend, Case, Mode};
pub use measure::Measurement;

/// What can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A model or optimizer could not be built.
    #[error("model: {0}")]
    Model(#[from] repopt_models::ModelError),
    /// A RepOptimizer could not be built.
    #[error("optimizer: {0}")]
    Optimizer(#[from] repopt_core::RepOptError),
    /// The case cannot be measured as asked.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing results failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A results file holds something that is not a measurement.
    #[error("{path}, line {line}: {source}")]
    Json {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, BenchError>;
