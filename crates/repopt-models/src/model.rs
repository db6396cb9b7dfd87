//! The RepOpt-VGG network.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Linear, LinearConfig};

use crate::norm::BatchNorm2d;
use burn::tensor::{Device, Tensor};
use repopt_core::csla::{Branch, CslaConv, IdentityInit, identity_kernel};

use crate::block::{RepOptVggBlock, conv};
use crate::config::{BlockMode, BlockSpec, RepOptVggConfig};
use crate::conv::{ConvImpl, Layout};
use crate::error::{ModelError, Result};

/// RepOpt-VGG: `stage0`, four stages of blocks, global average pooling, a linear classifier.
///
/// Module paths follow the official PyTorch model (`stage0.conv.weight`, `stage2.3.bn.weight`,
/// `stage2.3.bn.running_var`, `linear.weight`); only the linear weight differs, stored `[in, out]`
/// as Burn's `Linear` does.
#[derive(Module, Debug)]
pub struct RepOptVgg {
    /// The first block.
    pub stage0: RepOptVggBlock,
    /// Stage 1 blocks.
    pub stage1: Vec<RepOptVggBlock>,
    /// Stage 2 blocks.
    pub stage2: Vec<RepOptVggBlock>,
    /// Stage 3 blocks.
    pub stage3: Vec<RepOptVggBlock>,
    /// Stage 4 blocks.
    pub stage4: Vec<RepOptVggBlock>,
    /// The classifier.
    pub linear: Linear,
    /// The architecture this model was built from.
    #[module(skip)]
    pub config: RepOptVggConfig,
}

/// The hyper-search scale of a block's `s` and `t` at initialisation (official rule): 1 for
/// stage0 and the first block of each stage, `√(2/i)` for the `i`-th block after it.
pub fn initial_scale(block_index_in_stage: usize) -> f32 {
    if block_index_in_stage == 0 {
        1.0
    } else {
        (2.0 / block_index_in_stage as f32).sqrt()
    }
}

impl RepOptVggConfig {
    /// A freshly initialised model on `device`.
    pub fn init(&self, device: &Device) -> RepOptVgg {
        let mut stages: [Vec<RepOptVggBlock>; 5] = Default::default();
        for spec in self.blocks() {
            let (stage, index) = stage_and_index(&spec.name);
            let block = RepOptVggBlock::new(spec, self.mode, initial_scale(index), device);
            stages[stage].push(block);
        }
        let [stage0, stage1, stage2, stage3, stage4] = stages;
        RepOptVgg {
            stage0: stage0.into_iter().next().expect("stage0 has one block"),
            stage1,
            stage2,
            stage3,
            stage4,
            linear: LinearConfig::new(self.stage_channels()[4], self.num_classes).init(device),
            config: self.clone(),
        }
    }
}

/// `("stage2.3")` → `(2, 3)`; `stage0` → `(0, 0)`.
fn stage_and_index(name: &str) -> (usize, usize) {
    let rest = name
        .strip_prefix("stage")
        .expect("block names start with `stage`");
    let mut parts = rest.split('.');
    let stage = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("stage number");
    let index = parts.next().map_or(0, |i| i.parse().expect("block index"));
    (stage, index)
}

impl RepOptVgg {
    /// The blocks' mode.
    pub fn mode(&self) -> BlockMode {
        self.stage0.mode
    }

    /// How the blocks' convolutions are computed.
    pub fn conv_impl(&self) -> ConvImpl {
        self.stage0.conv_impl
    }

    /// This model with every block computing its convolutions as `conv_impl` says; parameters
    /// and the function computed stay the same.
    pub fn with_conv_impl(self, conv_impl: ConvImpl) -> Self {
        self.try_map_blocks(|mut block| {
            block.conv_impl = conv_impl;
            Ok(block)
        })
        .expect("setting the convolution cannot fail")
    }

