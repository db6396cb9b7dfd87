//! Optimizer state round-trips, plain-SGD parity, and refusal of bad input.

mod common;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::*;
use repopt_core::{
    GradMult, GradMults, RepAdamWConfig, RepOptError, RepOptimizerConfig, RepSgdConfig,
};

/// The error of a build that must fail.
fn refused(result: Result<ModuleOptimizer, RepOptError>) -> RepOptError {
    match result {
        Ok(_) => panic!("the optimizer was built, but an error was expected"),
        Err(err) => err,
    }
}

fn random_mults(model: &Plain, device: &Device) -> GradMults {
    let dims = model.conv.weight.dims();
    let mult = Tensor::<4>::random(dims, Distribution::Uniform(0.2, 2.0), device);
    let mut mults = GradMults::new();
    mults
        .insert("conv.weight", GradMult::from_tensor(mult))
        .unwrap();
    mults
}

fn batches(n: usize, device: &Device) -> Vec<(Tensor<4>, Tensor<4>)> {
    device.seed(11);
    (0..n)
        .map(|_| {
            (
                Tensor::random([2, 4, 6, 6], Distribution::Default, device),
                Tensor::random([2, 6, 6, 6], Distribution::Default, device),
            )
        })
        .collect()
}

fn train(mut model: Plain, optim: &mut ModuleOptimizer, data: &[(Tensor<4>, Tensor<4>)]) -> Plain {
    for (x, y) in data {
        let loss = mse(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    model
}

fn check_resume(name: &str, make: impl Fn(&Plain, &GradMults) -> ModuleOptimizer) {
    let device = device();
    device.seed(3);
    let start = Plain {
        conv: conv(4, 6, 3, &device),
    };
    let mults = random_mults(&start, &device);
    let data = batches(20, &device);

    let mut straight = make(&start, &mults);
    let expected = train(start.clone(), &mut straight, &data);

    let mut first = make(&start, &mults);
    let half = train(start.clone(), &mut first, &data[..10]);
    let dir = std::env::temp_dir().join(format!("repopt-resume-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("optim.bpk");
    first.save(&file).unwrap();
    drop(first);

    let mut resumed = make(&half, &mults).load(&file).unwrap();
    let actual = train(half, &mut resumed, &data[10..]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        actual.kernel().try_to_vec::<f32>().unwrap(),
        expected.kernel().try_to_vec::<f32>().unwrap(),
        "resumed run must be identical to the uninterrupted one"
    );
}

#[test]
fn sgd_state_resumes_exactly() {
    check_resume("sgd", |model, mults| {
        RepSgdConfig::new()
            .with_nesterov(true)
            .with_weight_decay(1e-3)
            .init(model, mults)
            .unwrap()
    });
}

#[test]
fn adamw_state_resumes_exactly() {
    check_resume("adamw", |model, mults| {
        RepAdamWConfig::new().init(model, mults).unwrap()
    });
}

#[test]
fn mults_follow_paths_not_param_ids() {
    // An optimizer built on one instance must apply the mult to another instance with the same
    // structure (as after loading a model record, which restores other ParamIds).
    let device = device();
    let a = Plain {
        conv: conv(4, 6, 3, &device),
    };
    let b = Plain::from_kernel(a.kernel(), &device);
    assert_ne!(a.conv.weight.id, b.conv.weight.id);
    let mults = random_mults(&a, &device);
    let data = batches(5, &device);
    let config = RepSgdConfig::new().with_weight_decay(1e-3);
    let via_a = train(a.clone(), &mut config.init(&a, &mults).unwrap(), &data);
    let via_b = train(b, &mut config.init(&a, &mults).unwrap(), &data);
    assert_eq!(
        via_a.kernel().try_to_vec::<f32>().unwrap(),
        via_b.kernel().try_to_vec::<f32>().unwrap()
    );
}

/// A conv with a bias: the bias has no mult and must move exactly as under Burn's SGD.
#[derive(Module, Debug)]
struct Biased {
    conv: Conv2d,
}

#[test]
fn parameters_without_mult_update_like_plain_sgd() {
    let device = device();
    let model = Biased {
        conv: Conv2dConfig::new([4, 6], [3, 3]).init(&device),
    };
    let data = batches(8, &device);
    let run = |mut model: Biased, optim: &mut ModuleOptimizer| {
        for (x, _) in &data {
            let out = model.conv.forward(x.clone());
            let loss = out.powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1, model, grads);
        }
        model
    };
    let mut burn_sgd = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        }))
        .with_weight_decay(Some(WeightDecayConfig { penalty: 1e-2 }))
        .init();
    let expected = run(model.clone(), &mut burn_sgd);
    let mut rep = RepSgdConfig::new()
        .with_nesterov(true)
        .with_weight_decay(1e-2)
        .init(&model, &GradMults::new())
        .unwrap();
    let actual = run(model, &mut rep);
    let bias = |m: &Biased| m.conv.bias.as_ref().unwrap().val().into_data();
    assert_eq!(bias(&actual), bias(&expected));
    assert_eq!(
        actual.conv.weight.val().into_data(),
        expected.conv.weight.val().into_data()
    );
}

