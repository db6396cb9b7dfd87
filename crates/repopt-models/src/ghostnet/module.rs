//! One RepOpt-GhostNet ghost module (`RepOptGhostModule`) in any [`GhostMode`].

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::GhostMode;
use super::either::Either;
use super::layers::ConvShape;
use super::spec::GhostModuleSpec;
use crate::block::ScaleLayer;
use crate::norm::BatchNorm2d;

/// What follows the cheap conv (`cheap_operation.1`): the scale `ψ` (`HyperSearch`, `Csla`) or
/// the cheap branch's BN (`Rep`).
pub type CheapFollower = Either<ScaleLayer, BatchNorm2d>;

/// A RepGhost module as the official RepOpt-GhostNet defines it. With
/// `x1 = relu?(BN(conv1×1(x)))` (`primary_conv`) and `c = dwconv3×3(x1)` (`cheap_operation.0`,
/// groups = C, stride 1, padding 1):
///
/// ```text
/// Target:     y = final_bn(c)
/// HyperSearch, Csla:
///             y = final_bn(ψ ⊙ c + φ ⊙ x1)      ψ = cheap_operation.1.weight, φ = fusion_scale.weight
/// Rep:        y = bn_c(c) + fusion_bn(x1)       bn_c = cheap_operation.1
/// Deploy:     y = c + b                          (the cheap conv has a bias)
/// out = relu(y) for ghost1 modules, y for ghost2 modules
/// ```
///
/// The identity branch starts at `x1`, after the primary ReLU; the primary and cheap branches
/// are added, not concatenated. Field names are the official module names, so parameter paths
/// (`primary_conv.0.weight`, `cheap_operation.1.running_var`, `fusion_scale.weight`) match its
/// state dicts.
#[derive(Module, Debug)]
pub struct RepOptGhostModule {
    /// `primary_conv.0` (1×1 conv, no bias) and `primary_conv.1` (BN).
    pub primary_conv: (Conv2d, BatchNorm2d),
    /// `cheap_operation.0` (depthwise 3×3 conv; with a bias in `Deploy`) and, except in
    /// `Target` and `Deploy`, `cheap_operation.1`.
    pub cheap_operation: (Conv2d, Option<CheapFollower>),
    /// `φ`, the identity branch's scale (`HyperSearch`, `Csla`).
    pub fusion_scale: Option<ScaleLayer>,
    /// The identity branch's BN (`Rep`).
    pub fusion_bn: Option<BatchNorm2d>,
    /// The BN after the sum (`Target`, `HyperSearch`, `Csla`).
    pub final_bn: Option<BatchNorm2d>,
    /// The module's mode.
    #[module(skip)]
    pub mode: GhostMode,
    /// The module's place and shape in the architecture.
    #[module(skip)]
    pub spec: GhostModuleSpec,
}

/// A per-channel scale layer of `channels` values `value`, trainable or constant.
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

impl RepOptGhostModule {
    /// A freshly initialised module. In `HyperSearch`, `φ = 1` and
    /// `ψ = √(2/(n+1))` ([`GhostModuleSpec::initial_cheap_scale`]); in `Csla` both start at 1 and
    /// `ψ` does not train (load the constant scales afterwards).
    pub fn new(spec: GhostModuleSpec, mode: GhostMode, device: &Device) -> Self {
        let c = spec.channels;
        let bn = || BatchNorm2d::new(c, device);
        let primary = ConvShape::pointwise(spec.in_channels, c).init(device);
        let cheap_conv = ConvShape {
            channels: [c, c],
            kernel: spec.kernel_size,
            stride: 1,
            groups: spec.groups,
            bias: mode == GhostMode::Deploy,
        }
        .init(device);
        let (follower, fusion_scale, fusion_bn, final_bn) = match mode {
            GhostMode::Target => (None, None, None, Some(bn())),
            GhostMode::HyperSearch | GhostMode::Csla => {
                let hs = mode == GhostMode::HyperSearch;
                let psi_init = if hs { spec.initial_cheap_scale() } else { 1.0 };
                let psi = scale(c, psi_init, hs, device);
                let phi = scale(c, 1.0, true, device);
                (Some(Either::Left(psi)), Some(phi), None, Some(bn()))
            }
            GhostMode::Rep => (Some(Either::Right(bn())), None, Some(bn()), None),
            GhostMode::Deploy => (None, None, None, None),
        };
        Self {
            primary_conv: (primary, bn()),
            cheap_operation: (cheap_conv, follower),
            fusion_scale,
            fusion_bn,
            final_bn,
            mode,
            spec,
        }
    }

    /// `x1 = relu?(BN(conv1×1(x)))`: the primary branch, input of the cheap conv and of the
    /// identity branch.
    pub fn primary(&self, x: Tensor<4>) -> Tensor<4> {
        let (conv, bn) = &self.primary_conv;
        let x1 = bn.forward(conv.forward(x));
        if self.spec.relu { relu(x1) } else { x1 }
    }

    /// The module's output (see the type's documentation). Which terms are present follows the
    /// fields, as the official `forward` follows its attributes.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x1 = self.primary(x);
        let (cheap_conv, follower) = &self.cheap_operation;
        let mut y = cheap_conv.forward(x1.clone());
        match follower {
            Some(Either::Left(psi)) => y = y * psi.per_channel(),
            Some(Either::Right(bn)) => y = bn.forward(y),
            None => {}
        }
        if let Some(bn) = &self.fusion_bn {
            y = y + bn.forward(x1);
        } else if let Some(phi) = &self.fusion_scale {
            y = y + x1 * phi.per_channel();
        }
        if let Some(bn) = &self.final_bn {
            y = bn.forward(y);
        }
        if self.spec.relu { relu(y) } else { y }
    }

    /// `(φ, ψ)`: the identity and cheap-branch scales of a `HyperSearch` or `Csla` module (the
    /// official handler's `scales[i]`); `None` in other modes.
    pub fn scales(&self) -> Option<(Tensor<1>, Tensor<1>)> {
        let phi = self.fusion_scale.as_ref()?;
        let psi = self.cheap_operation.1.as_ref()?.left()?;
        Some((phi.weight.val(), psi.weight.val()))
    }

    /// The cheap (depthwise) conv `cheap_operation.0`.
    pub fn cheap_conv(&self) -> &Conv2d {
        &self.cheap_operation.0
    }
}
