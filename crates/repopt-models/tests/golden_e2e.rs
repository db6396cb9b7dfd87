//! The whole method on the tiny model against the official code: a CSLA model trained with SGD
//! and the target model trained with RepOptimizer SGD give the same losses, logits and kernels.

mod common;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use repopt_models::weights::load_torch_tensors;
use repopt_models::{BlockMode, RepOptVgg, VggScales};

const LR: f64 = 0.05;

#[test]
fn csla_and_target_with_repoptimizer_match_official_run() {
    let (file, _) = golden("e2e_tiny_sgd.safetensors");
    let device = device();
    let config = tiny();
    let csla_config = config.clone().with_mode(BlockMode::Csla);
    let mut csla: RepOptVgg = load_torch_tensors(
        csla_config.init(&device),
        &with_prefix(&file, "csla_init"),
        true,
    )
    .unwrap();
    let mut target: RepOptVgg = load_torch_tensors(
        config.init(&device),
        &with_prefix(&file, "target_init"),
        true,
    )
    .unwrap();

    // The Grad Mults come from the CSLA model's own (constant) scales.
    let (mut target_optim, mut csla_optim) = vgg_gr_and_csla_sgd(&target, &csla, &device);

    let x = Tensor::<4>::from_data(file.tensors["x"].clone(), &device);
    let labels = Tensor::<1, Int>::from_data(file.tensors["labels"].clone(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let logits_per_step = |key: &str| Tensor::<3>::from_data(file.tensors[key].clone(), &device);
    let (csla_logits, target_logits) = (
        logits_per_step("csla.logits_per_step"),
        logits_per_step("target.logits_per_step"),
    );
    let losses = |key: &str| vec_f32(&file.tensors[key]);
    let (csla_losses, target_losses) = (losses("csla.loss"), losses("target.loss"));

    for step in 0..5 {
        for (name, logits, expected_logits, expected_losses) in [
            ("csla", csla.forward(x.clone()), &csla_logits, &csla_losses),
            (
                "target",
                target.forward(x.clone()),
                &target_logits,
                &target_losses,
            ),
        ] {
            let expected: TensorData = expected_logits
                .clone()
                .narrow(0, step, 1)
                .reshape([8, 10])
                .into_data();
            let diff = max_abs_diff(&logits.to_data(), &expected);
            assert!(diff <= 1e-5, "{name} step {step} logits: {diff:e}");
            let loss = loss_fn.forward(logits, labels.clone());
            let value = loss.clone().into_scalar::<f32>();
            assert!(
                (value - expected_losses[step]).abs() <= 1e-5,
                "{name} step {step}: loss {value} vs {}",
                expected_losses[step]
            );
            if name == "csla" {
                let grads = GradientsParams::from_grads(loss.backward(), &csla);
                csla = csla_optim.step(LR, csla, grads);
            } else {
                let grads = GradientsParams::from_grads(loss.backward(), &target);
                target = target_optim.step(LR, target, grads);
            }
        }
    }

    // Every tensor of the final target model, BN running statistics included.
    let final_target = with_prefix(&file, "target_final");
    let reloaded: RepOptVgg =
        load_torch_tensors(config.init(&device), &final_target, true).unwrap();
    let expected = state(&reloaded);
    // `valid()` synchronises the BN running statistics of the last forward pass.
    let actual = state(&target.valid());
    assert_eq!(expected.len(), actual.len());
    for (key, expected) in &expected {
        let rel = rel_diff(&actual[key], expected);
        assert!(rel <= 1e-5, "target_final.{key}: rel {rel:e}");
    }
    // The CSLA model's equivalent kernels equal the target's kernels.
    let equivalent = VggScales::extract(&csla).unwrap();
    for block in target.blocks() {
        let name = &block.spec.name;
        let stored = &file.tensors[&format!("csla_final_equiv.{name}")];
        let kernel = block.conv.as_ref().unwrap().weight.val().into_data();
        let rel = rel_diff(&kernel, stored);
        assert!(
            rel <= 1e-5,
            "{name}: target vs CSLA equivalent kernel, rel {rel:e}"
        );
        assert!(equivalent.block(name).is_some());
    }
}
