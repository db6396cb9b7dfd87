#![allow(dead_code)]

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor, TensorData};
use repopt_core::tensor_io::TensorFile;

pub fn golden(name: &str) -> (TensorFile, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(name);
    (TensorFile::read(&path).expect("golden fixture"), path)
}

pub fn device() -> Device {
    Device::flex().autodiff()
}

/// `sum|a-b| / sum|b|`, the measure of the paper's `check_equivalency.py`.
pub fn rel_diff(a: &TensorData, b: &TensorData) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.try_to_vec::<f32>().unwrap();
    let b = b.try_to_vec::<f32>().unwrap();
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum();
    let den: f64 = b.iter().map(|y| y.abs() as f64).sum();
    num / den
}

/// Rows `i` of a `[N, ...]` tensor.
pub fn row<const D: usize, const D1: usize>(t: &Tensor<D1>, i: usize) -> Tensor<D> {
    let dims = t.dims();
    let sub: [usize; D] = core::array::from_fn(|k| dims[k + 1]);
    t.clone().narrow(0, i, 1).reshape(sub)
}

pub fn conv(in_ch: usize, out_ch: usize, k: usize, device: &Device) -> Conv2d {
    let pad = k / 2;
    Conv2dConfig::new([in_ch, out_ch], [k, k])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// A single plain `k×k` conv: the model a RepOptimizer trains.
#[derive(Module, Debug)]
pub struct Plain {
    pub conv: Conv2d,
}

impl Plain {
    pub fn from_kernel(kernel: TensorData, device: &Device) -> Self {
        let dims = kernel.shape().to_vec();
        let mut conv = conv(dims[1], dims[0], dims[2], device);
        conv.weight = Param::from_data(kernel, device);
        Self { conv }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    pub fn kernel(&self) -> TensorData {
        self.conv.weight.val().into_data()
    }
}

pub fn mse(out: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    (out - y).powi_scalar(2).mean()
}
