//! Batch normalisation's training pass as one operation of its own on the `flex` CPU backend,
//! with its own backward pass: the statistics, the output and the three gradients each in one
//! or two passes over the activations (see [`kernels`]), where Burn's default composes about
//! fifteen tensor operations, each a pass of its own with a buffer of its own.
//!
//! It is a Burn backend extension ([`FusedNormBackend`]) implemented for `Flex` and for
//! `Autodiff<Flex>`; [`batch_norm_train`] calls it where it applies (`flex`, `f32`) and otherwise
//! Burn's `batch_norm_train`, which computes the same function.

mod autodiff;
mod kernels;

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::tensor::module::BatchNormTrainOutput;
use burn::tensor::{Tensor, TensorData};

pub use kernels::NormShape;

use crate::patch_conv::{runs_patch_conv, values};

/// Batch normalisation in training over every axis of `x` but axis 1 (the channels).
#[backend_extension(Flex, Autodiff)]
pub trait FusedNormBackend: Backend {
    /// `(y, μ, σ²)`: `y = γ·(x − μ)/√(σ² + ε) + β` with the batch's mean `μ` and biased
    /// variance `σ²` per channel (`[C]` each).
    fn fused_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `(∂x, ∂γ, ∂β)` of [`FusedNormBackend::fused_norm`] from its input, `γ`, the statistics
    /// it returned and the output gradient `grad`.
    fn fused_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedNormBackend for Flex {
    fn fused_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dims = x.layout().shape().to_vec();
        let shape = NormShape::of(&dims);
        let (x, gamma, beta) = (values(&x), values(&gamma), values(&beta));
        let result = kernels::forward(&x, &gamma, &beta, shape, epsilon);
        (
            tensor(result.output, dims),
            channels(result.mean),
            channels(result.variance),
        )
    }

    fn fused_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dims = x.layout().shape().to_vec();
        let shape = NormShape::of(&dims);
        let (x, gamma, grad) = (values(&x), values(&gamma), values(&grad));
        let (mean, variance) = (values(&mean), values(&variance));
        let grads = kernels::backward(&x, &gamma, &mean, &variance, &grad, shape, epsilon);
        (
            tensor(grads.x, dims),
            channels(grads.gamma),
            channels(grads.beta),
        )
    }
}

/// Burn's `batch_norm_train`, computed by [`FusedNormBackend`] where it applies (`flex`, `f32`
/// for all three tensors) and by Burn elsewhere.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<D> {
    let dtype = x.dtype();
    let fused =
        runs_patch_conv(&x.device(), dtype) && gamma.dtype() == dtype && beta.dtype() == dtype;
    if !fused {
        return burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
    }
    let (output, mean, variance) = <Dispatch as FusedNormBackend>::fused_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    BatchNormTrainOutput {
        output: Tensor::from_dispatch(output),
        mean: Tensor::from_dispatch(mean),
        variance: Tensor::from_dispatch(variance),
    }
}

fn tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

fn channels(values: Vec<f32>) -> FlexTensor {
    let len = values.len();
    FlexTensor::from_data(TensorData::new(values, [len]))
}
