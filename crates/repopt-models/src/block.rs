//! One RepOpt-VGG block in any [`BlockMode`].

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};

use crate::norm::BatchNorm2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::config::{BlockMode, BlockSpec};
use crate::conv::{ConvImpl, Layout};

/// A per-channel scale (the official `ScaleLayer` without bias): `y = x ⊙ weight`.
#[derive(Module, Debug)]
pub struct ScaleLayer {
    /// One scale per channel.
    pub weight: Param<Tensor<1>>,
}

impl ScaleLayer {
    /// The scale shaped `[1, C, 1, 1]` for broadcasting over NCHW.
    pub fn per_channel(&self) -> Tensor<4> {
        let channels = self.weight.dims()[0] as i32;
        self.weight.val().reshape([1, channels, 1, 1])
    }

    /// The scale values.
    pub fn values(&self) -> Vec<f32> {
        self.weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("scales are f32")
    }
}

/// A RepOpt-VGG block. Which fields are present depends on the mode; field names are the
/// official PyTorch module names, so module paths (`stage1.0.conv.weight`) match its state dicts.
#[derive(Module, Debug)]
pub struct RepOptVggBlock {
    /// The 3×3 conv (`Target`, `HyperSearch`, `Csla`, and with a bias in `Deploy`).
    pub conv: Option<Conv2d>,
    /// The 3×3 conv of a `RepVgg` block.
    pub conv_3x3: Option<Conv2d>,
    /// The 1×1 conv (`HyperSearch`, `Csla`, `RepVgg`).
    pub conv_1x1: Option<Conv2d>,
    /// Scale `s` of the 3×3 branch (`HyperSearch`, `Csla`).
    pub scale_conv: Option<ScaleLayer>,
    /// Scale `t` of the 1×1 branch (`HyperSearch`, `Csla`).
    pub scale_1x1: Option<ScaleLayer>,
    /// Scale `γ` of the identity branch (`HyperSearch`, `Csla`; identity blocks only).
    pub scale_identity: Option<ScaleLayer>,
    /// The BN after the sum (`Target`, `HyperSearch`, `Csla`).
    pub bn: Option<BatchNorm2d>,
    /// BN of the 3×3 branch (`RepVgg`).
    pub bn_3x3: Option<BatchNorm2d>,
    /// BN of the 1×1 branch (`RepVgg`).
    pub bn_1x1: Option<BatchNorm2d>,
    /// BN of the identity branch (`RepVgg`; identity blocks only).
    pub bn_identity: Option<BatchNorm2d>,
    /// The block's mode.
    #[module(skip)]
    pub mode: BlockMode,
    /// The block's place and shape in the architecture.
    #[module(skip)]
    pub spec: BlockSpec,
    /// How the block's convolutions are computed.
    #[module(skip)]
    pub conv_impl: ConvImpl,
}