    /// Logits `[N, classes]` of images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let (features, layout) = self.forward_stages_laid_out(x).pop().expect("five stages");
        self.linear.forward(layout.global_average(features))
    }

    /// The outputs of stage0 … stage4, `[N, C, H, W]`.
    pub fn forward_stages(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        self.forward_stages_laid_out(x)
            .into_iter()
            .map(|(x, layout)| layout.to_nchw(x))
            .collect()
    }

    /// The outputs of stage0 … stage4, each in the layout its last block computes in; `x` is
    /// `[N, C, H, W]` and is brought into each block's layout when it differs from the last.
    fn forward_stages_laid_out(&self, mut x: Tensor<4>) -> Vec<(Tensor<4>, Layout)> {
        let mut outputs = Vec::with_capacity(5);
        let mut layout = Layout::ChannelsFirst;
        let stages = [
            std::slice::from_ref(&self.stage0),
            &self.stage1,
            &self.stage2,
            &self.stage3,
            &self.stage4,
        ];
        for stage in stages {
            for block in stage {
                x = block.forward_laid_out(layout.convert(x, block.layout()));
                layout = block.layout();
            }
            outputs.push((x.clone(), layout));
        }
        outputs
    }

    /// All blocks in forward order.
    pub fn blocks(&self) -> Vec<&RepOptVggBlock> {
        std::iter::once(&self.stage0)
            .chain(self.stage1.iter())
            .chain(self.stage2.iter())
            .chain(self.stage3.iter())
            .chain(self.stage4.iter())
            .collect()
    }

    /// Replaces every block by `f(block)`, in forward order.
    pub fn try_map_blocks(
        mut self,
        mut f: impl FnMut(RepOptVggBlock) -> Result<RepOptVggBlock>,
    ) -> Result<Self> {
        self.stage0 = f(self.stage0)?;
        for stage in [
            &mut self.stage1,
            &mut self.stage2,
            &mut self.stage3,
            &mut self.stage4,
        ] {
            let blocks = std::mem::take(stage);
            *stage = blocks.into_iter().map(&mut f).collect::<Result<_>>()?;
        }
        Ok(self)
    }

    /// Folds every three-branch RepVGG block (and its BNs, with their running statistics) into
    /// one 3×3 conv with bias: the structural re-parameterisation of RepVGG. The result is in
    /// `Deploy` mode and gives the same eval-mode output.
    pub fn fuse_repvgg(self) -> Result<Self> {
        self.fuse_blocks(BlockMode::RepVgg, "RepVGG deploy fusion", fuse_block)
    }

    /// Replaces every block of a `from`-mode model by `fuse(block)` (a `Deploy` block, given
    /// the block's convolution implementation) and marks the model `Deploy`.
    fn fuse_blocks(
        self,
        from: BlockMode,
        operation: &str,
        fuse: fn(RepOptVggBlock) -> RepOptVggBlock,
    ) -> Result<Self> {
        if self.mode() != from {
            return Err(ModelError::WrongMode {
                operation: operation.into(),
                expected: from.to_string(),
                found: self.mode().to_string(),
            });
        }
        let mut fused = self.try_map_blocks(|block| {
            let conv_impl = block.conv_impl;
            let mut fused = fuse(block);
            fused.conv_impl = conv_impl;
            Ok(fused)
        })?;
        fused.config.mode = BlockMode::Deploy;
        Ok(fused)
    }
}

impl RepOptVgg {
    /// Folds every `Target` block's BN (with its running statistics) into the block's 3×3 conv,
    /// giving the deployed model: conv with bias, then ReLU (`Deploy` mode, the same form as a
    /// fused RepVGG). With `σ = √(running_var + ε)`, each output channel's kernel becomes
    /// `W' = W·γ/σ` and its bias `b' = β − running_mean·γ/σ`, so `conv(x; W') + b'` equals
    /// `BN(conv(x; W))` in eval mode (up to `f32` rounding). The classifier is kept.
    ///
    /// Fails with [`ModelError::WrongMode`] unless the model is in `Target` mode (a `Csla` or
    /// `HyperSearch` model can go through [`RepOptVgg::equivalent_target`] first).
    pub fn fuse_target(self) -> Result<Self> {
        self.fuse_blocks(
            BlockMode::Target,
            "folding the BNs of a target model into its convs",
            fuse_target_block,
        )
    }
}

fn fuse_target_block(block: RepOptVggBlock) -> RepOptVggBlock {
    let spec = block.spec.clone();
    let three = block.conv.as_ref().expect("Target block has conv");
    let (kernel, bias) = fold_bn(
        three.weight.val(),
        block.bn.as_ref().expect("Target block has bn"),
    );
    deploy_block(spec, kernel, bias)
}

/// A `Deploy` block: one 3×3 conv with `kernel` and `bias`.
fn deploy_block(spec: BlockSpec, kernel: Tensor<4>, bias: Tensor<1>) -> RepOptVggBlock {
    let device = kernel.device();
    let mut conv = conv(&spec, 3, true, &device);
    conv.weight = Param::from_tensor(kernel.detach());
    conv.bias = Some(Param::from_tensor(bias.detach()));
    let mut fused = RepOptVggBlock::new(spec, BlockMode::Deploy, 1.0, &device);
    fused.conv = Some(conv);
    fused
}

