//! Training RepOpt-VGG with Burn's Learner: data, the `repopt` CLI's engine, evaluation.
//!
//! * [`data`]: datasets from real files (image folders, CIFAR binary, IDX), augmentation,
//!   loaders.
//! * [`config::RunConfig`]: every setting of a run; [`trainer::run`] trains it (hyper-search,
//!   RepOptimizer, plain SGD, RepVGG or CSLA) and writes model, scales, metrics and checkpoints.
//! * [`eval::evaluate`]: top-1 / top-5 on a loader;
//!   [`recalibrate::recalibrate_batch_norms`]: BatchNorm statistics re-estimated from
//!   training batches.
//! * [`compute_pool::compute_pool`]: the thread pool a command computes in (subnormals
//!   flushed to zero).
//! * [`device::parse_device`]: `cpu`, `wgpu`, `cuda:N` by cargo feature.

pub mod checkpoint;
pub mod classifier;
pub mod cli;
mod commands;
pub mod compute_pool;
pub mod config;
pub mod data;
pub mod derived_run;
pub mod device;
pub mod error;
pub mod eval;
pub mod export;
pub mod logging;
pub mod methods;
pub mod metrics_csv;
pub mod plot;
pub mod quantize;
pub mod recalibrate;
pub mod renderer;
pub mod run_data;
pub mod run_folder;
pub mod schedule;
pub mod trainer;
pub mod verify;

pub use config::{DataFormat, Method, RunConfig};
pub use error::{Result, TrainError};
pub use run_folder::{RunOutcome, RunRecord};
pub use trainer::run;
