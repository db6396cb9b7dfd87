//! Which RepOpt-GhostNet parameters get weight decay.

use repopt_core::ParamInfo;

/// The official `set_weight_decay` for a RepOpt-GhostNet: decay on every parameter that is not
/// 1-D and not a bias (conv kernels, cheap kernels, `classifier.weight`); none on BN weights and
/// biases, `conv_head.bias`, or the scales `φ`, `ψ`. (The official exception for names
/// containing `identity.weight` never applies: GhostNet has none.) Use it for the `Target` model
/// with `RepSgdConfig::init_with_decay`.
pub fn decays_weight(param: &ParamInfo) -> bool {
    param.shape.len() != 1 && !param.path.ends_with(".bias")
}

/// The groups under which a `Csla` model is *equivalent* to the `Target` model trained with
/// [`decays_weight`]: the same, plus decay on `φ` (`…fusion_scale.weight`).
///
/// The RepOptimizer decays the whole target kernel `W_eq = ψ ⊙ W + φ ⊙ I`, identity part
/// included: `W_eq ← W_eq − η·λ·W_eq` needs `W ← W − η·λ·W` **and** `φ ← φ − η·λ·φ`. The
/// official grouping leaves `φ` undecayed (it is 1-D), so a CSLA trained with it drifts by
/// `η·λ·φ` at the kernel centre every step.
pub fn decays_weight_equivalent_csla(param: &ParamInfo) -> bool {
    decays_weight(param) || param.path.ends_with(".fusion_scale.weight")
}
