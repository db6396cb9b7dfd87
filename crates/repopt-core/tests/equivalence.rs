//! Grad-Mult training of a plain conv equals Burn's own optimizers on the CSLA block.

mod common;

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::*;
use repopt_core::csla::{self, CslaScales, IdentityInit};
use repopt_core::{
    GradMult, GradMults, RepAdamWConfig, RepOptimizerConfig, RepSgdConfig, UpdateRule,
};

/// `α ⊙ conv3×3(x) + β ⊙ conv1×1(x) [+ γ ⊙ x]` with constant α, β and a trainable γ.
#[derive(Module, Debug)]
struct CslaToy {
    conv3: Conv2d,
    conv1: Conv2d,
    gamma: Option<Param<Tensor<1>>>,
}

struct Scales {
    alpha: Vec<f32>,
    beta: Vec<f32>,
}

impl CslaToy {
    fn new(in_ch: usize, out_ch: usize, identity: bool, device: &Device) -> Self {
        let gamma = identity.then(|| {
            Param::from_tensor(Tensor::random(
                [out_ch],
                Distribution::Uniform(0.5, 1.5),
                device,
            ))
        });
        Self {
            conv3: conv(in_ch, out_ch, 3, device),
            conv1: conv(in_ch, out_ch, 1, device),
            gamma,
        }
    }

    fn forward(&self, x: Tensor<4>, scales: &Scales) -> Tensor<4> {
        let device = x.device();
        let per_channel = |v: &[f32]| {
            Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device).reshape([
                1,
                v.len() as i32,
                1,
                1,
            ])
        };
        let mut out = self.conv3.forward(x.clone()) * per_channel(&scales.alpha)
            + self.conv1.forward(x.clone()) * per_channel(&scales.beta);
        if let Some(gamma) = &self.gamma {
            let c = gamma.dims()[0] as i32;
            out = out + x * gamma.val().reshape([1, c, 1, 1]);
        }
        out
    }

    fn equivalent_kernel(&self, scales: &Scales) -> TensorData {
        let gamma = self
            .gamma
            .as_ref()
            .map(|g| g.val().into_data().try_to_vec::<f32>().unwrap());
        let scales = CslaScales {
            conv: &scales.alpha,
            conv_1x1: &scales.beta,
        };
        let in_channels = self.conv3.weight.val().dims()[1];
        scales
            .conv("conv", in_channels, 3, gamma.as_deref())
            .equivalent_kernel(
                &self.conv3.weight.val().into_data(),
                &[self.conv1.weight.val().into_data()],
                IdentityInit::Scale,
            )
            .unwrap()
    }
}

fn uniform(n: usize, lo: f64, hi: f64, device: &Device) -> Vec<f32> {
    Tensor::<1>::random([n], Distribution::Uniform(lo, hi), device)
        .into_data()
        .try_to_vec()
        .unwrap()
}

/// Trains the CSLA toy with `csla_optim` and the plain conv with the RepOptimizer for 50 steps;
/// returns the relative difference of the equivalent kernels.
fn train_both(
    identity: bool,
    scale_range: (f64, f64),
    rule: UpdateRule,
    lr: f64,
    mut csla_optim: ModuleOptimizer,
    rep_optim: impl Fn(&Plain, &GradMults) -> ModuleOptimizer,
) -> f64 {
    let device = device();
    device.seed(7);
    let (in_ch, out_ch) = if identity { (4, 4) } else { (4, 6) };
    let scales = Scales {
        alpha: uniform(out_ch, scale_range.0, scale_range.1, &device),
        beta: uniform(out_ch, scale_range.0, scale_range.1, &device),
    };
    let mut toy = CslaToy::new(in_ch, out_ch, identity, &device);
    let mut plain = Plain::from_kernel(toy.equivalent_kernel(&scales), &device);
    let mult = csla::grad_mult(
        CslaScales {
            conv: &scales.alpha,
            conv_1x1: &scales.beta,
        },
        in_ch,
        3,
        identity,
        rule,
    )
    .unwrap();
    let mut mults = GradMults::new();
    mults
        .insert("conv.weight", GradMult::from_data(mult, &device))
        .unwrap();
    let mut optim = rep_optim(&plain, &mults);

    for _ in 0..50 {
        let x = Tensor::<4>::random([2, in_ch, 6, 6], Distribution::Default, &device);
        let y = Tensor::<4>::random([2, out_ch, 6, 6], Distribution::Default, &device);

        let loss = mse(toy.forward(x.clone(), &scales), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &toy);
        toy = csla_optim.step(lr, toy, grads);

        let loss = mse(plain.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &plain);
        plain = optim.step(lr, plain, grads);
    }
    rel_diff(&plain.kernel(), &toy.equivalent_kernel(&scales))
}

fn burn_sgd(nesterov: bool, weight_decay: f32) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: weight_decay,
        }))
        .init()
}

#[test]
fn sgd_on_plain_conv_equals_sgd_on_csla_block() {
    for identity in [true, false] {
        for nesterov in [true, false] {
            for weight_decay in [0.0, 1e-2] {
                let rel = train_both(
                    identity,
                    (-0.5, 1.5),
                    UpdateRule::Sgd,
                    0.05,
                    burn_sgd(nesterov, weight_decay),
                    |plain, mults| {
                        RepSgdConfig::new()
                            .with_nesterov(nesterov)
                            .with_weight_decay(weight_decay)
                            .init(plain, mults)
                            .unwrap()
                    },
                );
                assert!(
                    rel <= 1e-5,
                    "identity {identity} nesterov {nesterov} wd {weight_decay}: rel {rel:e}"
                );
            }
        }
    }
}

#[test]
fn adamw_on_plain_conv_equals_adamw_on_csla_block_with_positive_scales() {
    for identity in [true, false] {
        let burn_adamw = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(0.05)
            .init();
        let rel = train_both(
            identity,
            (0.3, 1.3),
            UpdateRule::AdamW,
            0.01,
            burn_adamw,
            |plain, mults| {
                RepAdamWConfig::new()
                    .with_weight_decay(0.05)
                    .init(plain, mults)
                    .unwrap()
            },
        );
        assert!(rel <= 1e-5, "identity {identity}: rel {rel:e}");
    }
}
