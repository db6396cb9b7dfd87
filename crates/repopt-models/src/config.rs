//! RepOpt-VGG architecture: presets, channel rule, and the list of blocks.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// What a RepOpt-VGG block computes.
///
/// With `s, t, γ` per-channel scales and `I` the identity branch (only when `C_in == C_out` and
/// stride 1):
///
/// | mode | block |
/// |---|---|
/// | `Target` | `relu(bn(conv3×3(x)))` — the plain model, trained with a RepOptimizer |
/// | `HyperSearch` | `relu(bn(s⊙conv3×3(x) + t⊙conv1×1(x) [+ γ⊙x]))`, `s, t, γ` trainable |
/// | `Csla` | the same with `s, t` constant (`γ` stays trainable) |
/// | `RepVgg` | `relu(bn(conv3×3(x)) + bn(conv1×1(x)) [+ bn(x)])`, the structural baseline |
/// | `Deploy` | `relu(conv3×3(x) + b)`: a fused RepVGG (see [`RepOptVgg::fuse_repvgg`](crate::RepOptVgg::fuse_repvgg)) or a target model with its BNs folded in ([`RepOptVgg::fuse_target`](crate::RepOptVgg::fuse_target)) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockMode {
    /// Plain conv-BN-ReLU.
    Target,
    /// Three branches with trainable scales.
    HyperSearch,
    /// Three branches with constant conv/1×1 scales.
    Csla,
    /// Three branches, each with its own BN.
    RepVgg,
    /// Fused RepVGG: one 3×3 conv with bias.
    Deploy,
}

impl core::fmt::Display for BlockMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BlockMode::Target => "target",
            BlockMode::HyperSearch => "hs",
            BlockMode::Csla => "csla",
            BlockMode::RepVgg => "repvgg",
            BlockMode::Deploy => "deploy",
        })
    }
}

impl core::str::FromStr for BlockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "target" => Ok(BlockMode::Target),
            "hs" | "hyper-search" | "hypersearch" => Ok(BlockMode::HyperSearch),
            "csla" => Ok(BlockMode::Csla),
            "repvgg" => Ok(BlockMode::RepVgg),
            "deploy" => Ok(BlockMode::Deploy),
            other => Err(format!(
                "unknown block mode `{other}` (expected target, hs, csla, repvgg or deploy)"
            )),
        }
    }
}

/// The architecture of a RepOpt-VGG.
///
/// `stage0` is one block `in_channels → min(64, ⌊64·w0⌋)`; stages 1–4 have `num_blocks[i]` blocks
/// of `⌊64·w0⌋, ⌊128·w1⌋, ⌊256·w2⌋, ⌊512·w3⌋` channels whose first block has `strides[i+1]`;
/// then global average pooling and a linear classifier.
#[derive(Config, Debug, PartialEq)]
pub struct RepOptVggConfig {
    /// Blocks in stages 1–4.
    pub num_blocks: [usize; 4],
    /// Width multipliers of stages 1–4 (stage0 follows stage 1).
    pub width_multiplier: [f32; 4],
    /// Strides of stage0 and of the first block of stages 1–4.
    #[config(default = "[2, 2, 2, 2, 2]")]
    pub strides: [usize; 5],
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Block mode.
    #[config(default = "BlockMode::Target")]
    pub mode: BlockMode,
}

/// One block of the architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// Module path of the block: `stage0`, `stage1.0`, …
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride of the 3×3 and 1×1 convs.
    pub stride: usize,
}

impl BlockSpec {
    /// Whether the block has an identity branch (`C_in == C_out`, stride 1).
    pub fn has_identity(&self) -> bool {
        self.in_channels == self.out_channels && self.stride == 1
    }

    /// Module path of the block's 3×3 kernel in a `Target` model.
    pub fn kernel_path(&self) -> String {
        format!("{}.conv.weight", self.name)
    }
}

/// The named presets of the paper and a few small ones for CPU work.
pub const PRESETS: &[&str] = &["tiny", "a0", "a1", "b0", "b1", "b2", "l1", "l2"];

