//! RepOpt-GhostNet architecture: modes, the official `cfgs` rows, width presets and the channel
//! rule.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// What a RepOpt-GhostNet ghost module computes.
///
/// With `x1 = primary_conv(x)` (1×1 conv, BN, ReLU if the module has one), `c = cheap(x1)` (the
/// depthwise 3×3 cheap conv) and per-channel scales `φ` (identity branch) and `ψ` (cheap branch):
///
/// | mode | ghost module, before its optional ReLU |
/// |---|---|
/// | `Target` | `final_bn(c)` — the plain model, trained with a RepOptimizer |
/// | `HyperSearch` | `final_bn(ψ⊙c + φ⊙x1)`, `φ` and `ψ` trainable |
/// | `Csla` | the same, `ψ` constant and `φ` trainable |
/// | `Rep` | `bn_c(c) + fusion_bn(x1)`, the RepGhost baseline (no `final_bn`) |
/// | `Deploy` | `conv(x1) + b`: a `Rep` model fused (see [`RepOptGhostNet::fuse_rep`](super::RepOptGhostNet::fuse_rep)) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GhostMode {
    /// Cheap conv, then BN.
    Target,
    /// Cheap conv and identity with trainable scales, then BN.
    HyperSearch,
    /// Cheap conv and identity with a constant cheap scale and a trainable identity scale.
    Csla,
    /// Cheap conv and identity, each with its own BN (RepGhost).
    Rep,
    /// A fused `Rep` model: one depthwise 3×3 conv with bias.
    Deploy,
}

impl core::fmt::Display for GhostMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            GhostMode::Target => "target",
            GhostMode::HyperSearch => "hs",
            GhostMode::Csla => "csla",
            GhostMode::Rep => "rep",
            GhostMode::Deploy => "deploy",
        })
    }
}

impl core::str::FromStr for GhostMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "target" => Ok(GhostMode::Target),
            "hs" | "hyper-search" | "hypersearch" => Ok(GhostMode::HyperSearch),
            "csla" => Ok(GhostMode::Csla),
            "rep" => Ok(GhostMode::Rep),
            "deploy" => Ok(GhostMode::Deploy),
            other => Err(format!(
                "unknown ghost module mode `{other}` (expected target, hs, csla, rep or deploy)"
            )),
        }
    }
}

/// One row of the official `cfgs`: `[k, t, c, SE, s]`. Channel counts are before the width
/// multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BottleneckCfg {
    /// `k`: kernel of the bottleneck's depthwise conv (`conv_dw`) and of the shortcut's depthwise
    /// conv. The ghost modules' cheap convs are always 3×3.
    pub kernel: usize,
    /// `t`: hidden (expansion) channels.
    pub expansion: usize,
    /// `c`: output channels.
    pub channels: usize,
    /// `SE`: squeeze-and-excitation ratio; 0 for none.
    pub se_ratio: f64,
    /// `s`: stride.
    pub stride: usize,
}

impl BottleneckCfg {
    /// The row `[kernel, expansion, channels, se_ratio, stride]`.
    pub const fn new(
        kernel: usize,
        expansion: usize,
        channels: usize,
        se_ratio: f64,
        stride: usize,
    ) -> Self {
        Self {
            kernel,
            expansion,
            channels,
            se_ratio,
            stride,
        }
    }
}

/// The official channel rule (`_make_divisible(v, divisor)` with `min_value = divisor`):
///
/// `r = max(d, ⌊(v + d/2) / d⌋·d)`, plus `d` if `r < 0.9·v`,
///
/// i.e. `v` rounded to the nearest multiple of `d`, at least `d`, and never more than 10 % below
/// `v`. Computed in `f64`, as Python does.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = ((v + d / 2.0).trunc() / d).floor() * d;
    let mut result = rounded.max(d);
    if result < 0.9 * v {
        result += d;
    }
    result as usize
}

/// The official RepOpt-GhostNet `cfgs` (`repoptghostnet(enable_se)`): nine stages of
/// bottleneck rows; with `enable_se = false` every SE ratio is 0.
pub fn official_cfgs(enable_se: bool) -> Vec<Vec<BottleneckCfg>> {
    let se = if enable_se { 0.25 } else { 0.0 };
    let row = BottleneckCfg::new;
    vec![
        vec![row(3, 8, 16, 0.0, 1)],
        vec![row(3, 24, 24, 0.0, 2)],
        vec![row(3, 36, 24, 0.0, 1)],
        vec![row(5, 36, 40, se, 2)],
        vec![row(5, 60, 40, se, 1)],
        vec![row(3, 120, 80, 0.0, 2)],
        vec![
            row(3, 100, 80, 0.0, 1),
            row(3, 120, 80, 0.0, 1),
            row(3, 120, 80, 0.0, 1),
            row(3, 240, 112, se, 1),
            row(3, 336, 112, se, 1),
        ],
        vec![row(5, 336, 160, se, 2)],
        vec![
            row(5, 480, 160, 0.0, 1),
            row(5, 480, 160, se, 1),
            row(5, 480, 160, 0.0, 1),
            row(5, 480, 160, se, 1),
        ],
    ]
}

