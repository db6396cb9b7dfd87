//! The plain layers around the ghost modules: convolutions, `ConvBnAct`, squeeze-and-excitation,
//! and global average pooling.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{relu, relu6};
use burn::tensor::{Device, Tensor};

use crate::norm::BatchNorm2d;

/// Shape of a 2-D convolution, as the official code builds them: padding `⌊k/2⌋` on every side
/// (the same as `(k−1)/2` for the odd kernels used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvShape {
    /// A 1×1 conv, stride 1, one group, no bias.
    pub fn pointwise(input: usize, output: usize) -> Self {
        Self {
            channels: [input, output],
            kernel: 1,
            stride: 1,
            groups: 1,
            bias: false,
        }
    }

    /// A depthwise `k×k` conv on `channels` channels (groups = channels), no bias.
    pub fn depthwise(channels: usize, kernel: usize, stride: usize) -> Self {
        Self {
            channels: [channels, channels],
            kernel,
            stride,
            groups: channels,
            bias: false,
        }
    }

    /// The same shape with a bias.
    pub fn with_bias(self) -> Self {
        Self { bias: true, ..self }
    }

    /// A freshly initialised conv of this shape (Burn's default initialisation).
    pub fn init(self, device: &Device) -> Conv2d {
        let pad = self.kernel / 2;
        Conv2dConfig::new(self.channels, [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(self.groups)
            .with_bias(self.bias)
            .init(device)
    }
}

/// Global average pooling `[N, C, H, W] → [N, C, 1, 1]` (PyTorch's `AdaptiveAvgPool2d(1)`).
pub(crate) fn global_avg_pool(x: Tensor<4>) -> Tensor<4> {
    x.mean_dim(3).mean_dim(2)
}

/// `hard_sigmoid(z) = relu6(z + 3) / 6`.
pub(crate) fn hard_sigmoid(z: Tensor<4>) -> Tensor<4> {
    relu6(z.add_scalar(3.0)).div_scalar(6.0)
}

/// The official `ConvBnAct`: `relu(bn1(conv(x)))` (the final 1×1 layer, `blocks.{n}.0`).
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution (no bias).
    pub conv: Conv2d,
    /// Its BN.
    pub bn1: BatchNorm2d,
}

impl ConvBnAct {
    /// A 1×1 `input → output` layer.
    pub fn new(input: usize, output: usize, device: &Device) -> Self {
        Self {
            conv: ConvShape::pointwise(input, output).init(device),
            bn1: BatchNorm2d::new(output, device),
        }
    }

    /// `relu(bn1(conv(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn1.forward(self.conv.forward(x)))
    }
}

/// The official `SqueezeExcite`: with `p = avgpool(x)` `[N, C, 1, 1]`,
///
/// `y = x ⊙ hard_sigmoid(conv_expand(relu(conv_reduce(p))))`,
///
/// `conv_reduce` `C → r` and `conv_expand` `r → C` being 1×1 convs with bias.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// `C → r`, with bias.
    pub conv_reduce: Conv2d,
    /// `r → C`, with bias.
    pub conv_expand: Conv2d,
}

impl SqueezeExcite {
    /// An SE block on `channels` channels, reduced to `reduced`.
    pub fn new(channels: usize, reduced: usize, device: &Device) -> Self {
        Self {
            conv_reduce: ConvShape::pointwise(channels, reduced)
                .with_bias()
                .init(device),
            conv_expand: ConvShape::pointwise(reduced, channels)
                .with_bias()
                .init(device),
        }
    }

    /// `x` gated per channel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let squeezed = global_avg_pool(x.clone());
        let gate = self
            .conv_expand
            .forward(relu(self.conv_reduce.forward(squeezed)));
        x * hard_sigmoid(gate)
    }
}
