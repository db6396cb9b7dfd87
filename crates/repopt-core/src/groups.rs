//! Turning per-parameter settings (Grad Mult, weight decay) into Burn parameter groups.

use burn::module::{Module, ParamGroup};
use burn::optim::{DynOptimizer, ModuleOptimizer, grad_clipping::GradientClippingConfig};

use crate::error::{RepOptError, Result};
use crate::grad_mult::{GradMult, GradMults, ParamInfo};

/// Builds a [`ModuleOptimizer`] for `module` in which every parameter gets the optimizer that
/// `make(mult, decayed)` returns for its Grad Mult and weight-decay flag.
///
/// Groups are keyed by module path, so a model record loaded after the optimizer is built (which
/// restores the saved [`ParamId`](burn::module::ParamId)s) still meets the right mult. The
/// fallback group (mult-free, decayed) covers any parameter the module did not have at build time.
pub(crate) fn build_module_optimizer<M, O>(
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
