//! Grad Mults and re-initialisation against the official handler, and the official B1 scales.

mod common;

use std::collections::BTreeMap;

use burn::tensor::TensorData;
use common::*;
use repopt_core::UpdateRule;
use repopt_models::weights::load_torch_tensors;
use repopt_models::{BlockScales, RepOptVggConfig, RepOptVggHandler, VggScales};

fn tiny_scales(file: &repopt_core::tensor_io::TensorFile) -> VggScales {
    let config = tiny();
    let blocks = config
        .blocks()
        .into_iter()
        .map(|spec| {
            let get = |k: &str| file.tensors.get(&format!("{k}.{}", spec.name)).map(vec_f32);
            BlockScales {
                conv: get("scale_conv").unwrap(),
                conv_1x1: get("scale_1x1").unwrap(),
                identity: get("scale_identity"),
                spec,
            }
        })
        .collect();
    VggScales {
        architecture: Some(config),
        blocks,
        source: "tiny_handler.safetensors".into(),
    }
}

#[test]
fn tiny_grad_mults_are_exact() {
    let (file, _) = golden("tiny_handler.safetensors");
    let device = device();
    let config = tiny();
    let model = config.init(&device);
    let handler = RepOptVggHandler::new(tiny_scales(&file));
    for (rule, key) in [
        (UpdateRule::Sgd, "mult_sgd"),
        (UpdateRule::AdamW, "mult_adamw"),
    ] {
        let mults = handler.grad_mults_for(&model, rule, &device).unwrap();
        assert_eq!(mults.len(), 7);
        for spec in config.blocks() {
            let expected = &file.tensors[&format!("{key}.{}", spec.name)];
            let mult = mults.get(&spec.kernel_path()).unwrap().to_data();
            assert_eq!(mult.shape(), expected.shape(), "{key} {}", spec.name);
            assert_eq!(vec_f32(&mult), vec_f32(expected), "{key} {}", spec.name);
        }
    }
}

#[test]
fn tiny_reinitialisation_matches() {
    let (file, _) = golden("tiny_handler.safetensors");
    let device = device();
    let config = tiny();
    let kernels: BTreeMap<String, TensorData> = config
        .blocks()
        .iter()
        .map(|s| {
            (
                s.kernel_path(),
                file.tensors[&format!("init3x3.{}", s.name)].clone(),
            )
        })
        .collect();
    let ones_1x1: BTreeMap<String, TensorData> = config
        .blocks()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                file.tensors[&format!("init1x1.{}", s.name)].clone(),
            )
        })
        .collect();
    for (use_gamma, key) in [(true, "reinit"), (false, "reinit_unit_identity")] {
        let model = load_torch_tensors(config.init(&device), &kernels, false).unwrap();
        let handler =
            RepOptVggHandler::new(tiny_scales(&file)).with_identity_scales_for_reinit(use_gamma);
        let model = handler.reinitialize_with_1x1(model, &ones_1x1).unwrap();
        for block in model.blocks() {
            let name = &block.spec.name;
            let expected = file
                .tensors
                .get(&format!("{key}.{name}"))
                .or_else(|| file.tensors.get(&format!("reinit.{name}")))
                .unwrap();
            let actual = block.conv.as_ref().unwrap().weight.val().into_data();
            let diff = max_abs_diff(&actual, expected);
            assert!(diff <= 1e-6, "{key} {name}: max diff {diff:e}");
        }
    }
}

#[test]
fn official_b1_scales_import_and_mults() {
    let Some(pth) = shared_file("official_scales/RepOpt-VGG-B1-scales.pth") else {
        return;
    };
    let (file, _) = golden("b1_grad_mults.safetensors");
    let config = RepOptVggConfig::preset("b1").unwrap();
    let scales = VggScales::load(&pth, Some(&config)).unwrap();
    assert_eq!(scales.blocks.len(), 28);
    let mut vectors = 0;
    for block in &scales.blocks {
        let name = &block.spec.name;
        assert_eq!(
            block.conv,
            vec_f32(&file.tensors[&format!("scale_conv.{name}")])
        );
        assert_eq!(
            block.conv_1x1,
            vec_f32(&file.tensors[&format!("scale_1x1.{name}")])
        );
        vectors += 2;
        match file.tensors.get(&format!("scale_identity.{name}")) {
            Some(expected) => {
                assert_eq!(block.identity.as_ref().unwrap(), &vec_f32(expected));
                vectors += 1;
            }
            None => assert!(block.identity.is_none(), "{name}"),
        }
    }
    assert_eq!(vectors, 79);
    assert!(scales.blocks.iter().flat_map(|b| &b.conv).any(|&v| v < 0.0));

    // The handler's Grad Mults on a real (freshly initialised) B1 target model.
    let device = burn::tensor::Device::flex();
    let model = config.init(&device);
    let handler = RepOptVggHandler::new(scales);
    for (rule, key) in [
        (UpdateRule::Sgd, "mult_sgd"),
        (UpdateRule::AdamW, "mult_adamw"),
    ] {
        let mults = handler.grad_mults_for(&model, rule, &device).unwrap();
        assert_eq!(mults.len(), 28);
        for name in ["stage0", "stage1.0", "stage1.1"] {
            let mult = mults.get(&format!("{name}.conv.weight")).unwrap().to_data();
            let expected = &file.tensors[&format!("{key}.{name}")];
            assert_eq!(mult.shape(), expected.shape());
            assert_eq!(vec_f32(&mult), vec_f32(expected), "{key}.{name}");
        }
    }
}

#[test]
fn every_released_vgg_scales_file_imports_with_its_preset() {
    for (file, preset, blocks) in [
        ("RepOpt-VGG-B2-scales.pth", "b2", 28),
        ("RepOpt-VGG-L1-scales.pth", "l1", 48),
        ("RepOpt-VGG-L2-scales.pth", "l2", 48),
    ] {
        let Some(pth) = shared_file(&format!("official_scales/{file}")) else {
            return;
        };
        let config = RepOptVggConfig::preset(preset).unwrap();
        let scales = VggScales::load(&pth, Some(&config)).unwrap();
        assert_eq!(scales.blocks.len(), blocks, "{file}");
        let identities = config.blocks().iter().filter(|b| b.has_identity()).count();
        assert_eq!(
            scales
                .blocks
                .iter()
                .filter(|b| b.identity.is_some())
                .count(),
            identities,
            "{file}"
        );
        // A file for another architecture is refused, naming a block.
        let other = if preset == "b2" { "l2" } else { "b2" };
        let err = VggScales::load(&pth, RepOptVggConfig::preset(other).as_ref()).unwrap_err();
        assert!(err.to_string().contains("stage"), "{file}: {err}");
    }
}

/// An official hyper-search checkpoint (`{'model': state_dict, …}` as `main_repopt.py` saves
/// it; made from the released B1 file by `tests/fixtures/wrap_checkpoint.py`, without torch)
/// imports the same scales as the released file.
#[test]
fn official_vgg_checkpoints_import_as_scales() {
    let Some(pth) = shared_file("official_scales/RepOpt-VGG-B1-scales.pth") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vgg-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("latest.pth");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrap_checkpoint.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg(&pth)
        .arg(&checkpoint)
        .status()
        .expect("python3 (the standard library only) makes the checkpoint");
    assert!(status.success(), "{}", script.display());
    let config = RepOptVggConfig::preset("b1").unwrap();
    let released = VggScales::load(&pth, Some(&config)).unwrap();
    let imported = VggScales::load(&checkpoint, Some(&config)).unwrap();
    assert_eq!(imported.blocks, released.blocks);
    std::fs::remove_dir_all(&dir).unwrap();
}
