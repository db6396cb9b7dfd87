//! RepOpt-VGG for Burn: the model in its four modes, its RepOptimizer rules, and scale files.
//!
//! * [`RepOptVggConfig`] / [`RepOptVgg`]: one definition, with [`BlockMode`] `Target` (plain
//!   conv-BN-ReLU), `HyperSearch` (trainable scales), `Csla` (constant scales) and `RepVgg`
//!   (three branches with BN, fusable into `Deploy`).
//! * [`RepOptVggHandler`]: re-initialisation and Grad Mults from [`VggScales`], implementing
//!   [`repopt_core::RepOptHandler`].
//! * [`VggScales`]: extraction from a hyper-search model, a versioned file format with strict
//!   validation, and import of the officially released `.pth` scales.
//! * [`weights`]: loading named tensors (e.g. a PyTorch state dict) into a model by path.
//!
//! Module paths are the official PyTorch names (`stage1.0.conv.weight`, `stage1.0.bn.running_var`,
//! `linear.weight` stored `[in, out]`), so official checkpoints load by name.

mod block;
mod config;
mod conv;
mod decay;
mod error;
pub mod ghostnet;
mod handler;
pub mod implied;
mod model;
mod norm;
#[cfg(feature = "pth")]
mod pth;
pub mod quant;
mod random_scales;
mod scales;
pub mod weights;

pub use block::{RepOptVggBlock, ScaleLayer};
pub use config::{BlockMode, BlockSpec, PRESETS, RepOptVggConfig};
pub use conv::{ConvImpl, conv2d_im2col};
pub use decay::decays_weight;
pub use error::{ModelError, Result};
pub use handler::RepOptVggHandler;
pub use model::{RepOptVgg, initial_scale};
pub use norm::BatchNorm2d;
pub use random_scales::SplitMix64;
pub use scales::{BlockScales, SCALES_FORMAT, SCALES_FORMAT_VERSION, ScaleStats, VggScales};
