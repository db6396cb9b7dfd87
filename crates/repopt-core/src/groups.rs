//! Turning per-parameter settings (Grad Mult, weight decay) into Burn parameter groups, and the
//! one way every RepOptimizer configuration becomes a module optimizer.

use burn::module::{Module, ParamGroup};
use burn::optim::{DynOptimizer, ModuleOptimizer, grad_clipping::GradientClippingConfig};

use crate::error::{RepOptError, Result};
use crate::grad_mult::{GradMult, GradMults, ParamInfo};

/// A RepOptimizer's configuration: it checks itself, names its gradient clipping, and builds
/// the optimizer of one parameter for a Grad Mult (or none) and a weight-decay flag. The module
/// optimizer follows from that, the same for every update rule.
pub trait RepOptimizerConfig {
    /// The optimizer of one parameter.
    type Optim: DynOptimizer + burn::optim::Optimizer;

    /// Refuses settings outside their valid ranges.
    fn check(&self) -> Result<()>;

    /// The gradient clipping asked for, if any (refused together with Grad Mults).
    fn clipping(&self) -> Option<&GradientClippingConfig>;

    /// The optimizer of a parameter with Grad Mult `mult` (none: an ordinary one), decayed or not.
    fn build(&self, mult: Option<GradMult>, decayed: bool) -> Self::Optim;

    /// A module optimizer for `module` with `mults`; every parameter is decayed.
    fn init<M: Module>(&self, module: &M, mults: &GradMults) -> Result<ModuleOptimizer> {
        self.init_with_decay(module, mults, |_| true)
    }

    /// Like [`init`](Self::init), with weight decay only on the parameters for which `decay`
    /// returns true (e.g. not on BatchNorm weights and biases).
    fn init_with_decay<M: Module>(
        &self,
        module: &M,
        mults: &GradMults,
        decay: impl Fn(&ParamInfo) -> bool,
    ) -> Result<ModuleOptimizer> {
        self.check()?;
        build_module_optimizer(module, mults, decay, self.clipping(), |mult, decayed| {
            self.build(mult, decayed)
        })
    }
}

/// Builds a [`ModuleOptimizer`] for `module` in which every parameter gets the optimizer that
/// `make(mult, decayed)` returns for its Grad Mult and weight-decay flag.
///
/// Groups are keyed by module path, so a model record loaded after the optimizer is built (which
/// restores the saved [`ParamId`](burn::module::ParamId)s) still meets the right mult. The
/// fallback group (mult-free, decayed) covers any parameter the module did not have at build time.
fn build_module_optimizer<M, O>(
    module: &M,
    mults: &GradMults,
    decay: impl Fn(&ParamInfo) -> bool,
    clipping: Option<&GradientClippingConfig>,
    make: impl Fn(Option<GradMult>, bool) -> O,
) -> Result<ModuleOptimizer>
where
    M: Module,
    O: DynOptimizer + burn::optim::Optimizer,
{
    if clipping.is_some() && !mults.is_empty() {
        return Err(RepOptError::ClippingWithMults);
    }
    let params = mults.validate(module)?;

    let mut optim = ModuleOptimizer::from(make(None, true));
    if let Some(clipping) = clipping {
        optim = optim.with_grad_clipping(clipping.init());
    }
    let undecayed: Vec<&str> = params
        .iter()
        .filter(|(param, mult)| mult.is_none() && !decay(param))
        .map(|(param, _)| param.path.as_str())
        .collect();
    if !undecayed.is_empty() {
        let clip = clipping.map(GradientClippingConfig::init);
        optim = optim.with_group(ParamGroup::from_paths(undecayed), make(None, false), clip);
    }
    for (param, mult) in &params {
        if let Some(mult) = mult {
            optim = optim.with_group(
                ParamGroup::from_path(param.path.clone()),
                make(Some(mult.clone()), decay(param)),
                None,
            );
        }
    }
    Ok(optim)
}
