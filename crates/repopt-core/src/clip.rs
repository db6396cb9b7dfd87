//! Gradient clipping by the global norm of all gradients together, as PyTorch's
//! `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`.
//!
//! With gradients `g₁ … gₙ` of every parameter of a module:
//!
//! ```text
//! ‖g‖ = sqrt(Σᵢ ‖gᵢ‖²)                 (2-norm over all values of all gradients)
//! c   = max_norm / (‖g‖ + 1e-6)
//! gᵢ ← c · gᵢ   for every i, if c < 1  (otherwise unchanged)
//! ```
//!
//! Burn's own [`GradientClippingConfig::Norm`](burn::optim::grad_clipping::GradientClippingConfig)
//! clips each tensor by its own norm, which changes the direction of the whole update; the
//! official hyper-search clips the global norm. Never combine it with Grad Mults: a clipped step
//! of the plain model is no longer the clipped step of its multi-branch counterpart.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::error::{RepOptError, Result};

/// The `eps` PyTorch adds to the norm before dividing.
const EPS: f64 = 1e-6;

/// Clips the gradients of `module` in `grads` to a global 2-norm of at most `max_norm` and returns
/// the norm before clipping. Parameters without a gradient are skipped; a non-finite norm leaves
/// the gradients unchanged (the caller's non-finite guard decides what to do).
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Result<f64> {
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(RepOptError::InvalidConfig(format!(
            "the clipping norm must be a positive number, got {max_norm}"
        )));
    }
    let mut squares = SumOfSquares { grads, total: 0.0 };
    module.visit(&mut squares);
    let norm = squares.total.sqrt();
    let coef = max_norm / (norm + EPS);
    if norm.is_finite() && coef < 1.0 {
        module.visit(&mut Scale { grads, coef });
    }
    Ok(norm)
}

/// Adds up `‖gᵢ‖²` over the module's parameters, in `f64`.
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let square: f64 = grad.clone().mul(grad).sum().into_scalar::<f64>();
            self.total += square;
        }
    }
}

/// Multiplies every gradient of the module by `coef`.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    coef: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.coef));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Two {
        a: Linear,
        b: Linear,
    }

    fn model(device: &Device) -> Two {
        Two {
            a: LinearConfig::new(2, 2).init(device),
            b: LinearConfig::new(2, 1).with_bias(false).init(device),
        }
    }

    fn values<const D: usize>(grads: &GradientsParams, param: &Param<Tensor<D>>) -> Vec<f32> {
        grads
            .get::<D>(param.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// Gradients with a known global norm: a.weight all 1 (4 values), a.bias all 2 (2 values),
    /// b.weight (3, 4): ‖g‖² = 4 + 8 + 25 = 37.
    fn known_grads(model: &Two, device: &Device) -> GradientsParams {
        let mut grads = GradientsParams::new();
        grads.register(model.a.weight.id, Tensor::<2>::ones([2, 2], device));
        let bias = model.a.bias.as_ref().unwrap();
        grads.register(bias.id, Tensor::<1>::full([2], 2.0, device));
        let b = TensorData::new(vec![3.0f32, 4.0], [2, 1]);
        grads.register(model.b.weight.id, Tensor::<2>::from_data(b, device));
        grads
    }

    /// The global norm is that of all gradients together, and every gradient is scaled by the
    /// same `max_norm / (‖g‖ + 1e-6)`, as `torch.nn.utils.clip_grad_norm_` does.
    #[test]
    fn clips_all_gradients_by_one_coefficient() {
        let device = Device::flex();
        let model = model(&device);
        let mut grads = known_grads(&model, &device);
        let norm = clip_global_norm(&model, &mut grads, 1.0).unwrap();
        assert!((norm - 37f64.sqrt()).abs() < 1e-6, "{norm}");
        let coef = (1.0 / (37f64.sqrt() + 1e-6)) as f32;
        let close = |got: Vec<f32>, want: &[f32]| {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert!((g - w * coef).abs() < 1e-7, "{g} vs {}", w * coef);
            }
        };
        close(values(&grads, &model.a.weight), &[1.0; 4]);
        close(values(&grads, model.a.bias.as_ref().unwrap()), &[2.0; 2]);
        close(values(&grads, &model.b.weight), &[3.0, 4.0]);
        // The clipped gradients have the global norm max_norm (up to the eps).
        let mut again = grads;
        let clipped = clip_global_norm(&model, &mut again, 1e9).unwrap();
        assert!((clipped - 1.0).abs() < 1e-5, "{clipped}");
    }

    /// Below the threshold nothing changes; a per-tensor clip would have changed b.weight.
    #[test]
    fn leaves_small_gradients_alone() {
        let device = Device::flex();
        let model = model(&device);
        let mut grads = known_grads(&model, &device);
        let norm = clip_global_norm(&model, &mut grads, 7.0).unwrap();
        assert!(norm < 7.0);
        assert_eq!(values(&grads, &model.b.weight), vec![3.0, 4.0]);
        assert_eq!(values(&grads, &model.a.weight), vec![1.0; 4]);
    }

    #[test]
    fn refuses_a_bad_threshold() {
        let device = Device::flex();
        let model = model(&device);
        let mut grads = known_grads(&model, &device);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(clip_global_norm(&model, &mut grads, bad).is_err(), "{bad}");
        }
    }
}
