//! Forward passes of the three tiny models against the official PyTorch model (eval and train).

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::*;
use repopt_models::weights::load_torch_tensors;
use repopt_models::{BlockMode, RepOptVgg};

fn check_forward(file_name: &str, mode: BlockMode) {
    let (file, _) = golden(file_name);
    let device = device();
    let config = tiny().with_mode(mode);
    let weights = with_prefix(&file, "model");
    let model: RepOptVgg = load_torch_tensors(config.init(&device), &weights, true).unwrap();

    // Eval: a model on a device without autodiff normalises with the running statistics.
    let plain = Device::flex();
    let eval = model.valid();
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &plain);
    let stages = eval.forward_stages(input.clone());
    for (k, out) in stages.iter().enumerate() {
        let diff = max_abs_diff(&out.to_data(), &file.tensors[&format!("stage{k}_eval")]);
        assert!(diff <= 1e-5, "{file_name} stage{k} eval: {diff:e}");
    }
    let diff = max_abs_diff(
        &eval.forward(input).into_data(),
        &file.tensors["logits_eval"],
    );
    assert!(diff <= 1e-5, "{file_name} logits eval: {diff:e}");

    // Train: batch statistics, and the running statistics move.
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &device);
    let stages = model.forward_stages(input);
    for (k, out) in stages.iter().enumerate() {
        let expected = &file.tensors[&format!("stage{k}_train")];
        let (diff, rel) = (
            max_abs_diff(&out.to_data(), expected),
            rel_diff(&out.to_data(), expected),
        );
        // Batch statistics over few samples amplify f32 rounding: RepVGG's stage4 normalises 4
        // values per channel, where even Burn in f64 lands 5.1e-6 from the (f32) reference.
        assert!(
            diff <= 2e-5 && rel <= 1e-5,
            "{file_name} stage{k} train: {diff:e} (rel {rel:e})"
        );
    }
    let features = stages.last().unwrap().clone();
    let [n, c, _, _] = features.dims();
    let logits = model
        .linear
        .forward(features.mean_dim(3).mean_dim(2).reshape([n, c]));
    let diff = max_abs_diff(&logits.into_data(), &file.tensors["logits_train"]);
    assert!(diff <= 1e-5, "{file_name} logits train: {diff:e}");

    let after = with_prefix(&file, "after_train");
    assert!(!after.is_empty());
    let state = state_dict(&model);
    for (key, expected) in &after {
        let actual = state.get(key).unwrap_or_else(|| panic!("no buffer {key}"));
        let diff = max_abs_diff(actual, expected);
        assert!(diff <= 1e-5, "{file_name} {key} after train: {diff:e}");
    }
}

/// Running statistics of every BN, under PyTorch names.
fn state_dict(model: &RepOptVgg) -> std::collections::BTreeMap<String, burn::tensor::TensorData> {
    let mut out = std::collections::BTreeMap::new();
    for block in model.blocks() {
        for (prefix, bn) in block_bns(block) {
            let (mean, var) = bn.running_stats();
            out.insert(format!("{prefix}.running_mean"), mean.into_data());
            out.insert(format!("{prefix}.running_var"), var.into_data());
        }
    }
    out
}

#[test]
fn target_forward_matches_official() {
    check_forward("forward_target.safetensors", BlockMode::Target);
}

#[test]
fn hyper_search_forward_matches_official() {
    check_forward("forward_csla_hs.safetensors", BlockMode::HyperSearch);
}

#[test]
fn csla_forward_matches_official() {
    check_forward("forward_csla_hs.safetensors", BlockMode::Csla);
}

#[test]
fn repvgg_forward_matches_official() {
    check_forward("forward_repvgg.safetensors", BlockMode::RepVgg);
}
