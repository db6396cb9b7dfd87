//! Burn's SGD rule in one pass over host memory (the kernel [`RepSgd`](crate::RepSgd) runs on
//! CPU backends), bit for bit Burn's `f32` arithmetic.

use burn::optim::LearningRate;
use burn::optim::momentum::MomentumState;
use burn::optim::{RecordState, SgdState, StateSink};
use burn::tensor::{DType, Tensor, TensorData};

use crate::grad_mult::GradMult;
use crate::host_memory::is_host_memory;

/// Burn's SGD rule (L2 decay, momentum with dampening, Nesterov) computed in one pass over host
/// memory, element by element in Burn's order of `f32` operations:
///
/// ```text
/// d = W·λ + g                              (decay)
/// b = g                   on the first step, else
/// b = d·(1 − τ) + b·μ                      (momentum)
/// d = b·μ + d  (Nesterov)  |  d = b
/// W = W − d·η
/// ```
///
/// Scalars are rounded to `f32` first, as Burn's CPU backends do. Burn's [`Sgd`] makes each line
/// a tensor operation with a full pass over memory and a new buffer; here the parameter, its
/// gradient and its momentum are read once and the parameter and momentum written once, in
/// their own buffers when no other tensor shares them. The momentum arrives as a host copy of
/// the state's buffer (Burn's `MomentumState` hands its tensor out only by copy); that copy is
/// updated in place and becomes the new state, so no further buffer is allocated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostSgdRule {
    /// `λ`, if the parameter is decayed.
    pub weight_decay: Option<f32>,
    /// `(μ, τ, nesterov)`, if momentum is on.
    pub momentum: Option<(f64, f64, bool)>,
}

impl HostSgdRule {
    /// Whether this step can run on the host: `f32` parameter and gradient on a CPU backend whose
    /// data is host memory, and momentum recorded only if this rule has momentum (a record of
    /// another configuration goes through Burn's `Sgd`).
    pub fn applies_to<const D: usize>(
        &self,
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&SgdState<D>>,
    ) -> bool {
        let recorded_momentum = state.is_some_and(|s| s.momentum.is_some());
        (self.momentum.is_some() || !recorded_momentum)
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && is_host_memory(&tensor.device())
    }

    /// One step; see the type's documentation for the rule. The gradient is first multiplied by
    /// `mult`, as `g ⊙ M` would. `tensor`, `grad` and `mult` must be `f32`
    /// ([`applies_to`](Self::applies_to), [`GradMult::is_f32`]).
    pub fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        mult: Option<&GradMult>,
        state: Option<SgdState<D>>,
    ) -> (Tensor<D>, Option<SgdState<D>>) {
        let device = tensor.device();
        let mut weights = tensor.into_data();
        let mut grad = grad.into_data();
        if let Some(mult) = mult {
            let grads = grad.as_mut_slice::<f32>().expect("f32 gradient");
            assert!(
                mult.apply_host(grads),
                "an f64 Grad Mult on the f32 host path"
            );
        }
        let shape = weights.shape().to_vec();
        let values = weights.as_mut_slice::<f32>().expect("f32 parameter");
        let grads = grad.as_slice::<f32>().expect("f32 gradient");
        let lr = lr as f32;
        let decay = self.weight_decay.unwrap_or(0.0);
        let decayed = self.weight_decay.is_some();
        let new_velocity = match self.momentum {
            None => {
                match decayed {
                    true => plain_pass::<true>(values, grads, decay, lr),
                    false => plain_pass::<false>(values, grads, decay, lr),
                }
                None
            }
            Some((momentum, dampening, nesterov)) => {
                let momentum = MomentumScalars {
                    mu: momentum as f32,
                    keep: (1.0 - dampening) as f32,
                };
                // The previous momentum (a host copy of the state's buffer) is updated in place
                // and becomes the new state: no second buffer, no zero-filling.
                let (mut velocity, first_step) =
                    match state.and_then(|s| s.momentum).map(velocity_data) {
                        Some(previous) => (previous, false),
                        None => (TensorData::new(vec![0.0f32; values.len()], shape), true),
                    };
                let buffer = velocity.as_mut_slice::<f32>().expect("f32 momentum");
                match (decayed, nesterov) {
                    (true, true) => momentum_pass::<true, true>(
                        values, grads, first_step, buffer, decay, momentum, lr,
                    ),
                    (true, false) => momentum_pass::<true, false>(
                        values, grads, first_step, buffer, decay, momentum, lr,
                    ),
                    (false, true) => momentum_pass::<false, true>(
                        values, grads, first_step, buffer, decay, momentum, lr,
                    ),
                    (false, false) => momentum_pass::<false, false>(
                        values, grads, first_step, buffer, decay, momentum, lr,
                    ),
                }
                Some(MomentumState::new(Tensor::from_data(velocity, &device)))
            }
        };
        (
            Tensor::from_data(weights, &device),
            Some(SgdState::new(new_velocity)),
        )
    }
}

