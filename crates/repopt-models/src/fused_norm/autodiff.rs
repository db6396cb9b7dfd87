//! The backward pass of [`FusedNormBackend::fused_norm`] under automatic differentiation: `∂x`,
//! `∂γ` and `∂β` from one backward kernel of the inner backend, the forward's input, `γ` and
//! statistics kept. The statistics it returns are constants of the graph (they feed the running
//! statistics only), as in Burn's own `batch_norm_train`.

use burn::backend::Backend;
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;

use super::FusedNormBackend;

#[derive(Debug)]
struct FusedNormBackward;

impl<B: Backend + FusedNormBackend> Backward<B, 3> for FusedNormBackward {
    /// The input, `γ`, the mean and variance, and `ε`.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, variance, epsilon) = ops.state;
        let (dx, dgamma, dbeta) = B::fused_norm_backward(x, gamma, mean, variance, grad, epsilon);
        for (node, grad) in [(x_node, dx), (gamma_node, dgamma), (beta_node, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

type Triple<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

impl<B: Backend + FusedNormBackend, C: CheckpointStrategy> FusedNormBackend for Autodiff<B, C> {
    fn fused_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> Triple<Self> {
        let prepared = FusedNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (x.primitive(), gamma.primitive(), beta.primitive());
        let (y, mean, variance) = B::fused_norm(x.clone(), gamma.clone(), beta.clone(), epsilon);
        let statistics = (mean.clone(), variance.clone());
        let y = match prepared {
            OpsKind::Tracked(prep) => {
                let state = (
                    x.clone(),
                    gamma.clone(),
                    statistics.0,
                    statistics.1,
                    epsilon,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (
            y,
            FloatTensor::<Self>::new(mean),
            FloatTensor::<Self>::new(variance),
        )
    }

    /// Not differentiable itself (no second derivatives): constants of the graph.
    fn fused_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> Triple<Self> {
        let (dx, dgamma, dbeta) = B::fused_norm_backward(
            x.into_primitive(),
            gamma.into_primitive(),
            mean.into_primitive(),
            variance.into_primitive(),
            grad.into_primitive(),
            epsilon,
        );
        (
            FloatTensor::<Self>::new(dx),
            FloatTensor::<Self>::new(dgamma),
            FloatTensor::<Self>::new(dbeta),
        )
    }
}
