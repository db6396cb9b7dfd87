//! Architecture, RepVGG fusion, GR = CSLA on a whole model, and the scales file format.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use common::*;
use repopt_core::{UpdateRule, param_infos};
use repopt_models::{
    BlockMode, ModelError, RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales, initial_scale,
};

fn trainable_params(model: &RepOptVgg) -> usize {
    param_infos(model)
        .iter()
        .filter(|p| !p.path.contains("running_"))
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

#[test]
fn parameter_counts_equal_the_paper() {
    for (preset, millions) in [("b1", 51.8), ("b2", 80.3), ("l1", 76.0), ("l2", 118.1)] {
        let count = RepOptVggConfig::preset(preset)
            .unwrap()
            .num_params(BlockMode::Target);
        let rounded = (count as f64 / 1e5).round() / 10.0;
        assert_eq!(rounded, millions, "{preset}: {count} parameters");
    }
    // The closed form agrees with the built modules, in every mode.
    let device = Device::flex();
    for preset in ["tiny", "a0"] {
        for mode in [
            BlockMode::Target,
            BlockMode::HyperSearch,
            BlockMode::Csla,
            BlockMode::RepVgg,
        ] {
            let config = RepOptVggConfig::preset(preset).unwrap().with_mode(mode);
            let model = config.init(&device);
            assert_eq!(
                trainable_params(&model),
                config.num_params(mode),
                "{preset} {mode}"
            );
        }
    }
}

#[test]
fn architecture_follows_the_official_rules() {
    let config = RepOptVggConfig::preset("a0").unwrap();
    assert_eq!(config.stage_channels(), [48, 48, 96, 192, 1280]);
    let blocks = config.blocks();
    assert_eq!(blocks.len(), 1 + 2 + 4 + 14 + 1);
    assert_eq!(blocks[0].name, "stage0");
    assert_eq!((blocks[0].in_channels, blocks[0].stride), (3, 2));
    assert!(!blocks[1].has_identity() && blocks[2].has_identity());
    assert_eq!(blocks[21].name, "stage4.0");
    let b1 = RepOptVggConfig::preset("b1").unwrap().blocks();
    assert_eq!(b1.iter().filter(|b| b.has_identity()).count(), 23);
    assert_eq!(initial_scale(0), 1.0);
    assert_eq!(initial_scale(2), 1.0);
    assert!((initial_scale(1) - 2f32.sqrt()).abs() < 1e-7);

    let hs = config
        .clone()
        .with_mode(BlockMode::HyperSearch)
        .init(&Device::flex());
    let s = hs.stage3[3].scale_conv.as_ref().unwrap().values();
    assert!((s[0] - (2.0f32 / 3.0).sqrt()).abs() < 1e-7);
    assert_eq!(
        hs.stage3[3].scale_identity.as_ref().unwrap().values()[0],
        1.0
    );
    let csla = config.with_mode(BlockMode::Csla).init(&device());
    assert!(
        !csla.stage1[1]
            .scale_conv
            .as_ref()
            .unwrap()
            .weight
            .val()
            .is_require_grad()
    );
    assert!(
        csla.stage1[1]
            .scale_identity
            .as_ref()
            .unwrap()
            .weight
            .val()
            .is_require_grad()
    );
}

/// Random BN statistics and affine parameters, so that fusion is not trivially the identity.
fn randomize_bns(model: RepOptVgg, device: &Device) -> RepOptVgg {
    let x = Tensor::<4>::random([8, 3, 32, 32], Distribution::Default, device);
    // A few train-mode passes move the running statistics.
    for _ in 0..20 {
        let _ = model.forward(x.clone());
    }
    let mut state = std::collections::BTreeMap::new();
    for block in model.blocks() {
        for (prefix, bn) in block_bns(block) {
            let c = bn.weight.dims()[0];
            let rand = |lo, hi| {
                Tensor::<1>::random([c], Distribution::Uniform(lo, hi), device).into_data()
            };
            state.insert(format!("{prefix}.weight"), rand(0.5, 1.5));
            state.insert(format!("{prefix}.bias"), rand(-0.2, 0.2));
        }
    }
    repopt_models::weights::load_torch_tensors(model, &state, false).unwrap()
}

#[test]
fn repvgg_fusion_keeps_eval_output() {
    let device = device();
    device.seed(5);
    let config = tiny().with_mode(BlockMode::RepVgg);
    let model = randomize_bns(config.init(&device), &device);
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &Device::flex());
    let expected = model.valid().forward(x.clone()).into_data();
    let fused = model.valid().fuse_repvgg().unwrap();
    assert_eq!(fused.mode(), BlockMode::Deploy);
    assert!(
        fused
            .blocks()
            .iter()
            .all(|b| b.conv_1x1.is_none() && b.bn.is_none())
    );
    let actual = fused.forward(x).into_data();
    let diff = max_abs_diff(&actual, &expected);
    assert!(diff <= 1e-5, "fused vs three-branch: {diff:e}");
    assert!(matches!(
        tiny().init(&device).fuse_repvgg(),
        Err(ModelError::WrongMode { .. })
    ));
}

