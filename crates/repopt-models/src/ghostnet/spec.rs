//! The layout a [`RepOptGhostNetConfig`] describes: channels of every bottleneck and ghost
//! module, their module paths, and the hyper-search initial scales.

use serde::{Deserialize, Serialize};

use super::config::{GhostMode, RepOptGhostNetConfig, make_divisible};
use crate::error::Result;

/// Kernel size of every ghost module's cheap (depthwise) conv.
pub const CHEAP_KERNEL: usize = 3;

/// Output channels of `conv_head`.
pub const HEAD_CHANNELS: usize = 1280;

/// Input channels of `conv_stem` (RGB).
pub const IN_CHANNELS: usize = 3;

/// One bottleneck (`RepOptGhostBottleneck`) with its channels after the width rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleneckSpec {
    /// Module path: `blocks.i.j`.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Hidden channels (`ghost1`'s output).
    pub mid_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel of `conv_dw` and of the shortcut's depthwise conv.
    pub kernel: usize,
    /// Stride of `conv_dw` and of the shortcut.
    pub stride: usize,
    /// Reduced channels of the SE block, if the bottleneck has one:
    /// `make_divisible(mid·se_ratio, 4)`.
    pub se_channels: Option<usize>,
    /// `b`: the official `num_stage_blocks`, the length of the run of consecutive bottlenecks
    /// with stride 1 and `in == out` that ends here (1 for any other bottleneck). Runs continue
    /// across `cfgs` groups.
    pub stage_blocks: usize,
}

impl BottleneckSpec {
    /// Whether the shortcut is the identity (`in == out`, stride 1); otherwise it is
    /// `BN(conv1×1(BN(dwconv k×k, stride s)))`.
    pub fn has_identity_shortcut(&self) -> bool {
        self.in_channels == self.out_channels && self.stride == 1
    }

    /// The first ghost module: `in → mid`, with ReLU, `n = 2b − 1`.
    pub fn ghost1(&self) -> GhostModuleSpec {
        GhostModuleSpec::new(
            format!("{}.ghost1", self.name),
            [self.in_channels, self.mid_channels],
            true,
            2 * self.stage_blocks - 1,
        )
    }

    /// The second ghost module: `mid → out`, without ReLU, `n = 2b`.
    pub fn ghost2(&self) -> GhostModuleSpec {
        GhostModuleSpec::new(
            format!("{}.ghost2", self.name),
            [self.mid_channels, self.out_channels],
            false,
            2 * self.stage_blocks,
        )
    }
}

/// One ghost module (`RepOptGhostModule`), as the RepOptimizer rules need it: where its cheap
/// kernel and scales live, and the shape of the kernel `[C, C/groups, 3, 3]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GhostModuleSpec {
    /// Module path: `blocks.i.j.ghost1` or `blocks.i.j.ghost2`.
    pub path: String,
    /// Input channels of the primary 1×1 conv.
    pub in_channels: usize,
    /// `C`: output channels of the primary conv, and channels of the cheap conv and the module.
    pub channels: usize,
    /// Groups of the cheap conv (`C`: depthwise).
    pub groups: usize,
    /// Kernel size of the cheap conv (3).
    pub kernel_size: usize,
    /// Whether the module ends with a ReLU (`ghost1`) or not (`ghost2`).
    pub relu: bool,
    /// `n`: the official `num_stage_modules` (`2b − 1` for `ghost1`, `2b` for `ghost2`).
    pub stage_modules: usize,
    /// Path of the cheap kernel: `M.cheap_operation.0.weight`.
    pub kernel_path: String,
    /// Path of `φ`, the identity-branch scale: `M.fusion_scale.weight`.
    pub fusion_scale_path: String,
    /// Path of `ψ`, the cheap-branch scale: `M.cheap_operation.1.weight`.
    pub cheap_scale_path: String,
}

impl GhostModuleSpec {
    fn new(path: String, [in_channels, channels]: [usize; 2], relu: bool, n: usize) -> Self {
        Self {
            kernel_path: format!("{path}.cheap_operation.0.weight"),
            fusion_scale_path: format!("{path}.fusion_scale.weight"),
            cheap_scale_path: format!("{path}.cheap_operation.1.weight"),
            path,
            in_channels,
            channels,
            groups: channels,
            kernel_size: CHEAP_KERNEL,
            relu,
            stage_modules: n,
        }
    }

    /// Shape of the cheap kernel: `[C, C/groups, k, k]`.
    pub fn kernel_shape(&self) -> [usize; 4] {
        let k = self.kernel_size;
        [self.channels, self.channels / self.groups, k, k]
    }

