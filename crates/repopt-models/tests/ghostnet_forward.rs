//! RepOpt-GhostNet against the official PyTorch model: forward passes of the small net in
//! target, hs and rep mode (eval and train, every activation, running statistics), csla = hs,
//! the fused RepGhost, the initial hyper-search scales, and the layout the rules consume.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use repopt_core::tensor_io::TensorFile;
use repopt_models::ghostnet::{
    BottleneckCfg, GhostMode, RepOptGhostNet, RepOptGhostNetConfig, groupwise_identity_kernel,
    make_divisible,
};
use repopt_models::weights::load_torch_tensors;

/// A golden file of the shared folder (`$REPOPT_SHARED/golden/…`); a missing file fails the test.
fn shared_golden(name: &str) -> TensorFile {
    let relative = format!("golden/{name}");
    let path: PathBuf = shared_file(&relative)
        .unwrap_or_else(|| panic!("{relative} is required by this test and does not exist"));
    TensorFile::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The small net of the golden files, built from its explicit `cfgs`.
fn small(mode: GhostMode) -> RepOptGhostNetConfig {
    let row = BottleneckCfg::new;
    let config = RepOptGhostNetConfig::new(vec![
        vec![row(3, 8, 16, 0.0, 1)],
        vec![row(3, 24, 24, 0.0, 2)],
        vec![row(3, 36, 24, 0.0, 1)],
        vec![row(5, 36, 40, 0.25, 2)],
        vec![row(5, 60, 40, 0.25, 1), row(3, 16, 56, 0.0, 1)],
    ])
    .with_width(0.5)
    .with_num_classes(10)
    .with_dropout(0.0)
    .with_mode(mode);
    assert_eq!(config, RepOptGhostNetConfig::small().with_mode(mode));
    config
}

/// The small net in `mode` with the weights `<prefix>.model.*` (strict: every parameter and
/// buffer given, every tensor used).
fn load(file: &TensorFile, prefix: &str, mode: GhostMode) -> RepOptGhostNet {
    let weights = with_prefix(file, &format!("{prefix}.model"));
    let model = small(mode).init(&device()).unwrap();
    load_torch_tensors(model, &weights, true).unwrap()
}

/// Compares `actual` with the golden tensor `key`; returns the max deviation.
fn check(file: &TensorFile, key: &str, actual: &TensorData, atol: f32) -> f32 {
    let expected = file
        .tensors
        .get(key)
        .unwrap_or_else(|| panic!("golden tensor {key} missing"));
    let diff = max_abs_diff(actual, expected);
    assert!(diff <= atol, "{key}: max |Δ| {diff:e} > {atol:e}");
    diff
}

/// The golden keys `<prefix>.*`.
fn keys_with_prefix(file: &TensorFile, prefix: &str) -> BTreeSet<String> {
    with_prefix(file, prefix).into_keys().collect()
}

fn check_eval(file: &TensorFile, mode_name: &str, model: &RepOptGhostNet) -> f32 {
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &Device::flex());
    let out = model.valid().forward_activations(input);
    let mut worst = check(
        file,
        &format!("{mode_name}.logits_eval"),
        &out.logits.into_data(),
        1e-5,
    );
    let mut seen = BTreeSet::new();
    for (name, activation) in out.points {
        let key = format!("{mode_name}.act_eval.{name}");
        worst = worst.max(check(file, &key, &activation.into_data(), 1e-5));
        seen.insert(name);
    }
    assert_eq!(
        seen,
        keys_with_prefix(file, &format!("{mode_name}.act_eval"))
    );
    worst
}

