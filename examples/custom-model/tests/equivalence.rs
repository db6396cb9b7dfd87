//! Training the multi-branch model with Burn's SGD equals training the plain model with the
//! RepOptimizer built from the generic CSLA description. In `f64`: in `f32` a rounding
//! difference can flip a ReLU whose input sits within 1e-7 of zero.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, DeviceConfig, Distribution, FloatDType, Int, Tensor, TensorData};
use repopt_core::{RepOptHandler, RepOptimizerConfig, RepSgdConfig, UpdateRule};
use repopt_example_custom_model::{CLASSES, MultiBranchNet, csla_structure, equivalent_plain};

fn uniform(n: usize, lo: f64, hi: f64, device: &Device) -> Vec<f32> {
    let data = Tensor::<1>::random([n], Distribution::Uniform(lo, hi), device).into_data();
    data.convert::<f32>().try_to_vec::<f32>().expect("f32")
}

fn max_rel(a: TensorData, b: TensorData) -> f64 {
    let (a, b) = (
        a.try_to_vec::<f64>().unwrap(),
        b.try_to_vec::<f64>().unwrap(),
    );
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    num / b.iter().map(|y| y.abs()).sum::<f64>()
}

#[test]
fn multi_branch_sgd_equals_plain_repoptimizer() {
    let mut host = Device::flex();
    host.configure(DeviceConfig::default().float_dtype(FloatDType::F64))
        .unwrap();
    let device = host.clone().autodiff();
    device.seed(17);
    let c = repopt_example_custom_model::CHANNELS;
    // Scales of both signs, as a hyper-search may find them.
    let scales = [
        uniform(c, -0.5, 1.5, &device),
        uniform(c, -0.5, 1.5, &device),
        uniform(c, 0.2, 1.2, &device),
    ];
    let mut multi = MultiBranchNet::new(scales, &device);
    let mut plain = equivalent_plain(&multi).unwrap();
    let structure = csla_structure(&multi).unwrap();
    // Through the trait, as any model's rules are used.
    let mults = RepOptHandler::grad_mults(&structure, &plain, UpdateRule::Sgd, &device).unwrap();
    assert_eq!(mults.len(), 2);
    let mut plain_optim = RepSgdConfig::new()
        .with_momentum(0.9)
        .with_nesterov(true)
        .with_weight_decay(1e-3)
        .init(&plain, &mults)
        .unwrap();
    let mut multi_optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        }))
        .with_weight_decay(Some(WeightDecayConfig { penalty: 1e-3 }))
        .init();
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    for _ in 0..20 {
        let x = Tensor::<4>::random([8, 3, 12, 12], Distribution::Default, &device);
        let y = Tensor::<1, Int>::random([8], Distribution::Uniform(0.0, CLASSES as f64), &device);
        let loss = loss_fn.forward(multi.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &multi);
        multi = multi_optim.step(0.05, multi, grads);
        let loss = loss_fn.forward(plain.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &plain);
        plain = plain_optim.step(0.05, plain, grads);
    }
    let equivalent = equivalent_plain(&multi).unwrap();
    for (a, b) in plain.blocks.iter().zip(&equivalent.blocks) {
        let rel = max_rel(
            a.conv.weight.val().into_data(),
            b.conv.weight.val().into_data(),
        );
        assert!(rel <= 1e-10, "kernels drifted apart: {rel:e}");
    }
    let x = Tensor::<4>::random([4, 3, 12, 12], Distribution::Default, &device);
    let rel = max_rel(
        plain.forward(x.clone()).into_data(),
        multi.forward(x).into_data(),
    );
    assert!(rel <= 1e-10, "outputs differ: {rel:e}");
}