impl RepOptVggConfig {
    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        let (blocks, width) = match name.to_ascii_lowercase().as_str() {
            "tiny" => ([2, 2, 1, 1], [0.125, 0.125, 0.125, 0.125]),
            "a0" => ([2, 4, 14, 1], [0.75, 0.75, 0.75, 2.5]),
            "a1" => ([2, 4, 14, 1], [1.0, 1.0, 1.0, 2.5]),
            "b0" => ([4, 6, 16, 1], [1.0, 1.0, 1.0, 2.5]),
            "b1" => ([4, 6, 16, 1], [2.0, 2.0, 2.0, 4.0]),
            "b2" => ([4, 6, 16, 1], [2.5, 2.5, 2.5, 5.0]),
            "l1" => ([8, 14, 24, 1], [2.0, 2.0, 2.0, 4.0]),
            "l2" => ([8, 14, 24, 1], [2.5, 2.5, 2.5, 5.0]),
            _ => return None,
        };
        Some(Self::new(blocks, width))
    }

    /// Output channels of stage0 and stages 1–4.
    pub fn stage_channels(&self) -> [usize; 5] {
        let w = self.width_multiplier;
        let base = [64.0, 128.0, 256.0, 512.0];
        let stage = |i: usize| (base[i] * w[i]) as usize;
        [64.min(stage(0)), stage(0), stage(1), stage(2), stage(3)]
    }

    /// Every block in forward order, with its module path.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let channels = self.stage_channels();
        let mut blocks = vec![BlockSpec {
            name: "stage0".into(),
            in_channels: self.in_channels,
            out_channels: channels[0],
            stride: self.strides[0],
        }];
        let mut in_channels = channels[0];
        for stage in 0..4 {
            for i in 0..self.num_blocks[stage] {
                blocks.push(BlockSpec {
                    name: format!("stage{}.{i}", stage + 1),
                    in_channels,
                    out_channels: channels[stage + 1],
                    stride: if i == 0 { self.strides[stage + 1] } else { 1 },
                });
                in_channels = channels[stage + 1];
            }
        }
        blocks
    }

    /// Multiply-accumulates of one forward pass per `image_size`×`image_size` image in `mode`:
    /// the convolutions and the classifier, the usual count (BN, ReLU, sums and the pooling
    /// are left out, as they are in published FLOP counts).
    ///
    /// A block with `C_in → C_out` channels and `H_out × W_out` outputs
    /// (`H_out = ⌊(H − 1) / s⌋ + 1` for its 3×3 conv with padding 1 and its 1×1 conv alike)
    /// costs `k · C_in · C_out · H_out · W_out`, with `k = 9` for one 3×3 conv (target, deploy)
    /// and `k = 10` with the 1×1 branch (RepVGG, CSLA, hyper-search); the classifier
    /// `C_features · classes`. A training step costs about three forward passes per image
    /// (forward, input gradient, weight gradient): `2 · 3 · macs` floating-point operations.
    pub fn forward_macs(&self, image_size: usize, mode: BlockMode) -> u64 {
        let taps = match mode {
            BlockMode::Target | BlockMode::Deploy => 9,
            BlockMode::HyperSearch | BlockMode::Csla | BlockMode::RepVgg => 10,
        };
        let mut size = image_size as u64;
        let mut macs = 0u64;
        for block in self.blocks() {
            size = (size.max(1) - 1) / block.stride as u64 + 1;
            macs += taps * (block.in_channels * block.out_channels) as u64 * size * size;
        }
        let features = self.stage_channels()[4];
        macs + (features * self.num_classes) as u64
    }

    /// Trainable parameters of the model in `mode` (BN running statistics are buffers, not
    /// counted), computed from the architecture without building it.
    pub fn num_params(&self, mode: BlockMode) -> usize {
        let blocks: usize = self
            .blocks()
            .iter()
            .map(|b| {
                let (i, o) = (b.in_channels, b.out_channels);
                let id = b.has_identity();
                match mode {
                    BlockMode::Target => o * i * 9 + 2 * o,
                    BlockMode::Deploy => o * i * 9 + o,
                    BlockMode::HyperSearch | BlockMode::Csla => {
                        o * i * 10 + 2 * o + 2 * o + if id { o } else { 0 }
                    }
                    BlockMode::RepVgg => o * i * 10 + 4 * o + if id { 2 * o } else { 0 },
                }
            })
            .sum();
        let features = self.stage_channels()[4];
        blocks + features * self.num_classes + self.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RepVGG paper's Table 4 counts 1.4 B (A0) and 11.8 B (B1) multiply-adds at 224×224
    /// with 1000 classes, for the deployed (one 3×3 conv per block) model.
    #[test]
    fn forward_macs_match_the_published_counts() {
        let gmacs = |preset: &str, mode| {
            let config = RepOptVggConfig::preset(preset).unwrap();
            config.forward_macs(224, mode) as f64 / 1e9
        };
        assert!((gmacs("a0", BlockMode::Target) - 1.4).abs() < 0.05);
        assert!((gmacs("b1", BlockMode::Deploy) - 11.8).abs() < 0.05);
        // The 1×1 branch adds one tap to the nine of every block's 3×3 conv.
        let b1 = RepOptVggConfig::preset("b1").unwrap();
        let (target, repvgg) = (
            b1.forward_macs(224, BlockMode::Target),
            b1.forward_macs(224, BlockMode::RepVgg),
        );
        let classifier = 2048 * 1000;
        assert_eq!((repvgg - classifier) * 9, (target - classifier) * 10);
    }

    /// A 32×32 input halves to 1×1 by stage 4: the stride-2 blocks keep at least one pixel.
    #[test]
    fn forward_macs_count_every_block_at_its_output_size() {
        let config = RepOptVggConfig::new([1, 1, 1, 1], [0.125; 4]).with_num_classes(10);
        // stage0 3→8 at 16², then 8→8 at 8², 8→16 at 4², 16→32 at 2², 32→64 at 1².
        let expected =
            9 * (3 * 8 * 256 + 8 * 8 * 64 + 8 * 16 * 16 + 16 * 32 * 4 + 32 * 64) + 64 * 10;
        assert_eq!(config.forward_macs(32, BlockMode::Target), expected);
    }
}