fn check_train(file: &TensorFile, mode_name: &str, model: &RepOptGhostNet) -> [f32; 2] {
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &device());
    let out = model.forward_activations(input);
    let mut worst = check(
        file,
        &format!("{mode_name}.logits_train"),
        &out.logits.into_data(),
        1e-4,
    );
    let expected = keys_with_prefix(file, &format!("{mode_name}.act_train"));
    let mut seen = BTreeSet::new();
    for (name, activation) in out.points {
        if expected.contains(&name) {
            let key = format!("{mode_name}.act_train.{name}");
            worst = worst.max(check(file, &key, &activation.into_data(), 1e-4));
            seen.insert(name);
        }
    }
    assert_eq!(seen, expected, "train-mode activations checked");

    let after = with_prefix(file, &format!("{mode_name}.after_train"));
    assert!(!after.is_empty());
    // Running statistics synchronised first.
    let state = state(&model.valid());
    let mut worst_stats = 0.0f32;
    for key in after.keys() {
        let actual = state.get(key).unwrap_or_else(|| panic!("no buffer {key}"));
        let golden = format!("{mode_name}.after_train.{key}");
        worst_stats = worst_stats.max(check(file, &golden, actual, 1e-5));
    }
    [worst, worst_stats]
}

fn check_mode(mode_name: &str, mode: GhostMode) {
    let file = shared_golden("ghostnet_forward.safetensors");
    let model = load(&file, mode_name, mode);
    let eval = check_eval(&file, mode_name, &model);
    let [train, stats] = check_train(&file, mode_name, &model);
    eprintln!(
        "{mode_name}: max |Δ| eval {eval:e}, train {train:e}, running stats after train {stats:e}"
    );
}

#[test]
fn target_forward_matches_official() {
    check_mode("target", GhostMode::Target);
}

#[test]
fn hyper_search_forward_matches_official() {
    check_mode("hs", GhostMode::HyperSearch);
}

#[test]
fn rep_forward_matches_official() {
    check_mode("rep", GhostMode::Rep);
}

#[test]
fn csla_forward_equals_hyper_search() {
    let file = shared_golden("ghostnet_forward.safetensors");
    let hs = load(&file, "hs", GhostMode::HyperSearch);
    let csla = load(&file, "hs", GhostMode::Csla);
    for module in csla.ghost_modules() {
        let psi = module.cheap_operation.1.as_ref().and_then(|f| f.left());
        let phi = module.fusion_scale.as_ref();
        assert!(!psi.unwrap().weight.is_require_grad(), "csla ψ is constant");
        assert!(phi.unwrap().weight.is_require_grad(), "csla φ trains");
    }
    let plain = Tensor::<4>::from_data(file.tensors["input"].clone(), &Device::flex());
    let eval = |m: &RepOptGhostNet| m.valid().forward(plain.clone()).into_data();
    assert_eq!(max_abs_diff(&eval(&csla), &eval(&hs)), 0.0);
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &device());
    let train = |m: &RepOptGhostNet| m.forward(input.clone()).into_data();
    assert_eq!(max_abs_diff(&train(&csla), &train(&hs)), 0.0);
    assert_eq!(hs.scales().unwrap(), csla.scales().unwrap());
}

#[test]
fn fused_rep_equals_rep_in_eval_mode() {
    let file = shared_golden("ghostnet_forward.safetensors");
    let rep = load(&file, "rep", GhostMode::Rep);
    let input = Tensor::<4>::from_data(file.tensors["input"].clone(), &Device::flex());
    let expected = rep.valid().forward_activations(input.clone());
    let fused = rep.valid().fuse_rep().unwrap();
    assert_eq!(fused.mode(), GhostMode::Deploy);
    for module in fused.ghost_modules() {
        assert!(module.cheap_operation.1.is_none() && module.fusion_bn.is_none());
        assert!(module.final_bn.is_none() && module.cheap_conv().bias.is_some());
    }
    let actual = fused.forward_activations(input);
    let mut worst = 0.0f32;
    for ((name, a), (_, e)) in actual.points.into_iter().zip(expected.points) {
        let diff = max_abs_diff(&a.into_data(), &e.into_data());
        assert!(diff <= 1e-5, "{name}: fused deviates by {diff:e}");
        worst = worst.max(diff);
    }
    let diff = max_abs_diff(&actual.logits.into_data(), &expected.logits.into_data());
    assert!(diff <= 1e-5, "logits: fused deviates by {diff:e}");
    // And against the official eval logits of the unfused model.
    check(
        &file,
        "rep.logits_eval",
        &fused
            .forward(Tensor::from_data(
                file.tensors["input"].clone(),
                &Device::flex(),
            ))
            .into_data(),
        1e-5,
    );
    eprintln!("fused rep: max |Δ| activations {worst:e}, logits {diff:e}");
    assert!(load(&file, "target", GhostMode::Target).fuse_rep().is_err());
}

