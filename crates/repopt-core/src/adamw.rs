//! RepOptimizer AdamW, with the official RepOptimizers semantics.

use burn::config::Config;
use burn::optim::LearningRate;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWState, AdaptiveMomentumState, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::error::{RepOptError, Result};
use crate::grad_mult::GradMult;
use crate::groups::RepOptimizerConfig;

/// Configuration of [`RepAdamW`], with PyTorch's defaults (eps 1e-8, weight decay 1e-2).
///
/// One step at time `t` (from 1) for `W` with gradient `grad`, Grad Mult `M` (1 where none is set),
/// learning rate `η` and decoupled decay `λ`, as the official RepOptimizers code does it:
///
/// ```text
/// g = grad ⊙ M
/// W = W · (1 − η·λ)
/// m = β1·m + (1 − β1)·g          v = β2·v + (1 − β2)·g²
/// W = W − η/(1 − β1ᵗ) · (m ⊙ M) / (√v / √(1 − β2ᵗ) + ε)
/// ```
///
/// `M` is applied twice: to the gradient before the moments and to the first moment at the
/// update. With Grad Mults of power 1 (`α + β` at the centre), this follows a CSLA block trained
/// with AdamW **only when every scale is positive**, and only up to `ε`: with a negative scale the
/// two drift apart (relative difference ≈ 0.3 after 20 steps of a toy block). SGD has no such limit.
#[derive(Config, Debug)]
pub struct RepAdamWConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to the denominator.
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Decoupled weight decay `λ`.
    #[config(default = 1e-2)]
    pub weight_decay: f32,
    /// Gradient clipping; refused together with Grad Mults.
    pub gradient_clipping: Option<GradientClippingConfig>,
}

impl RepOptimizerConfig for RepAdamWConfig {
    type Optim = RepAdamW;

    fn check(&self) -> Result<()> {
        for (name, beta) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(RepOptError::InvalidConfig(format!(
                    "{name} must be in [0, 1), got {beta}"
                )));
            }
        }
        if !(self.epsilon >= 0.0 && self.weight_decay >= 0.0) {
            return Err(RepOptError::InvalidConfig(
                "epsilon and weight decay must be ≥ 0".into(),
            ));
        }
        Ok(())
    }

    fn clipping(&self) -> Option<&GradientClippingConfig> {
        self.gradient_clipping.as_ref()
    }

    fn build(&self, mult: Option<GradMult>, decayed: bool) -> RepAdamW {
        RepAdamW {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: if decayed { self.weight_decay } else { 0.0 },
            mult,
        }
    }
}

/// AdamW for one parameter, with an optional Grad Mult; see [`RepAdamWConfig`] for the math.
///
/// Its state is Burn's [`AdamWState`].
#[derive(Clone)]
pub struct RepAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    mult: Option<GradMult>,
}

impl Optimizer for RepAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let mult = self.mult.as_ref().map(|m| m.tensor::<D>(&grad.device()));
        let grad = match &mult {
            Some(mult) => grad.mul(mult.clone()),
            None => grad,
        };
        let (b1, b2) = (self.beta_1 as f64, self.beta_2 as f64);
        let moments = match state {
            Some(AdamWState { momentum: s }) => AdaptiveMomentumState {
                time: s.time + 1,
                moment_1: s
                    .moment_1
                    .mul_scalar(b1)
                    .add(grad.clone().mul_scalar(1.0 - b1)),
                moment_2: s
                    .moment_2
                    .mul_scalar(b2)
                    .add(grad.square().mul_scalar(1.0 - b2)),
                max_moment_2: None,
            },
            None => AdaptiveMomentumState {
                time: 1,
                moment_1: grad.clone().mul_scalar(1.0 - b1),
                moment_2: grad.square().mul_scalar(1.0 - b2),
                max_moment_2: None,
            },
        };
        let t = moments.time as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let bias_correction_2_sqrt = (1.0 - b2.powi(t)).sqrt();

        let tensor = if self.weight_decay > 0.0 {
            tensor.mul_scalar(1.0 - lr * self.weight_decay as f64)
        } else {
            tensor
        };
        let denom = moments
            .moment_2
            .clone()
            .sqrt()
            .div_scalar(bias_correction_2_sqrt)
            .add_scalar(self.epsilon);
        let numer = match mult {
            Some(mult) => moments.moment_1.clone().mul(mult),
            None => moments.moment_1.clone(),
        };
        let tensor = tensor - numer.div(denom).mul_scalar(step_size);
        (tensor, Some(AdamWState { momentum: moments }))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
