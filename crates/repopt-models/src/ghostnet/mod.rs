//! RepOpt-GhostNet: the official `repoptghostnet_model.py` architecture in Burn.
//!
//! A GhostNet whose ghost modules are RepGhost modules: the primary 1×1 branch `x1` and a
//! depthwise 3×3 "cheap" conv of it are **added**, with an identity ("fusion") branch from `x1`:
//!
//! ```text
//! x1 = relu?(BN(conv1×1(x)))          c = dwconv3×3(x1)
//! Target:      y = final_bn(c)                       (trained with a RepOptimizer)
//! HyperSearch: y = final_bn(ψ⊙c + φ⊙x1)              (φ, ψ trainable)
//! Csla:        y = final_bn(ψ⊙c + φ⊙x1)              (ψ constant, φ trainable)
//! Rep:         y = bn_c(c) + fusion_bn(x1)           (RepGhost; fusable into Deploy)
//! ```
//!
//! * [`RepOptGhostNetConfig`]: the official `cfgs` ([`official_cfgs`]), the width presets
//!   ([`GHOSTNET_PRESETS`], `repoptghostnet_0_5x` … `2_0x`), explicit cfgs, the channel rule
//!   [`make_divisible`], and the derived layout: [`BottleneckSpec`]s and, for RepOptimizer
//!   rules, the [`GhostModuleSpec`]s in official handler order
//!   ([`RepOptGhostNetConfig::ghost_modules`]).
//! * [`GhostNetScales`]: the `(φ, ψ)` of every ghost module (from a model, the released `.pth`,
//!   an official hyper-search checkpoint, or this crate's `repopt-ghostnet-scales` file), strictly
//!   validated, and the RepOptimizer rules they give ([`GhostNetScales::csla_model`]); the
//!   weight-decay groups [`decays_weight`] (official, target) and
//!   [`decays_weight_equivalent_csla`] (CSLA equivalent to it).
//! * [`RepOptGhostNet`] (with [`RepOptGhostBottleneck`] and [`RepOptGhostModule`]): forward
//!   passes, the intermediate activations, the `(φ, ψ)` scales per ghost module
//!   ([`RepOptGhostNet::scales`]), and the RepGhost deploy fusion
//!   ([`RepOptGhostNet::fuse_rep`], with [`groupwise_identity_kernel`]).
//!
//! Hyper-search initial scales: `φ = 1`, `ψ = √(2/(n+1))` with `n = 2b − 1` (`ghost1`) or `2b`
//! (`ghost2`), `b` counting consecutive stride-1 `in == out` bottlenecks, across `cfgs` groups.
//!
//! Module paths are the official PyTorch names (`blocks.0.0.ghost1.primary_conv.0.weight`,
//! `blocks.0.0.ghost1.cheap_operation.1.weight`, `blocks.1.0.shortcut.3.running_var`,
//! `blocks.5.0.bn1.weight`, `conv_head.bias`, `classifier.weight` stored `[in, out]`), so
//! official state dicts load with [`crate::weights::load_torch_tensors`]. In `Deploy` mode the
//! fused cheap conv is `cheap_operation.0.{weight, bias}`.

mod bottleneck;
mod config;
mod decay;
mod either;
mod fuse;
mod layers;
mod model;
mod module;
mod rules;
mod scales;
mod scales_file;
#[cfg(feature = "pth")]
mod scales_pth;
mod spec;

pub use bottleneck::{BottleneckOutputs, ConvShortcut, RepOptGhostBottleneck};
pub use config::{
    BottleneckCfg, GHOSTNET_PRESETS, GhostMode, RepOptGhostNetConfig, make_divisible, official_cfgs,
};
pub use decay::{decays_weight, decays_weight_equivalent_csla};
pub use either::Either;
pub use fuse::groupwise_identity_kernel;
pub use layers::{ConvBnAct, SqueezeExcite};
pub use model::{GhostNetActivations, RepOptGhostNet, StageLayer};
pub use module::{CheapFollower, RepOptGhostModule};
pub use rules::{GhostNetScales, ghost_conv};
pub use scales::GhostScales;
pub use scales_file::{GHOSTNET_SCALES_FORMAT, GHOSTNET_SCALES_FORMAT_VERSION};
pub use spec::{BottleneckSpec, CHEAP_KERNEL, GhostModuleSpec, HEAD_CHANNELS, IN_CHANNELS};