#[test]
fn undecayed_parameters_skip_weight_decay() {
    let device = device();
    let model = Biased {
        conv: Conv2dConfig::new([4, 6], [3, 3]).init(&device),
    };
    let bias_before = model.conv.bias.as_ref().unwrap().val().into_data();
    let mut optim = RepSgdConfig::new()
        .with_momentum(0.0)
        .with_weight_decay(0.5)
        .init_with_decay(&model, &GradMults::new(), |p| p.shape.len() > 1)
        .unwrap();
    // A loss that does not depend on the bias gives it a zero gradient: without decay it stays.
    let x = Tensor::<4>::random([1, 4, 5, 5], Distribution::Default, &device);
    let out = model.conv.forward(x);
    let bias = model.conv.bias.as_ref().unwrap().val();
    // Output 3×3: each bias element collects 9 from `out.sum()`.
    let loss = out.sum() - bias.sum() * 9.0;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(0.1, model, grads);
    let bias_after = model.conv.bias.as_ref().unwrap().val().into_data();
    assert_eq!(bias_after, bias_before);
}

#[test]
fn bad_input_is_a_clear_error() {
    let device = device();
    let model = Plain {
        conv: conv(4, 6, 3, &device),
    };
    let mult = |shape: [usize; 4]| GradMult::from_tensor(Tensor::<4>::ones(shape, &device));
    let config = RepSgdConfig::new();

    let mut mults = GradMults::new();
    mults.insert("conv.weight", mult([6, 4, 1, 1])).unwrap();
    let err = refused(config.init(&model, &mults));
    assert!(matches!(err, RepOptError::ShapeMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("conv.weight")
            && text.contains("[6, 4, 3, 3]")
            && text.contains("[6, 4, 1, 1]"),
        "{text}"
    );

    let mut mults = GradMults::new();
    mults
        .insert("stage0.conv.weight", mult([6, 4, 3, 3]))
        .unwrap();
    let err = refused(config.init(&model, &mults));
    assert!(matches!(err, RepOptError::UnknownParam { .. }), "{err}");
    assert!(err.to_string().contains("stage0.conv.weight"), "{err}");
    assert!(err.to_string().contains("`conv.weight`"), "{err}");

    let mut mults = GradMults::new();
    mults.insert("conv.weight", mult([6, 4, 3, 3])).unwrap();
    let err = mults.insert("conv.weight", mult([6, 4, 3, 3])).unwrap_err();
    assert!(matches!(err, RepOptError::DuplicateMult { .. }), "{err}");

    let clipped =
        RepSgdConfig::new().with_gradient_clipping(Some(GradientClippingConfig::Norm(1.0)));
    let err = refused(clipped.init(&model, &mults));
    assert!(matches!(err, RepOptError::ClippingWithMults), "{err}");
    assert!(err.to_string().contains("CSLA"), "{err}");
    let clipped_adamw =
        RepAdamWConfig::new().with_gradient_clipping(Some(GradientClippingConfig::Value(1.0)));
    assert!(matches!(
        clipped_adamw.init(&model, &mults),
        Err(RepOptError::ClippingWithMults)
    ));
    // Without mults, clipping is Burn's clipping.
    let optim = clipped.init(&model, &GradMults::new()).unwrap();
    assert!(optim.has_gradient_clipping());

    let mut nan = vec![1.0f32; 6 * 4 * 9];
    nan[17] = f32::NAN;
    let mut mults = GradMults::new();
    mults
        .insert(
            "conv.weight",
            GradMult::from_data(TensorData::new(nan, [6, 4, 3, 3]), &device),
        )
        .unwrap();
    let err = refused(config.init(&model, &mults));
    assert!(
        matches!(err, RepOptError::NonFiniteMult { index: 17, .. }),
        "{err}"
    );

    let err = GradMult::from_values(vec![1.0; 5], vec![2, 3], &device).unwrap_err();
    assert!(matches!(err, RepOptError::BadMultData { .. }), "{err}");

    let err = refused(
        RepSgdConfig::new()
            .with_momentum(0.0)
            .with_nesterov(true)
            .init(&model, &GradMults::new()),
    );
    assert!(matches!(err, RepOptError::InvalidConfig(_)), "{err}");
    let err = refused(
        RepAdamWConfig::new()
            .with_beta_1(1.0)
            .init(&model, &GradMults::new()),
    );
    assert!(err.to_string().contains("beta_1"), "{err}");
}

#[test]
fn mult_on_param_keeps_autodiff_flags() {
    // After a RepOptimizer step the parameter must still require gradients.
    let device = device();
    let model = Plain {
        conv: conv(4, 6, 3, &device),
    };
    let mults = random_mults(&model, &device);
    let mut optim = RepSgdConfig::new().init(&model, &mults).unwrap();
    let data = batches(2, &device);
    let model = train(model, &mut optim, &data);
    assert!(model.conv.weight.val().is_require_grad());
    let _: &Param<Tensor<4>> = &model.conv.weight;
}
