//! The backward pass of [`PatchConvBackend::patch_conv`] under automatic differentiation:
//! `∂X` and `∂W` from one backward kernel of the inner backend, the forward's input and kernel kept
//! (not its patches).

use burn::backend::Backend;
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;

use super::{ConvGeometry, PatchConvBackend, Wanted};

#[derive(Debug)]
struct PatchConvBackward;

impl<B: Backend + PatchConvBackend> Backward<B, 2> for PatchConvBackward {
    /// The input, the kernel and the shapes.
    type State = (FloatTensor<B>, FloatTensor<B>, ConvGeometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let wanted = Wanted {
            weight: weight_node.is_some(),
            input: x_node.is_some(),
        };
        let (dw, dx) = B::patch_conv_backward(x, weight, grad, geometry, wanted);
        if let (Some(node), Some(dw)) = (weight_node, dw) {
            grads.register::<B>(node.id, dw);
        }
        if let (Some(node), Some(dx)) = (x_node, dx) {
            grads.register::<B>(node.id, dx);
        }
    }
}

impl<B: Backend + PatchConvBackend, C: CheckpointStrategy> PatchConvBackend for Autodiff<B, C> {
    fn patch_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self> {
        match PatchConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.primitive().clone(), weight.primitive().clone());
                let y = B::patch_conv(x.clone(), weight.clone(), geometry);
                prep.finish((x, weight, geometry), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::patch_conv(
                x.into_primitive(),
                weight.into_primitive(),
                geometry,
            )),
        }
    }

    /// Not differentiable itself (no second derivatives): constants of the graph.
    fn patch_conv_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
        wanted: Wanted,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let (dw, dx) = B::patch_conv_backward(
            x.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
            geometry,
            wanted,
        );
        (
            dw.map(FloatTensor::<Self>::new),
            dx.map(FloatTensor::<Self>::new),
        )
    }
}