#[test]
fn small_target_net_has_44138_parameters() {
    let config = small(GhostMode::Target);
    assert_eq!(config.num_params(GhostMode::Target).unwrap(), 44_138);
    let file = shared_golden("ghostnet_forward.safetensors");
    for (prefix, mode) in [
        ("target", GhostMode::Target),
        ("hs", GhostMode::HyperSearch),
        ("rep", GhostMode::Rep),
    ] {
        let golden: usize = with_prefix(&file, &format!("{prefix}.model"))
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.shape().iter().product::<usize>())
            .sum();
        assert_eq!(config.num_params(mode).unwrap(), golden, "{prefix}");
        let model = config
            .clone()
            .with_mode(mode)
            .init(&Device::flex())
            .unwrap();
        let buffers: usize = state(&model.valid())
            .iter()
            .filter(|(k, _)| k.contains("running_"))
            .map(|(_, v)| v.shape().iter().product::<usize>())
            .sum();
        assert_eq!(model.num_params() - buffers, golden, "{prefix} built");
    }
}

#[test]
fn hyper_search_initial_scales_follow_the_official_rule() {
    let file = shared_golden("ghostnet_forward.safetensors");
    let model = small(GhostMode::HyperSearch).init(&device()).unwrap();
    let scales = model.scales().unwrap();
    assert_eq!(scales.len(), 12);
    for (spec, scales) in small(GhostMode::HyperSearch)
        .ghost_modules()
        .unwrap()
        .iter()
        .zip(&scales)
    {
        assert_eq!(spec.path, scales.module);
        let phi = &file.tensors[&format!("hs.scale_init.{}", spec.fusion_scale_path)];
        let psi = &file.tensors[&format!("hs.scale_init.{}", spec.cheap_scale_path)];
        assert_eq!(scales.fusion, vec_f32(phi), "{} φ", spec.path);
        assert_eq!(scales.cheap, vec_f32(psi), "{} ψ", spec.path);
    }
    let target = small(GhostMode::Target).init(&device()).unwrap();
    assert!(target.scales().is_err());
}

#[test]
fn ghost_modules_are_listed_in_official_handler_order() {
    let file = shared_golden("ghostnet_handler.safetensors");
    let meta: serde_json::Value = serde_json::from_str(&file.metadata["json"]).unwrap();
    let official = meta["modules"].as_array().unwrap();
    let specs = small(GhostMode::Target).ghost_modules().unwrap();
    assert_eq!(specs.len(), official.len());
    for (spec, entry) in specs.iter().zip(official) {
        assert_eq!(entry["module"], spec.path.as_str());
        assert_eq!(entry["kernel"], spec.kernel_path.as_str());
        assert_eq!(entry["fusion_scale"], spec.fusion_scale_path.as_str());
        assert_eq!(entry["cheap_scale"], spec.cheap_scale_path.as_str());
        assert_eq!(entry["channels"], spec.channels);
        assert_eq!(entry["groups"], spec.groups);
        let kernel = &file.tensors[&format!("init.{}", spec.kernel_path)];
        assert_eq!(kernel.shape().to_vec(), spec.kernel_shape().to_vec());
    }
}

