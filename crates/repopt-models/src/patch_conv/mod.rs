//! The im2col convolution as one operation of its own on the `flex` CPU backend, with its own
//! backward pass: patches gathered tile by tile and never kept, each matrix product oriented
//! for its shape, and col2im without a scatter kernel (see [`kernels`]); output maps of a few
//! pixels as sums of products over the taps that read the input, with no patches (see
//! [`small_map`]).
//!
//! It is a Burn backend extension ([`PatchConvBackend`]) implemented for `Flex` and for
//! `Autodiff<Flex>`; [`crate::conv2d_patches_cnhw`] calls it where it applies (`flex`, `f32`) and
//! otherwise computes the same function through tensor operations
//! ([`crate::conv2d_im2col_cnhw`]).

mod autodiff;
mod kernels;
mod matrix;
mod small_map;
mod taps;
mod transpose;

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData};

pub use crate::ConvGeometry;
pub use kernels::Wanted;

/// A convolution on channel-major activations: `x` `[C_in, N, H, W]`, `weight`
/// `[C_out, C_in, k_h, k_w]`, output `[C_out, N, H_out, W_out]` (see [`ConvGeometry`]).
#[backend_extension(Flex, Autodiff)]
pub trait PatchConvBackend: Backend {
    /// The convolution's output.
    fn patch_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;

    /// `(∂W, ∂X)`, each where `wanted`, from the input `x`, the kernel and the output gradient
    /// `grad`: `∂W` `[C_out, C_in, k_h, k_w]`, `∂X` `[C_in, N, H, W]`.
    fn patch_conv_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
        wanted: Wanted,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>);
}

impl PatchConvBackend for Flex {
    fn patch_conv(x: FlexTensor, weight: FlexTensor, geometry: ConvGeometry) -> FlexTensor {
        let (x, weight) = (values(&x), values(&weight));
        let y = match small_map::applies(&geometry) {
            true => small_map::forward(&x, &weight, &geometry),
            false => kernels::forward(&x, &weight, &geometry),
        };
        tensor(y, geometry.output_shape())
    }

    fn patch_conv_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
        wanted: Wanted,
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let (x, weight, grad) = (values(&x), values(&weight), values(&grad));
        let backward = match small_map::applies(&geometry) {
            true => small_map::backward,
            false => kernels::backward,
        };
        let (dw, dx) = backward(&x, &weight, &grad, &geometry, wanted);
        let [channels_in, _, _, _] = geometry.input;
        let [kernel_h, kernel_w] = geometry.kernel;
        let kernel = [geometry.channels_out, channels_in, kernel_h, kernel_w];
        (
            dw.map(|dw| tensor(dw, kernel)),
            dx.map(|dx| tensor(dx, geometry.input)),
        )
    }
}

/// A tensor's `f32` values in order, copied only when it is not contiguous.
pub(crate) fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => values.into(),
        None => tensor
            .to_contiguous()
            .as_slice::<f32>()
            .expect("a contiguous f32 tensor")
            .to_vec()
            .into(),
    }
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether [`conv2d_patches_cnhw`] runs the operation of its own for tensors on `device` in
/// `dtype` (the `flex` backend, `f32`), rather than tensor operations.
pub fn runs_patch_conv(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32
        && matches!(
            device.clone().without_autodiff().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// [`crate::conv2d_im2col_cnhw`] without bias (see [`crate::conv2d_patches_cnhw`]), computed by [`PatchConvBackend`] where
/// [`runs_patch_conv`] says so, and through tensor operations elsewhere.
pub(crate) fn conv2d_patches_cnhw(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 4],
) -> Tensor<4> {
    if !runs_patch_conv(&x.device(), x.dtype()) || weight.dtype() != x.dtype() {
        return crate::conv2d_im2col_cnhw(x, weight, None, stride, padding);
    }
    let geometry = ConvGeometry::new(x.dims(), weight.dims(), stride, padding)
        .unwrap_or_else(|e| panic!("convolution: {e}"));
    Tensor::from_dispatch(<Dispatch as PatchConvBackend>::patch_conv(
        x.into_dispatch(),
        weight.into_dispatch(),
        geometry,
    ))
}