/// `μ` and `1 − τ`, rounded to `f32`.
#[derive(Clone, Copy)]
struct MomentumScalars {
    mu: f32,
    keep: f32,
}

/// `W = W − (W·λ + g)·η` (without decay: `W − g·η`), element by element.
fn plain_pass<const DECAY: bool>(weights: &mut [f32], grads: &[f32], decay: f32, lr: f32) {
    assert_eq!(
        weights.len(),
        grads.len(),
        "parameter and gradient sizes differ"
    );
    for (w, &g) in weights.iter_mut().zip(grads) {
        let d = if DECAY { *w * decay + g } else { g };
        *w -= d * lr;
    }
}

/// The momentum rule of [`HostSgdRule`] over one parameter: replaces the previous momentum in
/// `velocity` by the new one (on the first step its contents are ignored) and updates `weights`.
fn momentum_pass<const DECAY: bool, const NESTEROV: bool>(
    weights: &mut [f32],
    grads: &[f32],
    first_step: bool,
    velocity: &mut [f32],
    decay: f32,
    momentum: MomentumScalars,
    lr: f32,
) {
    let n = weights.len();
    assert!(
        grads.len() == n && velocity.len() == n,
        "buffer sizes differ"
    );
    let MomentumScalars { mu, keep } = momentum;
    let step = |w: &mut f32, d: f32, v: f32| {
        let d = if NESTEROV { v * mu + d } else { v };
        *w -= d * lr;
    };
    if first_step {
        for ((w, &g), v_out) in weights.iter_mut().zip(grads).zip(velocity.iter_mut()) {
            let d = if DECAY { *w * decay + g } else { g };
            *v_out = d;
            step(w, d, d);
        }
    } else {
        for ((w, &g), b) in weights.iter_mut().zip(grads).zip(velocity.iter_mut()) {
            let d = if DECAY { *w * decay + g } else { g };
            let v = d * keep + *b * mu;
            *b = v;
            step(w, d, v);
        }
    }
}