pub(crate) fn conv(spec: &BlockSpec, kernel: usize, bias: bool, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([spec.in_channels, spec.out_channels], [kernel, kernel])
        .with_stride([spec.stride, spec.stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}

fn scale(channels: usize, value: f32, trainable: bool, device: &Device) -> ScaleLayer {
    let weight = Param::from_tensor(Tensor::full([channels], value, device));
    ScaleLayer {
        weight: if trainable {
            weight
        } else {
            weight.set_require_grad(false)
        },
    }
}

impl RepOptVggBlock {
    /// A freshly initialised block. `scale_init` is the initial value of `s` and `t`
    /// (`HyperSearch`/`Csla`); `γ` starts at 1.
    pub fn new(spec: BlockSpec, mode: BlockMode, scale_init: f32, device: &Device) -> Self {
        let out = spec.out_channels;
        let identity = spec.has_identity();
        let bn = || Some(BatchNorm2d::new(out, device));
        let mut block = Self {
            conv: None,
            conv_3x3: None,
            conv_1x1: None,
            scale_conv: None,
            scale_1x1: None,
            scale_identity: None,
            bn: None,
            bn_3x3: None,
            bn_1x1: None,
            bn_identity: None,
            mode,
            spec,
            conv_impl: ConvImpl::default(),
        };
        let spec = &block.spec;
        match mode {
            BlockMode::Target => {
                block.conv = Some(conv(spec, 3, false, device));
                block.bn = bn();
            }
            BlockMode::Deploy => block.conv = Some(conv(spec, 3, true, device)),
            BlockMode::HyperSearch | BlockMode::Csla => {
                let trainable = mode == BlockMode::HyperSearch;
                block.conv = Some(conv(spec, 3, false, device));
                block.conv_1x1 = Some(conv(spec, 1, false, device));
                block.scale_conv = Some(scale(out, scale_init, trainable, device));
                block.scale_1x1 = Some(scale(out, scale_init, trainable, device));
                block.scale_identity = identity.then(|| scale(out, 1.0, true, device));
                block.bn = bn();
            }
            BlockMode::RepVgg => {
                block.conv_3x3 = Some(conv(spec, 3, false, device));
                block.conv_1x1 = Some(conv(spec, 1, false, device));
                block.bn_3x3 = bn();
                block.bn_1x1 = bn();
                block.bn_identity = if identity { bn() } else { None };
            }
        }
        block
    }

    /// The block's output.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let layout = self.layout();
        layout.to_nchw(self.forward_laid_out(layout.from_nchw(x)))
    }

    /// The layout the block computes in: its convolutions' ([`ConvImpl::layout`]).
    pub fn layout(&self) -> Layout {
        self.conv_impl.layout()
    }

    /// The block's output for `x` given and returned in [`RepOptVggBlock::layout`].
    pub fn forward_laid_out(&self, x: Tensor<4>) -> Tensor<4> {
        let layout = self.layout();
        let conv = |conv: &Conv2d, x: Tensor<4>| self.conv_impl.forward_laid_out(conv, x);
        let bn = |bn: &BatchNorm2d, x: Tensor<4>| bn.forward_laid_out(x, layout);
        let scale = |s: &ScaleLayer| layout.per_channel(s.weight.val());
        let out = match self.mode {
            BlockMode::Target => bn(self.bn(), conv(self.conv(), x)),
            BlockMode::Deploy => conv(self.conv(), x),
            BlockMode::HyperSearch | BlockMode::Csla => {
                let s = self.scale_conv.as_ref().expect("CSLA block has scale_conv");
                let t = self.scale_1x1.as_ref().expect("CSLA block has scale_1x1");
                let one = self.conv_1x1.as_ref().expect("CSLA block has conv_1x1");
                let mut out =
                    conv(self.conv(), x.clone()) * scale(s) + conv(one, x.clone()) * scale(t);
                if let Some(gamma) = &self.scale_identity {
                    out = out + x * scale(gamma);
                }
                bn(self.bn(), out)
            }
            BlockMode::RepVgg => {
                let three = self.conv_3x3.as_ref().expect("RepVGG block has conv_3x3");
                let one = self.conv_1x1.as_ref().expect("RepVGG block has conv_1x1");
                let bn_3x3 = self.bn_3x3.as_ref().expect("RepVGG block has bn_3x3");
                let bn_1x1 = self.bn_1x1.as_ref().expect("RepVGG block has bn_1x1");
                let mut out = bn(bn_3x3, conv(three, x.clone())) + bn(bn_1x1, conv(one, x.clone()));
                if let Some(identity) = &self.bn_identity {
                    out = out + bn(identity, x);
                }
                out
            }
        };
        relu(out)
    }

    fn conv(&self) -> &Conv2d {
        self.conv.as_ref().expect("block has a 3x3 conv")
    }

    fn bn(&self) -> &BatchNorm2d {
        self.bn.as_ref().expect("block has a BN")
    }
}