    /// The hyper-search initial value of `ψ`: `√(2/(n+1))` (computed in `f64`, then rounded to
    /// `f32` as PyTorch stores it); `φ` starts at 1.
    pub fn initial_cheap_scale(&self) -> f32 {
        (2.0 / (self.stage_modules as f64 + 1.0)).sqrt() as f32
    }
}

impl RepOptGhostNetConfig {
    /// Output channels of the stem: `make_divisible(16·w, 4)`.
    pub fn stem_channels(&self) -> usize {
        make_divisible(16.0 * self.width, 4)
    }

    /// Every bottleneck in forward order, with its channels and module path.
    pub fn bottlenecks(&self) -> Result<Vec<BottleneckSpec>> {
        self.validate()?;
        let mut specs = Vec::new();
        let mut input = self.stem_channels();
        let mut stage_blocks = 0;
        for (i, group) in self.cfgs.iter().enumerate() {
            for (j, row) in group.iter().enumerate() {
                let output = make_divisible(row.channels as f64 * self.width, 4);
                let mid = make_divisible(row.expansion as f64 * self.width, 4);
                stage_blocks = if row.stride == 1 && input == output {
                    stage_blocks + 1
                } else {
                    1
                };
                specs.push(BottleneckSpec {
                    name: format!("blocks.{i}.{j}"),
                    in_channels: input,
                    mid_channels: mid,
                    out_channels: output,
                    kernel: row.kernel,
                    stride: row.stride,
                    se_channels: (row.se_ratio > 0.0)
                        .then(|| make_divisible(mid as f64 * row.se_ratio, 4)),
                    stage_blocks,
                });
                input = output;
            }
        }
        Ok(specs)
    }

    /// The final 1×1 conv-BN-ReLU (`blocks.{len(cfgs)}.0`): its module path and
    /// `[in, out]` channels, `out = make_divisible(t_last·w·2, 4)`.
    pub fn final_conv(&self) -> Result<(String, [usize; 2])> {
        let bottlenecks = self.bottlenecks()?;
        let input = bottlenecks
            .last()
            .map_or(self.stem_channels(), |b| b.out_channels);
        let last_expansion = self
            .cfgs
            .last()
            .and_then(|group| group.last())
            .map_or(0, |row| row.expansion);
        let output = make_divisible(last_expansion as f64 * self.width * 2.0, 4);
        Ok((format!("blocks.{}.0", self.cfgs.len()), [input, output]))
    }

    /// Every ghost module, in the official handler's order (`model.modules()` order:
    /// `ghost1`, then `ghost2`, bottleneck after bottleneck). The official `scales[i]` and the
    /// `i`-th cheap kernel belong to the `i`-th entry.
    pub fn ghost_modules(&self) -> Result<Vec<GhostModuleSpec>> {
        Ok(self
            .bottlenecks()?
            .iter()
            .flat_map(|b| [b.ghost1(), b.ghost2()])
            .collect())
    }

    /// Parameters of the model in `mode` (BN running statistics are buffers, not counted),
    /// computed from the architecture without building it.
    pub fn num_params(&self, mode: GhostMode) -> Result<usize> {
        let bn = |c: usize| 2 * c;
        let mut total = self.stem_channels() * IN_CHANNELS * 9 + bn(self.stem_channels());
        for b in self.bottlenecks()? {
            for ghost in [b.ghost1(), b.ghost2()] {
                total += ghost_params(&ghost, mode);
            }
            if b.stride > 1 {
                total += b.mid_channels * b.kernel * b.kernel + bn(b.mid_channels);
            }
            if let Some(r) = b.se_channels {
                total += 2 * b.mid_channels * r + r + b.mid_channels;
            }
            if !b.has_identity_shortcut() {
                let (i, o) = (b.in_channels, b.out_channels);
                total += i * b.kernel * b.kernel + bn(i) + i * o + bn(o);
            }
        }
        let (_, [i, o]) = self.final_conv()?;
        total += i * o + bn(o);
        total += o * HEAD_CHANNELS + HEAD_CHANNELS;
        total += HEAD_CHANNELS * self.num_classes + self.num_classes;
        Ok(total)
    }
}

/// Parameters of one ghost module in `mode`.
fn ghost_params(ghost: &GhostModuleSpec, mode: GhostMode) -> usize {
    let (i, c) = (ghost.in_channels, ghost.channels);
    let [_, per_group, k, _] = ghost.kernel_shape();
    let primary = i * c + 2 * c;
    let cheap = c * per_group * k * k;
    primary
        + cheap
        + match mode {
            GhostMode::Target => 2 * c,
            // `final_bn` and the two scales, or the cheap branch's and the identity's BNs.
            GhostMode::HyperSearch | GhostMode::Csla | GhostMode::Rep => 4 * c,
            GhostMode::Deploy => c,
        }
}