/// The momentum buffer's values as host data (`f32`).
fn velocity_data<const D: usize>(state: MomentumState<D>) -> TensorData {
    let mut sink = StateSink::default();
    state.state_flatten("", &mut sink);
    drop(state);
    let (_, data) = sink
        .tensors
        .pop()
        .expect("a momentum state holds its velocity");
    match data.dtype() {
        DType::F32 => data,
        _ => data.convert::<f32>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{Optimizer, Sgd, SgdConfig};
    use burn::tensor::{Device, Distribution};

    fn burn_sgd(rule: &HostSgdRule) -> Sgd {
        SgdConfig::new()
            .with_weight_decay(
                rule.weight_decay
                    .map(|penalty| WeightDecayConfig { penalty }),
            )
            .with_momentum(
                rule.momentum
                    .map(|(momentum, dampening, nesterov)| MomentumConfig {
                        momentum,
                        dampening,
                        nesterov,
                    }),
            )
            .build()
    }

    fn bits(tensor: Tensor<2>) -> Vec<u32> {
        let values: Vec<f32> = tensor.into_data().try_to_vec().unwrap();
        values.into_iter().map(f32::to_bits).collect()
    }

    /// The one-pass host rule gives Burn's `Sgd` results bit for bit, step after step, with and
    /// without decay, momentum, dampening and Nesterov.
    #[test]
    fn host_rule_equals_burn_sgd_bit_for_bit() {
        let device = Device::flex();
        device.seed(3);
        let rules = [
            (None, None),
            (Some(1e-4), None),
            (None, Some((0.9, 0.0, false))),
            (Some(5e-4), Some((0.9, 0.0, true))),
            (Some(1e-2), Some((0.8, 0.25, false))),
        ];
        let mult = Tensor::<2>::random([37, 19], Distribution::Uniform(-2.0, 2.0), &device);
        let grad_mult = GradMult::from_tensor(mult.clone());
        for ((weight_decay, momentum), with_mult) in
            rules.into_iter().flat_map(|r| [(r, false), (r, true)])
        {
            let rule = HostSgdRule {
                weight_decay,
                momentum,
            };
            let sgd = burn_sgd(&rule);
            let start = Tensor::<2>::random([37, 19], Distribution::Normal(0.0, 1.0), &device);
            let (mut ours, mut theirs) = (start.clone(), start);
            let (mut our_state, mut their_state) = (None, None);
            for step in 0..4 {
                let grad = Tensor::<2>::random([37, 19], Distribution::Normal(0.0, 1.0), &device);
                let lr = 0.05 + 0.01 * step as f64;
                assert!(rule.applies_to(&ours, &grad, our_state.as_ref()));
                let (our_mult, their_grad) = match with_mult {
                    true => (Some(&grad_mult), grad.clone() * mult.clone()),
                    false => (None, grad.clone()),
                };
                (ours, our_state) = rule.step(lr, ours, grad, our_mult, our_state);
                (theirs, their_state) = sgd.step(lr, theirs, their_grad, their_state);
                assert_eq!(
                    bits(ours.clone()),
                    bits(theirs.clone()),
                    "{rule:?}, mult {with_mult}, step {step}"
                );
            }
        }
    }

    /// A kernel mult kept factored gives the step of its dense tensor, bit for bit.
    #[test]
    fn a_factored_mult_steps_as_its_dense_tensor() {
        let device = Device::flex();
        let shape = [6, 4, 3, 3];
        let mut values = Vec::new();
        for c in 0..6 {
            let (a, b) = (0.3 + 0.2 * c as f32, 1.1 - 0.15 * c as f32);
            for d in 0..4 {
                for t in 0..9 {
                    let centre = if t == 4 { b * b } else { 0.0 };
                    let diagonal = if t == 4 && d == c % 4 { 1.0 } else { 0.0 };
                    values.push(a * a + centre + diagonal);
                }
            }
        }
        let dense = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
        let mult = GradMult::from_data(TensorData::new(values, shape), &device);
        assert!(mult.is_factored());
        assert!(!mult.densified().is_factored());
        assert_eq!(mult.densified().to_data(), mult.to_data());
        let rule = HostSgdRule {
            weight_decay: Some(5e-4),
            momentum: Some((0.9, 0.0, true)),
        };
        let sgd = burn_sgd(&rule);
        let start = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (mut ours, mut theirs) = (start.clone(), start);
        let (mut our_state, mut their_state) = (None, None);
        for _ in 0..3 {
            let grad = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let their_grad = grad.clone() * dense.clone();
            (ours, our_state) = rule.step(0.1, ours, grad, Some(&mult), our_state);
            (theirs, their_state) = sgd.step(0.1, theirs, their_grad, their_state);
            let bits = |t: Tensor<4>| -> Vec<u32> {
                let values: Vec<f32> = t.into_data().try_to_vec().unwrap();
                values.into_iter().map(f32::to_bits).collect()
            };
            assert_eq!(bits(ours.clone()), bits(theirs.clone()));
        }
    }
}
