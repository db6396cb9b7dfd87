//! RepOptimizer SGD: `torch.optim.SGD` with a Grad Mult on the gradient.

use burn::config::Config;
use burn::optim::LearningRate;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Optimizer, Sgd, SgdConfig, SgdState};
use burn::tensor::{Device, Tensor};

use crate::error::{RepOptError, Result};
use crate::grad_mult::GradMult;
use crate::groups::RepOptimizerConfig;
use crate::host_sgd::HostSgdRule;

/// Configuration of [`RepSgd`]: the semantics of PyTorch's `torch.optim.SGD`.
///
/// One step for a parameter `W` with gradient `g`, Grad Mult `M` (1 where none is set), momentum
/// `μ`, dampening `τ`, weight decay `λ` and learning rate `η`:
///
/// ```text
/// d = g ⊙ M + λ·W                      (the decay is not multiplied by M)
/// b = d                 on the first step
/// b = μ·b + (1 − τ)·d   afterwards
/// d = d + μ·b  (Nesterov)  |  d = b  (otherwise)
/// W = W − η·d
/// ```
///
/// For a 3×3 conv whose `M` comes from a CSLA block's scales, this trains the conv exactly as the
/// block's equivalent kernel moves when the block itself is trained with this SGD (any scale sign).
#[derive(Config, Debug)]
pub struct RepSgdConfig {
    /// Momentum factor `μ`; 0 disables momentum.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Dampening `τ` (PyTorch's default 0, unlike Burn's `MomentumConfig`).
    #[config(default = 0.0)]
    pub dampening: f64,
    /// Nesterov momentum.
    #[config(default = false)]
    pub nesterov: bool,
    /// Coupled L2 weight decay `λ`.
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// Gradient clipping; refused together with Grad Mults.
    pub gradient_clipping: Option<GradientClippingConfig>,
}

impl RepOptimizerConfig for RepSgdConfig {
    type Optim = RepSgd;

    fn check(&self) -> Result<()> {
        if !(self.momentum >= 0.0 && self.momentum.is_finite()) {
            return Err(RepOptError::InvalidConfig(format!(
                "momentum must be ≥ 0, got {}",
                self.momentum
            )));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(RepOptError::InvalidConfig(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(RepOptError::InvalidConfig(
                "Nesterov momentum needs momentum > 0 and dampening 0".into(),
            ));
        }
        Ok(())
    }

    fn clipping(&self) -> Option<&GradientClippingConfig> {
        self.gradient_clipping.as_ref()
    }

    fn build(&self, mult: Option<GradMult>, decayed: bool) -> RepSgd {
        let weight_decay = (decayed && self.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: self.weight_decay,
        });
        let momentum = (self.momentum > 0.0).then_some(MomentumConfig {
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
        });
        let sgd = SgdConfig::new()
            .with_weight_decay(weight_decay.clone())
            .with_momentum(momentum.clone())
            .build();
        let host_rule = HostSgdRule {
            weight_decay: weight_decay.map(|decay| decay.penalty),
            momentum: momentum.map(|m| (m.momentum, m.dampening, m.nesterov)),
        };
        RepSgd {
            sgd,
            host_rule,
            mult,
        }
    }
}

/// SGD for one parameter, with an optional Grad Mult; see [`RepSgdConfig`] for the math.
///
/// Its state is Burn's [`SgdState`], so a record saved from Burn's [`Sgd`] resumes here and back.
///
/// On CPU backends whose tensors live in host memory (`flex`, `ndarray`), an `f32` step runs as
/// one pass over the parameter, its gradient and its momentum ([`HostSgdRule`]) instead of the
/// nine tensor operations of Burn's [`Sgd`]; the arithmetic, operation by operation, is Burn's,
/// so the results are identical to the last bit.
#[derive(Clone)]
pub struct RepSgd {
    sgd: Sgd,
    host_rule: HostSgdRule,
    mult: Option<GradMult>,
}

impl Optimizer for RepSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // An `f64` mult takes the tensor path below.
        if self.host_rule.applies_to(&tensor, &grad, state.as_ref())
            && self.mult.as_ref().is_none_or(GradMult::is_f32)
        {
            return self
                .host_rule
                .step(lr, tensor, grad, self.mult.as_ref(), state);
        }
        let grad = match &self.mult {
            Some(mult) => mult.apply(grad),
            None => grad,
        };
        self.sgd.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Sgd as Optimizer>::to_device(state, device)
    }
}