/// The width presets of the official file (`repoptghostnet_0_5x` … `repoptghostnet_2_0x`), by
/// name and width multiplier.
pub const GHOSTNET_PRESETS: &[(&str, f64)] = &[
    ("repoptghostnet_0_5x", 0.5),
    ("repoptghostnet_0_58x", 0.58),
    ("repoptghostnet_0_8x", 0.8),
    ("repoptghostnet_1_0x", 1.0),
    ("repoptghostnet_1_11x", 1.11),
    ("repoptghostnet_1_3x", 1.3),
    ("repoptghostnet_1_5x", 1.5),
    ("repoptghostnet_2_0x", 2.0),
];

/// The architecture of a RepOpt-GhostNet (the official `RepOptGhostNet(cfgs, num_classes, width,
/// dropout, mode)`).
///
/// `conv_stem` (3×3, stride 2) to `make_divisible(16·w, 4)` channels; the bottlenecks of `cfgs`
/// (one module group `blocks.i` per outer row, `blocks.i.j` per bottleneck) with
/// `make_divisible(c·w, 4)` outputs and `make_divisible(t·w, 4)` hidden channels; a 1×1
/// conv-BN-ReLU (`blocks.{len}.0`) to `make_divisible(t_last·w·2, 4)` channels; global average
/// pooling, `conv_head` (1×1 to 1280, with bias), ReLU, dropout, `classifier`.
#[derive(Config, Debug, PartialEq)]
pub struct RepOptGhostNetConfig {
    /// Bottleneck rows, grouped as the official `cfgs`.
    pub cfgs: Vec<Vec<BottleneckCfg>>,
    /// Width multiplier.
    #[config(default = 1.0)]
    pub width: f64,
    /// Output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout probability before the classifier (train mode only).
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Ghost module mode; the official constructor's default is `rep`.
    #[config(default = "GhostMode::Rep")]
    pub mode: GhostMode,
}

impl RepOptGhostNetConfig {
    /// The official `repoptghostnet(enable_se, width=…)`: [`official_cfgs`], 1000 classes,
    /// dropout 0.2, mode `rep`.
    pub fn repoptghostnet(width: f64, enable_se: bool) -> Self {
        Self::new(official_cfgs(enable_se)).with_width(width)
    }

    /// A width preset by name (see [`GHOSTNET_PRESETS`]); the `repoptghostnet_` prefix may be
    /// left out (`0_5x`), and `.` may stand for `_` (`0.5x`).
    pub fn preset(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase().replace('.', "_");
        let short = name.strip_prefix("repoptghostnet_").unwrap_or(&name);
        GHOSTNET_PRESETS
            .iter()
            .find(|(preset, _)| preset.strip_prefix("repoptghostnet_") == Some(short))
            .map(|&(_, width)| Self::repoptghostnet(width, true))
    }

    /// The small net of the golden files (F, H, I): the first five bottlenecks of
    /// `repoptghostnet_0_5x` plus `[3, 16, 56, 0, 1]` (stride 1, `in != out`), width 0.5,
    /// 10 classes, no dropout; 44,138 parameters in `Target` mode.
    pub fn small() -> Self {
        let row = BottleneckCfg::new;
        Self::new(vec![
            vec![row(3, 8, 16, 0.0, 1)],
            vec![row(3, 24, 24, 0.0, 2)],
            vec![row(3, 36, 24, 0.0, 1)],
            vec![row(5, 36, 40, 0.25, 2)],
            vec![row(5, 60, 40, 0.25, 1), row(3, 16, 56, 0.0, 1)],
        ])
        .with_width(0.5)
        .with_num_classes(10)
        .with_dropout(0.0)
    }

    /// Checks that a model can be built: at least one row and no empty group, odd kernels,
    /// non-zero strides and channels, a positive finite width, SE ratios and dropout in range,
    /// at least one class.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(ModelError::Config { message });
        if !(self.width.is_finite() && self.width > 0.0) {
            return fail(format!("width {} is not a positive number", self.width));
        }
        if self.num_classes == 0 {
            return fail("no classes".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        if self.cfgs.is_empty() || self.cfgs.iter().any(Vec::is_empty) {
            return fail("cfgs need at least one row, and no group may be empty".into());
        }
        for (i, row) in self.cfgs.iter().flatten().enumerate() {
            let bad = if row.kernel.is_multiple_of(2) {
                Some("the kernel must be odd")
            } else if row.stride == 0 || row.expansion == 0 || row.channels == 0 {
                Some("stride and channels must be non-zero")
            } else if !(row.se_ratio.is_finite() && row.se_ratio >= 0.0) {
                Some("the SE ratio must be a non-negative number")
            } else {
                None
            };
            if let Some(why) = bad {
                return fail(format!("row {i} {row:?}: {why}"));
            }
        }
        Ok(())
    }
}
