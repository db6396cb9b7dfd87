//! The RepOpt-GhostNet network (`RepOptGhostNet`).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::bottleneck::RepOptGhostBottleneck;
use super::config::{GhostMode, RepOptGhostNetConfig};
use super::either::Either;
use super::layers::{ConvBnAct, ConvShape, global_avg_pool};
use super::module::RepOptGhostModule;
use super::spec::{HEAD_CHANNELS, IN_CHANNELS};
use crate::error::{ModelError, Result};
use crate::norm::BatchNorm2d;

/// An entry of a `blocks.i` group: a bottleneck, or the final `ConvBnAct` (`blocks.{n}.0`).
pub type StageLayer = Either<RepOptGhostBottleneck, ConvBnAct>;

/// RepOpt-GhostNet:
///
/// ```text
/// x  = relu(bn1(conv_stem(x)))                  3×3, stride 2, no bias
/// x  = blocks.0 … blocks.{n−1}(x)               RepOpt-Ghost bottlenecks
/// x  = blocks.{n}.0(x)                          1×1 conv-BN-ReLU
/// x  = relu(conv_head(avgpool(x)))              1×1 to 1280 with bias
/// y  = classifier(dropout(flatten(x)))
/// ```
///
/// Module paths are the official PyTorch names (`conv_stem.weight`, `bn1.running_var`,
/// `blocks.2.0.ghost1.cheap_operation.0.weight`, `blocks.5.0.bn1.weight`, `conv_head.bias`,
/// `classifier.weight`); only the classifier's weight differs, stored `[in, out]` as Burn's
/// `Linear` does.
#[derive(Module, Debug)]
pub struct RepOptGhostNet {
    /// Stem conv.
    pub conv_stem: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm2d,
    /// Bottleneck groups, then the final `ConvBnAct` group.
    pub blocks: Vec<Vec<StageLayer>>,
    /// 1×1 conv to 1280 channels, with bias.
    pub conv_head: Conv2d,
    /// Dropout before the classifier (active in training only).
    pub dropout: Dropout,
    /// The classifier.
    pub classifier: Linear,
    /// The architecture this model was built from.
    #[module(skip)]
    pub config: RepOptGhostNetConfig,
}

/// Logits and the intermediate activations of one forward pass.
#[derive(Debug, Clone)]
pub struct GhostNetActivations {
    /// `[N, classes]`.
    pub logits: Tensor<2>,
    /// Named activations in forward order: `stem` (after its ReLU), for every bottleneck
    /// `blocks.i.j.ghost1`, `blocks.i.j.ghost2` and `blocks.i.j`, then `blocks.{n}.0` (the final
    /// `ConvBnAct`) and `head` (`[N, 1280, 1, 1]`, after `conv_head`'s ReLU).
    pub points: Vec<(String, Tensor<4>)>,
}

impl RepOptGhostNetConfig {
    /// A freshly initialised model on `device` (Burn's default initialisation; hyper-search
    /// scales as the official rule sets them). Fails on an invalid architecture.
    pub fn init(&self, device: &Device) -> Result<RepOptGhostNet> {
        let stem = self.stem_channels();
        let mut blocks: Vec<Vec<StageLayer>> = self.cfgs.iter().map(|_| Vec::new()).collect();
        for spec in self.bottlenecks()? {
            let group = group_index(&spec.name)?;
            let block = RepOptGhostBottleneck::new(spec, self.mode, device);
            blocks[group].push(Either::Left(block));
        }
        let (_, [input, output]) = self.final_conv()?;
        blocks.push(vec![Either::Right(ConvBnAct::new(input, output, device))]);
        Ok(RepOptGhostNet {
            conv_stem: ConvShape {
                stride: 2,
                kernel: 3,
                ..ConvShape::pointwise(IN_CHANNELS, stem)
            }
            .init(device),
            bn1: BatchNorm2d::new(stem, device),
            blocks,
            conv_head: ConvShape::pointwise(output, HEAD_CHANNELS)
                .with_bias()
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(HEAD_CHANNELS, self.num_classes).init(device),
            config: self.clone(),
        })
    }
}

/// `blocks.i.j` → `i`.
fn group_index(name: &str) -> Result<usize> {
    name.strip_prefix("blocks.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| ModelError::Config {
            message: format!("bottleneck name `{name}` is not `blocks.i.j`"),
        })
}

impl RepOptGhostNet {
    /// The ghost modules' mode.
    pub fn mode(&self) -> GhostMode {
        self.config.mode
    }

    /// Logits `[N, classes]` of images `[N, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem(x);
        for layer in self.blocks.iter().flatten() {
            x = match layer {
                Either::Left(bottleneck) => bottleneck.forward(x),
                Either::Right(conv) => conv.forward(x),
            };
        }
        self.classify(self.head(x))
    }

    /// Logits and every intermediate activation (see [`GhostNetActivations`]).
    pub fn forward_activations(&self, x: Tensor<4>) -> GhostNetActivations {
        let mut x = self.stem(x);
        let mut points = vec![("stem".to_string(), x.clone())];
        for (i, group) in self.blocks.iter().enumerate() {
            for (j, layer) in group.iter().enumerate() {
                let name = format!("blocks.{i}.{j}");
                x = match layer {
                    Either::Left(bottleneck) => {
                        let parts = bottleneck.forward_parts(x);
                        points.push((format!("{name}.ghost1"), parts.ghost1));
                        points.push((format!("{name}.ghost2"), parts.ghost2));
                        parts.output
                    }
                    Either::Right(conv) => conv.forward(x),
                };
                points.push((name, x.clone()));
            }
        }
        let head = self.head(x);
        points.push(("head".to_string(), head.clone()));
        GhostNetActivations {
            logits: self.classify(head),
            points,
        }
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn1.forward(self.conv_stem.forward(x)))
    }

    /// `relu(conv_head(avgpool(x)))`, `[N, 1280, 1, 1]`.
    fn head(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.conv_head.forward(global_avg_pool(x)))
    }

    fn classify(&self, head: Tensor<4>) -> Tensor<2> {
        let [n, c, _, _] = head.dims();
        let flat = self.dropout.forward(head.reshape([n, c]));
        self.classifier.forward(flat)
    }

    /// All bottlenecks in forward order.
    pub fn bottlenecks(&self) -> Vec<&RepOptGhostBottleneck> {
        self.blocks
            .iter()
            .flatten()
            .filter_map(Either::left)
            .collect()
    }

    /// All ghost modules in the official handler's order (that of
    /// [`RepOptGhostNetConfig::ghost_modules`]).
    pub fn ghost_modules(&self) -> Vec<&RepOptGhostModule> {
        self.bottlenecks()
            .into_iter()
            .flat_map(RepOptGhostBottleneck::ghost_modules)
            .collect()
    }

    /// Replaces every ghost module by `f(module)`, in handler order.
    pub fn try_map_ghost_modules(
        mut self,
        mut f: impl FnMut(RepOptGhostModule) -> Result<RepOptGhostModule>,
    ) -> Result<Self> {
        for layer in self.blocks.iter_mut().flatten() {
            if let Either::Left(bottleneck) = layer {
                bottleneck.ghost1 = f(bottleneck.ghost1.clone())?;
                bottleneck.ghost2 = f(bottleneck.ghost2.clone())?;
            }
        }
        Ok(self)
    }
}
