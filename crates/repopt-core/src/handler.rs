//! The model-specific side of a RepOptimizer.

use burn::module::Module;
use burn::tensor::Device;

use crate::csla::UpdateRule;
use crate::error::Result;
use crate::grad_mult::GradMults;

/// The two model-specific rules of a RepOptimizer, for a model type `M`.
///
/// An implementation holds the constant scales (usually found by a hyper-search) and knows which
/// parameters of `M` they belong to.
///
/// * **Rule of Initialization** ([`reinitialize`](Self::reinitialize)): replace each structural
///   kernel of the plain model by the equivalent kernel of the multi-branch block it stands for,
///   e.g. `W = α ⊙ W3 + β ⊙ pad(W1) + γ·I` (see [`csla`](crate::csla)).
/// * **Rule of Iteration** ([`grad_mults`](Self::grad_mults)): the constant Grad Mult for each such
///   kernel, made for an [`UpdateRule`], keyed by the kernel's module path in `M`.
///
/// Training the re-initialised model with a RepOptimizer built from these mults is then
/// equivalent to training the multi-branch model with the plain optimizer.
pub trait RepOptHandler<M: Module> {
    /// What can go wrong: [`RepOptError`](crate::RepOptError) for the generic
    /// [`CslaModel`](crate::CslaModel), an architecture's own error type for its handler.
    type Error: std::error::Error + From<crate::RepOptError>;

    /// Applies the Rule of Initialization to `model`.
    fn reinitialize(&self, model: M) -> Result<M, Self::Error>;

    /// The Grad Mults of `model` for `rule`, stored on `device`.
    fn grad_mults(
        &self,
        model: &M,
        rule: UpdateRule,
        device: &Device,
    ) -> Result<GradMults, Self::Error>;
}
