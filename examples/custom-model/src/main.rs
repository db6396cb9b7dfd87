//! Trains a small multi-branch model with SGD and its plain counterpart with the RepOptimizer
//! from the generic CSLA description, side by side on random data, and prints how far apart
//! they are (`cargo run -p repopt-example-custom-model`).

use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};
use repopt_core::{RepOptimizerConfig, RepSgdConfig, UpdateRule};
use repopt_example_custom_model::{
    CHANNELS, CLASSES, MultiBranchNet, csla_structure, equivalent_plain,
};

fn main() -> repopt_core::Result<()> {
    let device = Device::flex().autodiff();
    device.seed(0);
    let scales = [
        vec![0.8; CHANNELS],
        vec![0.5; CHANNELS],
        vec![0.7; CHANNELS],
    ];
    let mut multi = MultiBranchNet::new(scales, &device);
    // The description of the structure, then the plain model and its Grad Mults from it.
    let structure = csla_structure(&multi)?;
    let mut plain = equivalent_plain(&multi)?;
    let mults = structure.grad_mults(&plain, UpdateRule::Sgd, &device)?;
    let mut plain_optim = RepSgdConfig::new()
        .with_momentum(0.9)
        .init(&plain, &mults)?;
    let momentum = MomentumConfig {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
    };
    let mut multi_optim = SgdConfig::new().with_momentum(Some(momentum)).init();
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    for step in 1..=10 {
        let x = Tensor::<4>::random([16, 3, 16, 16], Distribution::Default, &device);
        let y = Tensor::<1, Int>::random([16], Distribution::Uniform(0.0, CLASSES as f64), &device);
        let multi_loss = loss_fn.forward(multi.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(multi_loss.backward(), &multi);
        multi = multi_optim.step(0.05, multi, grads);
        let plain_loss = loss_fn.forward(plain.forward(x), y);
        let grads = GradientsParams::from_grads(plain_loss.backward(), &plain);
        plain = plain_optim.step(0.05, plain, grads);
        println!(
            "step {step:2}: loss multi-branch {:.6}, plain + RepOptimizer {:.6}",
            multi_loss.into_scalar::<f32>(),
            plain_loss.into_scalar::<f32>()
        );
    }
    Ok(())
}
