//! The RepOpt-GhostNet bottleneck (`RepOptGhostBottleneck`).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::config::GhostMode;
use super::layers::{ConvShape, SqueezeExcite};
use super::module::RepOptGhostModule;
use super::spec::BottleneckSpec;
use crate::norm::BatchNorm2d;

/// The conv shortcut: `shortcut.0` (depthwise k×k, stride s), `shortcut.1` (BN), `shortcut.2`
/// (1×1 `in → out`), `shortcut.3` (BN).
pub type ConvShortcut = (Conv2d, BatchNorm2d, Conv2d, BatchNorm2d);

/// A RepGhost bottleneck with optional SE:
///
/// ```text
/// h   = ghost1(x)                               in → mid, with ReLU
/// h   = bn_dw(conv_dw(h))                       only if stride > 1 (depthwise k×k, no ReLU)
/// h   = se(h)                                   only with SE
/// out = ghost2(h) + shortcut(x)                 mid → out, no ReLU; no ReLU after the add
/// shortcut(x) = x                               if in == out and stride 1
///             = BN(conv1×1(BN(dwconv k×k, stride s (x))))   otherwise
/// ```
#[derive(Module, Debug)]
pub struct RepOptGhostBottleneck {
    /// Point-wise expansion.
    pub ghost1: RepOptGhostModule,
    /// Depthwise conv (stride > 1 only).
    pub conv_dw: Option<Conv2d>,
    /// Its BN (stride > 1 only).
    pub bn_dw: Option<BatchNorm2d>,
    /// Squeeze-and-excitation (SE ratio > 0 only).
    pub se: Option<SqueezeExcite>,
    /// Point-wise projection.
    pub ghost2: RepOptGhostModule,
    /// The conv shortcut; `None` for the identity shortcut.
    pub shortcut: Option<ConvShortcut>,
    /// The bottleneck's place and shape in the architecture.
    #[module(skip)]
    pub spec: BottleneckSpec,
}

/// A bottleneck's output with those of its two ghost modules.
#[derive(Debug, Clone)]
pub struct BottleneckOutputs {
    /// Output of `ghost1` (after its ReLU).
    pub ghost1: Tensor<4>,
    /// Output of `ghost2`.
    pub ghost2: Tensor<4>,
    /// Output of the bottleneck (after the residual add).
    pub output: Tensor<4>,
}

impl RepOptGhostBottleneck {
    /// A freshly initialised bottleneck whose ghost modules are in `mode`.
    pub fn new(spec: BottleneckSpec, mode: GhostMode, device: &Device) -> Self {
        let (mid, k, s) = (spec.mid_channels, spec.kernel, spec.stride);
        let strided = s > 1;
        let shortcut = (!spec.has_identity_shortcut()).then(|| {
            let (i, o) = (spec.in_channels, spec.out_channels);
            (
                ConvShape::depthwise(i, k, s).init(device),
                BatchNorm2d::new(i, device),
                ConvShape::pointwise(i, o).init(device),
                BatchNorm2d::new(o, device),
            )
        });
        Self {
            ghost1: RepOptGhostModule::new(spec.ghost1(), mode, device),
            conv_dw: strided.then(|| ConvShape::depthwise(mid, k, s).init(device)),
            bn_dw: strided.then(|| BatchNorm2d::new(mid, device)),
            se: spec
                .se_channels
                .map(|reduced| SqueezeExcite::new(mid, reduced, device)),
            ghost2: RepOptGhostModule::new(spec.ghost2(), mode, device),
            shortcut,
            spec,
        }
    }

    /// The bottleneck's output.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_parts(x).output
    }

    /// The bottleneck's output with those of its ghost modules.
    pub fn forward_parts(&self, x: Tensor<4>) -> BottleneckOutputs {
        let ghost1 = self.ghost1.forward(x.clone());
        let mut h = ghost1.clone();
        if let Some(conv) = &self.conv_dw {
            h = conv.forward(h);
        }
        if let Some(bn) = &self.bn_dw {
            h = bn.forward(h);
        }
        if let Some(se) = &self.se {
            h = se.forward(h);
        }
        let ghost2 = self.ghost2.forward(h);
        let residual = match &self.shortcut {
            None => x,
            Some((dw, bn_dw, pw, bn_pw)) => bn_pw.forward(pw.forward(bn_dw.forward(dw.forward(x)))),
        };
        BottleneckOutputs {
            output: ghost2.clone() + residual,
            ghost1,
            ghost2,
        }
    }

    /// The two ghost modules, `ghost1` first.
    pub fn ghost_modules(&self) -> [&RepOptGhostModule; 2] {
        [&self.ghost1, &self.ghost2]
    }
}
