//! RepOptimizers for [Burn](https://burn.dev): optimizers that carry a model's structural prior.
//!
//! *Re-parameterizing Your Optimizers rather than Architectures* (Ding et al., ICLR 2023) shows
//! that training a multi-branch block with constant branch scales (a CSLA block) is the same as
//! training one plain conv whose gradient is multiplied by a constant **Grad Mult**, once the conv
//! starts from the block's equivalent kernel. This crate is the model-agnostic half:
//!
//! * [`GradMult`] / [`GradMults`]: constant multipliers keyed by parameter path, validated against
//!   a module;
//! * [`RepSgdConfig`] and [`RepAdamWConfig`]: SGD (PyTorch semantics) and the official AdamW
//!   variant as Burn [`ModuleOptimizer`](burn::optim::ModuleOptimizer)s, so they plug into Burn's
//!   Learner, LR schedulers and optimizer records;
//! * [`clip_global_norm`]: gradient clipping by the global norm (the hyper-search's);
//! * [`csla`]: the closed-form equivalent kernel and Grad Mult of a CSLA conv ([`csla::CslaConv`]:
//!   any kernel size, groups, centred branches and identity), and [`CslaModel`], the CSLA structure
//!   of a whole model, which re-initialises and gives the mults of any Burn module by path;
//! * [`RepOptHandler`]: the trait through which a model's rules are used; [`CslaModel`] implements
//!   it for every module.
//!
//! ```no_run
//! # use burn::module::Module;
//! # fn demo<M: Module>(model: M, mults: repopt_core::GradMults) -> repopt_core::Result<()> {
//! use repopt_core::{RepOptimizerConfig, RepSgdConfig};
//! let mut optim = RepSgdConfig::new()
//!     .with_momentum(0.9)
//!     .with_nesterov(true)
//!     .with_weight_decay(1e-4)
//!     .init(&model, &mults)?;
//! // model = optim.step(lr, model, grads);
//! # Ok(()) }
//! ```

mod adamw;
pub mod clip;
pub mod csla;
mod csla_model;
mod error;
mod factored_mult;
mod grad_mult;
mod groups;
mod handler;
mod host_memory;
mod host_sgd;
mod sgd;
pub mod tensor_io;

pub use adamw::{RepAdamW, RepAdamWConfig};
pub use clip::clip_global_norm;
pub use csla::UpdateRule;
pub use csla_model::{BranchKernels, CslaModel};
pub use error::{RepOptError, Result};
pub use grad_mult::{GradMult, GradMults, ParamInfo, param_infos};
pub use groups::RepOptimizerConfig;
pub use handler::RepOptHandler;
pub use sgd::{RepSgd, RepSgdConfig};
