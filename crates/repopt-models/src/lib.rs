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

mod batch_norms;
mod block;
mod config;
mod conv;
mod conv_geometry;
mod decay;
mod error;
#[cfg(feature = "flex-kernels")]
pub mod fused_norm;
pub mod ghostnet;
mod handler;
pub mod implied;
mod model;
mod norm;
#[cfg(feature = "flex-kernels")]
pub mod patch_conv;
#[cfg(feature = "pth")]
mod pth;
pub mod quant;
mod random_scales;
mod scales;
pub mod weights;

/// Serialises the unit tests that seed Flex's random generator: it is one per process, so a
/// test drawing between another's `seed` and its draws would change that test's numbers.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

pub use batch_norms::MapBatchNorms;
pub use block::{RepOptVggBlock, ScaleLayer};
pub use config::{BlockMode, BlockSpec, PRESETS, RepOptVggConfig};
pub use conv::{ConvImpl, Layout, conv2d_im2col, conv2d_im2col_cnhw, conv2d_patches_cnhw};
pub use conv_geometry::ConvGeometry;
pub use decay::decays_weight;
pub use error::{ModelError, Result};
pub use handler::RepOptVggHandler;
pub use model::{RepOptVgg, initial_scale};
pub use norm::BatchNorm2d;
pub use random_scales::SplitMix64;
pub use scales::{BlockScales, SCALES_FORMAT, SCALES_FORMAT_VERSION, ScaleStats, VggScales};