#[test]
fn target_bn_folding_keeps_eval_output() {
    let device = device();
    device.seed(6);
    let model = randomize_bns(tiny().init(&device), &device);
    // The BN statistics are not trivial: running means and variances moved away from 0 and 1.
    let (mean, var) = model.stage2[1].bn.as_ref().unwrap().running_stats();
    assert!(mean.abs().max().into_scalar::<f32>() > 1e-3);
    assert!((var - 1.0).abs().max().into_scalar::<f32>() > 1e-3);
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &Device::flex());
    let expected = model.valid().forward(x.clone()).into_data();
    let fused = model.valid().fuse_target().unwrap();
    assert_eq!(fused.mode(), BlockMode::Deploy);
    assert!(
        fused
            .blocks()
            .iter()
            .all(|b| b.bn.is_none() && b.conv.as_ref().is_some_and(|c| c.bias.is_some()))
    );
    let actual = fused.forward(x).into_data();
    let rel = rel_diff(&actual, &expected);
    assert!(rel <= 1e-5, "fused vs conv-BN: relative difference {rel:e}");
    let scale = expected
        .clone()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .fold(0.0f32, |m, y| m.max(y.abs()));
    let diff = max_abs_diff(&actual, &expected);
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "fused vs conv-BN: {diff:e} (max |y| {scale})"
    );
    for mode in [BlockMode::RepVgg, BlockMode::Csla, BlockMode::HyperSearch] {
        let other = tiny().with_mode(mode).init(&device);
        assert!(
            matches!(other.fuse_target(), Err(ModelError::WrongMode { .. })),
            "{mode}"
        );
    }
    let deployed = tiny().init(&device).fuse_target().unwrap();
    assert!(matches!(
        deployed.fuse_target(),
        Err(ModelError::WrongMode { .. })
    ));
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("repopt-models-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn scales_file_round_trip_and_strict_validation() {
    let device = device();
    let config = tiny().with_mode(BlockMode::HyperSearch);
    let hs = config.init(&device);
    let scales = VggScales::extract(&hs).unwrap();
    let dir = temp_dir("scales");
    let path = dir.join("tiny.scales.safetensors");
    scales.save(&path).unwrap();
    let loaded = VggScales::load(&path, Some(&tiny())).unwrap();
    assert_eq!(loaded.blocks, scales.blocks);
    assert_eq!(loaded.architecture, scales.architecture);

    // Scales for another architecture: a missing block is named.
    let other = RepOptVggConfig::new([2, 3, 1, 1], [0.125; 4]).with_num_classes(10);
    let err = VggScales::load(&path, Some(&other)).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingBlock { block, .. } if block == "stage2.2"),
        "{err}"
    );
    // An extra block.
    let fewer = RepOptVggConfig::new([2, 1, 1, 1], [0.125; 4]).with_num_classes(10);
    let err = VggScales::load(&path, Some(&fewer)).unwrap_err();
    assert!(
        matches!(&err, ModelError::ExtraBlock { block, .. } if block == "stage2.1"),
        "{err}"
    );
    // Wrong channel counts: the block and both shapes are named.
    let wider = RepOptVggConfig::new([2, 2, 1, 1], [0.25, 0.125, 0.125, 0.125]);
    let err = VggScales::load(&path, Some(&wider)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("stage0") && text.contains("[16, 3, 3, 3]") && text.contains("[8, 3, 3, 3]"),
        "{text}"
    );

    // Truncated and foreign files.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = VggScales::load(&truncated, None).unwrap_err();
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");
    let foreign = dir.join("foreign.safetensors");
    std::fs::write(&foreign, b"this is not a tensor file").unwrap();
    let err = VggScales::load(&foreign, None).unwrap_err();
    assert!(err.to_string().contains("foreign.safetensors"), "{err}");
    let golden_file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden/tiny_handler.safetensors");
    let err = VggScales::load(&golden_file, None).unwrap_err();
    assert!(
        err.to_string().contains("not a repopt-vgg-scales file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // Rules refuse models in the wrong mode.
    let handler = RepOptVggHandler::new(scales);
    let err = handler
        .grad_mults_for(&hs, UpdateRule::Sgd, &device)
        .unwrap_err();
    assert!(matches!(err, ModelError::WrongMode { .. }), "{err}");
}

#[test]
fn official_pth_errors_are_clear() {
    let Some(pth) = shared_file("official_scales/RepOpt-VGG-B1-scales.pth") else {
        return;
    };
    // The B1 scales do not fit A0: the first differing block is named with both shapes.
    let a0 = RepOptVggConfig::preset("a0").unwrap();
    let err = VggScales::load(&pth, Some(&a0)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("stage"), "{text}");
    // A truncated copy.
    let dir = temp_dir("pth");
    let bytes = std::fs::read(&pth).unwrap();
    let truncated = dir.join("B1-truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = VggScales::load(&truncated, RepOptVggConfig::preset("b1").as_ref()).unwrap_err();
    assert!(err.to_string().contains("B1-truncated.pth"), "{err}");
    let foreign = dir.join("foreign.pth");
    std::fs::write(&foreign, b"PK\x03\x04 definitely not a checkpoint").unwrap();
    let err = VggScales::load(&foreign, RepOptVggConfig::preset("b1").as_ref()).unwrap_err();
    assert!(err.to_string().contains("foreign.pth"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    // Another architecture's scales: a short line naming what the file holds instead.
    let Some(ghost) = shared_file("official_scales/RepOptGhostNet_0_5x_scales.pth") else {
        return;
    };
    let err = VggScales::load(&ghost, Some(&a0)).unwrap_err().to_string();
    assert!(err.contains("64 tensors: `blocks.0.0.ghost1."), "{err}");
    assert!(err.len() < 400, "{} characters: {err}", err.len());
}
