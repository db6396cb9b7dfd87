//! The RepOptimizers against trajectories of the official PyTorch implementation.

mod common;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use common::*;
use repopt_core::csla::{self, CslaScales};
use repopt_core::{
    GradMult, GradMults, RepAdamWConfig, RepOptimizerConfig, RepSgdConfig, UpdateRule,
};

fn check_trajectory(file: &str, variant: &str, rule: UpdateRule) {
    let device = device();
    let (mut golden, path) = golden(file);
    let mut take = |name: &str| golden.take(&format!("{variant}.{name}"), &path).unwrap();
    let xs = Tensor::<5>::from_data(take("x"), &device);
    let ys = Tensor::<5>::from_data(take("y"), &device);
    let stored_mult = take("mult");
    let losses = take("repopt.loss").try_to_vec::<f32>().unwrap();
    let weights = Tensor::<5>::from_data(take("repopt.weight_per_step"), &device);
    let final_equiv = take("csla.final.equiv");

    // Our Grad Mult rule, from the scales, must give the stored mult exactly.
    let alpha = take("scale_conv").try_to_vec::<f32>().unwrap();
    let beta = take("scale_1x1").try_to_vec::<f32>().unwrap();
    let [_, in_ch, _, _] = stored_mult.shape().dims::<4>();
    let scales = CslaScales {
        conv: &alpha,
        conv_1x1: &beta,
    };
    let mult = csla::grad_mult(scales, in_ch, 3, variant == "id", rule).unwrap();
    assert_eq!(
        mult.try_to_vec::<f32>().unwrap(),
        stored_mult.try_to_vec::<f32>().unwrap()
    );

    let mut model = Plain::from_kernel(take("repopt.init"), &device);
    let mut mults = GradMults::new();
    mults
        .insert("conv.weight", GradMult::from_data(mult, &device))
        .unwrap();
    let (mut optim, lr): (ModuleOptimizer, f64) = match (file, rule) {
        (_, UpdateRule::AdamW) => (
            RepAdamWConfig::new()
                .with_weight_decay(0.05)
                .init(&model, &mults)
                .unwrap(),
            0.01,
        ),
        (f, UpdateRule::Sgd) => (
            RepSgdConfig::new()
                .with_momentum(0.9)
                .with_nesterov(f.contains("nesterov"))
                .with_weight_decay(0.01)
                .init(&model, &mults)
                .unwrap(),
            0.05,
        ),
    };

    assert_eq!(losses.len(), 20);
    for (step, expected_loss) in losses.iter().enumerate() {
        let loss = mse(model.forward(row(&xs, step)), row(&ys, step));
        let value = loss.clone().into_scalar::<f32>();
        assert!(
            (value - expected_loss).abs() <= 1e-5,
            "{file} {variant} step {step}: loss {value} vs {expected_loss}"
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        let expected: TensorData = row::<4, 5>(&weights, step).into_data();
        let rel = rel_diff(&model.kernel(), &expected);
        assert!(rel <= 1e-5, "{file} {variant} step {step}: rel {rel:e}");
    }
    let rel = rel_diff(&model.kernel(), &final_equiv);
    assert!(rel <= 1e-5, "{file} {variant}: rel to CSLA {rel:e}");
}

#[test]
fn sgd_nesterov_matches_official() {
    for variant in ["id", "noid"] {
        check_trajectory(
            "toy_traj_sgd_nesterov.safetensors",
            variant,
            UpdateRule::Sgd,
        );
    }
}

#[test]
fn sgd_matches_official() {
    for variant in ["id", "noid"] {
        check_trajectory("toy_traj_sgd.safetensors", variant, UpdateRule::Sgd);
    }
}

#[test]
fn adamw_matches_official() {
    for variant in ["id", "noid"] {
        check_trajectory("toy_traj_adamw.safetensors", variant, UpdateRule::AdamW);
    }
}