/// `(K·γ/σ, β − μ·γ/σ)` with `σ = √(running_var + ε)`.
fn fold_bn(kernel: Tensor<4>, bn: &BatchNorm2d) -> (Tensor<4>, Tensor<1>) {
    let (mean, var) = bn.running_stats();
    let t = bn.weight.val() / var.add_scalar(bn.epsilon).sqrt();
    let out = t.dims()[0] as i32;
    let bias = bn.bias.val() - mean * t.clone();
    (kernel * t.reshape([out, 1, 1, 1]), bias)
}

fn fuse_block(block: RepOptVggBlock) -> RepOptVggBlock {
    let spec = block.spec.clone();
    let (o, i) = (spec.out_channels, spec.in_channels);
    let three = block.conv_3x3.as_ref().expect("RepVGG block has conv_3x3");
    let one = block.conv_1x1.as_ref().expect("RepVGG block has conv_1x1");
    let device = three.weight.device();
    let (k3, b3) = fold_bn(
        three.weight.val(),
        block.bn_3x3.as_ref().expect("RepVGG block has bn_3x3"),
    );
    let padded = Tensor::<4>::zeros([o, i, 3, 3], &device)
        .slice_assign([0..o, 0..i, 1..2, 1..2], one.weight.val());
    let (k1, b1) = fold_bn(
        padded,
        block.bn_1x1.as_ref().expect("RepVGG block has bn_1x1"),
    );
    let (mut kernel, mut bias) = (k3 + k1, b3 + b1);
    if let Some(bn) = &block.bn_identity {
        let eye = Tensor::<4>::from_data(identity_kernel(o, 1, 3), &device);
        let (kid, bid) = fold_bn(eye, bn);
        kernel = kernel + kid;
        bias = bias + bid;
    }
    deploy_block(spec, kernel, bias)
}

impl RepOptVgg {
    /// The `Target` model computing exactly what this `Csla`/`HyperSearch` model computes: each
    /// block's 3×3 kernel becomes its equivalent kernel `s ⊙ W3 + t ⊙ pad(W1) + γ·I`; BNs (with
    /// their running statistics) and the classifier are copied. The copy shares no state with
    /// `self` and has fresh parameter ids.
    pub fn equivalent_target(&self) -> Result<RepOptVgg> {
        if !matches!(self.mode(), BlockMode::HyperSearch | BlockMode::Csla) {
            return Err(ModelError::WrongMode {
                operation: "the equivalent target model".into(),
                expected: "hs or csla".into(),
                found: self.mode().to_string(),
            });
        }
        let model = self.clone().try_map_blocks(|block| {
            let csla = "CSLA blocks have conv, conv_1x1, scale_conv and scale_1x1";
            let (Some(conv3), Some(conv1), Some(s), Some(t)) = (
                &block.conv,
                &block.conv_1x1,
                &block.scale_conv,
                &block.scale_1x1,
            ) else {
                unreachable!("{csla}")
            };
            let host = |t: Tensor<4>| -> Vec<f64> {
                let data = t.detach().into_data().convert::<f64>();
                data.try_to_vec::<f64>().expect("converted to f64")
            };
            let structure = CslaConv {
                path: block.spec.kernel_path(),
                in_channels: block.spec.in_channels,
                groups: 1,
                kernel_size: 3,
                scale: host(s.per_channel()),
                branches: vec![Branch {
                    kernel_size: 1,
                    scale: host(t.per_channel()),
                }],
                identity: block.scale_identity.as_ref().map(|g| host(g.per_channel())),
            };
            let w3 = conv3.weight.val();
            let device = w3.device();
            // Computed in the kernel's own float type, in the official order.
            let kernel = structure.equivalent_kernel(
                &w3.into_data(),
                &[conv1.weight.val().into_data()],
                IdentityInit::Scale,
            )?;
            let kernel = Tensor::<4>::from_data(kernel, &device);
            let mut conv = conv3.clone();
            conv.weight = Param::initialized(ParamId::new(), kernel.detach().require_grad());
            Ok(RepOptVggBlock {
                conv: Some(conv),
                conv_3x3: None,
                conv_1x1: None,
                scale_conv: None,
                scale_1x1: None,
                scale_identity: None,
                bn: block.bn.as_ref().map(BatchNorm2d::duplicate),
                bn_3x3: None,
                bn_1x1: None,
                bn_identity: None,
                mode: BlockMode::Target,
                spec: block.spec,
                conv_impl: block.conv_impl,
            })
        })?;
        let mut model = model;
        model.config.mode = BlockMode::Target;
        model.linear.weight = Param::initialized(ParamId::new(), model.linear.weight.val());
        if let Some(bias) = &model.linear.bias {
            model.linear.bias = Some(Param::initialized(ParamId::new(), bias.val()));
        }
        Ok(model)
    }
}
