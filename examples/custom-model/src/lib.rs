//! A model of one's own, given its RepOptimizer through [`repopt_core::CslaModel`].
//!
//! [`MultiBranchNet`] is a small classifier whose blocks are multi-branch with constant scales
//! (CSLA blocks):
//!
//! * `blocks.0`: `relu(α ⊙ conv3×3(x) + β ⊙ conv1×1(x) + γ ⊙ x)`, a RepVGG-style block;
//! * `blocks.1`: `relu(α ⊙ dwconv3×3(x) + γ ⊙ x)`, a depthwise block as RepGhost's cheap
//!   operation,
//!
//! with `α, β` constants and `γ` trained. [`PlainNet`] is the same network with one conv per
//! block. [`csla_structure`] describes, conv by conv, which multi-branch block each plain kernel
//! stands for; the generic rules of `repopt-core` then give the plain model's re-initialisation
//! and Grad Mults, and training [`PlainNet`] with the RepOptimizer equals training
//! [`MultiBranchNet`] with plain SGD (`tests/equivalence.rs`).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use repopt_core::csla::{Branch, CslaConv};
use repopt_core::{CslaModel, Result};

/// Channels of the blocks.
pub const CHANNELS: usize = 8;
/// Classes of the classifier.
pub const CLASSES: usize = 10;

fn conv(k: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([CHANNELS, CHANNELS], [k, k])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_bias(false)
        .init(device)
}

fn per_channel(values: &[f32], device: &Device) -> Tensor<4> {
    Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device).reshape([
        1,
        values.len() as i32,
        1,
        1,
    ])
}

/// A multi-branch block with constant `α` (and `β`) and a trained identity scale `γ`.
#[derive(Module, Debug)]
pub struct CslaBlock {
    /// The 3×3 kernel (dense or depthwise).
    pub conv3: Conv2d,
    /// The 1×1 branch, in the dense block only.
    pub conv1: Option<Conv2d>,
    /// `γ`, one per channel.
    pub gamma: Param<Tensor<1>>,
    /// `α`, constant.
    #[module(skip)]
    pub alpha: Vec<f32>,
    /// `β`, constant (empty without a 1×1 branch).
    #[module(skip)]
    pub beta: Vec<f32>,
}

impl CslaBlock {
    /// A block with the given scales; `groups` = 1 (dense) or [`CHANNELS`] (depthwise).
    pub fn new(groups: usize, alpha: Vec<f32>, beta: Option<Vec<f32>>, device: &Device) -> Self {
        let gamma = Tensor::<1>::ones([CHANNELS], device);
        Self {
            conv3: conv(3, groups, device),
            conv1: beta.as_ref().map(|_| conv(1, groups, device)),
            gamma: Param::from_tensor(gamma),
            alpha,
            beta: beta.unwrap_or_default(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let gamma = self.gamma.val().reshape([1, CHANNELS as i32, 1, 1]);
        let mut y =
            self.conv3.forward(x.clone()) * per_channel(&self.alpha, &device) + x.clone() * gamma;
        if let Some(conv1) = &self.conv1 {
            y = y + conv1.forward(x) * per_channel(&self.beta, &device);
        }
        relu(y)
    }
}

/// One conv per block.
#[derive(Module, Debug)]
pub struct PlainBlock {
    /// The block's kernel.
    pub conv: Conv2d,
}

/// The multi-branch classifier: stem, two CSLA blocks, global pooling, linear head.
#[derive(Module, Debug)]
pub struct MultiBranchNet {
    /// 3 → [`CHANNELS`] 3×3 conv.
    pub stem: Conv2d,
    /// The CSLA blocks.
    pub blocks: Vec<CslaBlock>,
    /// The classifier.
    pub head: Linear,
}

/// The plain network: the same stem and head, one conv per block.
#[derive(Module, Debug)]
pub struct PlainNet {
    /// 3 → [`CHANNELS`] 3×3 conv.
    pub stem: Conv2d,
    /// The plain blocks.
    pub blocks: Vec<PlainBlock>,
    /// The classifier.
    pub head: Linear,
}

fn classify(
    stem: &Conv2d,
    head: &Linear,
    x: Tensor<4>,
    blocks: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> Tensor<2> {
    let x = blocks(relu(stem.forward(x)));
    let [n, c, _, _] = x.dims();
    head.forward(x.mean_dim(3).mean_dim(2).reshape([n, c]))
}

impl MultiBranchNet {
    /// A network with the given scales of block 0 (`α, β`) and block 1 (`α`).
    pub fn new(scales: [Vec<f32>; 3], device: &Device) -> Self {
        let [alpha0, beta0, alpha1] = scales;
        let stem = Conv2dConfig::new([3, CHANNELS], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        Self {
            stem,
            blocks: vec![
                CslaBlock::new(1, alpha0, Some(beta0), device),
                CslaBlock::new(CHANNELS, alpha1, None, device),
            ],
            head: LinearConfig::new(CHANNELS, CLASSES).init(device),
        }
    }

    /// Logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        classify(&self.stem, &self.head, x, &|x| {
            self.blocks.iter().fold(x, |x, b| b.forward(x))
        })
    }
}

impl PlainNet {
    /// Logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        classify(&self.stem, &self.head, x, &|x| {
            self.blocks.iter().fold(x, |x, b| relu(b.conv.forward(x)))
        })
    }
}

fn wide(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

/// What each plain kernel stands for: the description the generic rules work from.
pub fn csla_structure(net: &MultiBranchNet) -> Result<CslaModel> {
    let convs = net
        .blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let gamma = block.gamma.val().into_data().convert::<f64>();
            CslaConv {
                path: format!("blocks.{i}.conv.weight"),
                in_channels: CHANNELS,
                groups: block.conv3.groups,
                kernel_size: 3,
                scale: wide(&block.alpha),
                branches: match block.conv1 {
                    Some(_) => vec![Branch {
                        kernel_size: 1,
                        scale: wide(&block.beta),
                    }],
                    None => Vec::new(),
                },
                identity: Some(gamma.try_to_vec::<f64>().expect("f64 values")),
            }
        })
        .collect();
    CslaModel::new(convs)
}

/// The plain network computing what `net` computes: shared layers copied, each block's kernel
/// the equivalent kernel of its branches (the Rule of Initialization applied to `net`'s own
/// kernels).
pub fn equivalent_plain(net: &MultiBranchNet) -> Result<PlainNet> {
    let plain = PlainNet {
        stem: net.stem.clone(),
        blocks: net
            .blocks
            .iter()
            .map(|b| PlainBlock {
                conv: b.conv3.clone(),
            })
            .collect(),
        head: net.head.clone(),
    };
    let mut branch_kernels = |conv: &CslaConv, _branch: usize| {
        let index: usize = conv.path["blocks.".len()..]
            .split('.')
            .next()
            .and_then(|i| i.parse().ok())
            .expect("paths made by csla_structure");
        let conv1 = net.blocks[index]
            .conv1
            .as_ref()
            .expect("a block with a branch has conv1");
        Ok(conv1.weight.val().into_data())
    };
    csla_structure(net)?.reinitialize_with(plain, &mut branch_kernels)
}