#[test]
fn groupwise_identity_kernels_equal_the_official_ones() {
    let file = shared_golden("ghostnet_handler.safetensors");
    for (c, k, g) in [(4, 3, 4), (8, 3, 2), (6, 3, 1), (4, 5, 4)] {
        let official = &file.tensors[&format!("groupwise_identity.c{c}_k{k}_g{g}")];
        let ours = groupwise_identity_kernel(c, k, g, &Device::flex()).unwrap();
        assert_eq!(ours.into_data(), *official, "c{c} k{k} g{g}");
    }
    for spec in small(GhostMode::Target).ghost_modules().unwrap() {
        let official = &file.tensors[&format!("identity_kernel.{}", spec.kernel_path)];
        let ours = groupwise_identity_kernel(spec.channels, 3, spec.groups, &Device::flex());
        assert_eq!(ours.unwrap().into_data(), *official, "{}", spec.path);
    }
    assert!(groupwise_identity_kernel(6, 3, 4, &Device::flex()).is_err());
}

#[test]
fn official_0_5x_layout_matches_the_released_scales() {
    let config = RepOptGhostNetConfig::preset("repoptghostnet_0_5x").unwrap();
    assert_eq!(config, RepOptGhostNetConfig::preset("0.5x").unwrap());
    let specs = config.ghost_modules().unwrap();
    let channels: Vec<usize> = specs.iter().map(|s| s.channels).collect();
    #[rustfmt::skip]
    let official = [4, 8, 12, 12, 20, 12, 20, 20, 32, 20, 60, 40, 52, 40, 60, 40, 60, 40, 120,
        56, 168, 56, 168, 80, 240, 80, 240, 80, 240, 80, 240, 80];
    assert_eq!(channels, official);
    assert_eq!(config.final_conv().unwrap().0, "blocks.9.0");
    let file = shared_golden("ghostnet_released_mults.safetensors");
    let released = with_prefix(&file, "scale");
    assert_eq!(released.len(), 2 * specs.len());
    for spec in &specs {
        for path in [&spec.fusion_scale_path, &spec.cheap_scale_path] {
            assert_eq!(
                released[path].shape().to_vec(),
                vec![spec.channels],
                "{path}"
            );
        }
    }
    // 0.5x in hs mode has one (φ, ψ) per ghost module.
    let device = Device::flex();
    let model = config
        .with_mode(GhostMode::HyperSearch)
        .init(&device)
        .unwrap();
    assert_eq!(model.scales().unwrap().len(), 32);
    // The deployed widths have the parameter counts of the RepGhost paper (millions).
    for (name, millions) in [("0_5x", 2.3), ("1_0x", 4.1), ("1_5x", 6.6), ("2_0x", 9.8)] {
        let config = RepOptGhostNetConfig::preset(name).unwrap();
        let count = config.num_params(GhostMode::Deploy).unwrap();
        eprintln!("{name}: {count} parameters deployed");
        assert_eq!(
            (count as f64 / 1e5).round() / 10.0,
            millions,
            "{name}: {count}"
        );
    }
    for (name, _) in repopt_models::ghostnet::GHOSTNET_PRESETS {
        let config = RepOptGhostNetConfig::preset(name).unwrap();
        assert_eq!(config.ghost_modules().unwrap().len(), 32, "{name}");
    }
}

#[test]
fn channel_rule_and_invalid_architectures() {
    assert_eq!(make_divisible(16.0 * 0.5, 4), 8);
    assert_eq!(make_divisible(36.0 * 0.5, 4), 20);
    assert_eq!(make_divisible(16.0 * 0.58, 4), 12);
    assert_eq!(make_divisible(1.0, 4), 4);
    assert_eq!(make_divisible(14.0, 4), 16);
    let bad = RepOptGhostNetConfig::new(vec![vec![BottleneckCfg::new(4, 8, 16, 0.0, 1)]]);
    assert!(bad.init(&Device::flex()).is_err());
    assert!(RepOptGhostNetConfig::new(vec![]).validate().is_err());
    assert!(RepOptGhostNetConfig::preset("3x").is_none());
}
