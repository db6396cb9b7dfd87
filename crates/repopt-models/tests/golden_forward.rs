//! Forward passes of the three tiny models against the official PyTorch model (eval and train).

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::*;
use repopt_models::weights::load_torch_tensors;
use repopt_models::{BlockMode, RepOptVgg, decays_weight};

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

/// The weight-decay groups are the official `set_weight_decay`'s, which reads PyTorch names:
/// a tensor decays when its name contains `identity.weight`, otherwise unless it is 1-D or a
/// bias. Applied to the official models' names (the golden files), that decays the RepVGG
/// mode's identity-branch BN weight (`bn_identity.weight`) and the search mode's identity
/// scales; `decays_weight`, which reads this crate's paths, must decay the same tensors (it
/// would not if a BN's weight were named as Burn's own BN names it, `gamma`).
#[test]
fn weight_decay_groups_are_the_official_ones() {
    for (file_name, mode, identity) in [
        ("forward_target.safetensors", BlockMode::Target, None),
        (
            "forward_csla_hs.safetensors",
            BlockMode::HyperSearch,
            Some("scale_identity.weight"),
        ),
        (
            "forward_repvgg.safetensors",
            BlockMode::RepVgg,
            Some("bn_identity.weight"),
        ),
    ] {
        let (file, _) = golden(file_name);
        let official: Vec<(String, Vec<usize>)> = with_prefix(&file, "model")
            .into_iter()
            .filter(|(name, _)| !name.contains("running_") && !name.contains("num_batches"))
            .map(|(name, data)| (name, data.shape().to_vec()))
            .collect();
        let official_rule = |name: &str, shape: &[usize]| {
            name.contains("identity.weight") || !(shape.len() == 1 || name.ends_with(".bias"))
        };
        let decayed = |groups: Vec<(bool, usize)>| {
            let chosen: Vec<usize> = groups.iter().filter(|g| g.0).map(|g| g.1).collect();
            (chosen.len(), chosen.iter().sum::<usize>())
        };
        let expected = decayed(
            official
                .iter()
                .map(|(n, s)| (official_rule(n, s), s.iter().product()))
                .collect(),
        );
        let model = tiny().with_mode(mode).init(&device());
        let params: Vec<_> = repopt_core::param_infos(&model)
            .into_iter()
            .filter(|p| !p.path.contains("running_"))
            .collect();
        assert_eq!(params.len(), official.len(), "{mode}: parameter count");
        let ours = decayed(
            params
                .iter()
                .map(|p| (decays_weight(p), p.shape.iter().product()))
                .collect(),
        );
        assert_eq!(ours, expected, "{mode}: decayed (tensors, elements)");
        if let Some(identity) = identity {
            let named = official.iter().filter(|(n, _)| n.ends_with(identity));
            assert!(
                named.count() > 0,
                "{mode}: no `{identity}` in the official names"
            );
        }
    }
}
