//! RepOpt-GhostNet's RepOptimizer rules from `(φ, ψ)` against the official code: the released
//! 0.5× scales and their Grad Mults (file G), the handler rules on the small net (file F), the
//! whole method end to end (file I: CSLA + SGD equals target + RepOptimizer SGD, but only when
//! `φ` is decayed), and the refusal of scales that do not fit the architecture.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use repopt_core::csla::IdentityInit;
use repopt_core::tensor_io::TensorFile;
use repopt_core::{ParamInfo, UpdateRule};
use repopt_models::ModelError;
use repopt_models::ghostnet::{
    GhostMode, GhostNetScales, GhostScales, RepOptGhostNet, RepOptGhostNetConfig, decays_weight,
    decays_weight_equivalent_csla, ghost_conv,
};
use repopt_models::weights::load_torch_tensors;

const RELEASED: &str = "official_scales/RepOptGhostNet_0_5x_scales.pth";
const LR: f64 = 0.05;
const STEPS: usize = 5;

// Tolerances of the file-I checks, each a few times the deviation observed here (Burn `flex`,
// f32) and no looser than the README suggests.
/// Losses: observed ≤ 1.2e-7 (README: atol 1e-5).
const LOSS_ATOL: f32 = 1e-6;
/// Logits per step: observed ≤ 2.9e-6 (step 4 of the target; values up to a few units).
const LOGITS_ATOL: f32 = 1e-5;
/// Final target tensors: observed max |Δ| 7.2e-7 (README: atol 1e-5).
const FINAL_ATOL: f32 = 2e-6;
/// Final target tensors with mean |v| ≥ 1e-4: observed ≤ 3.1e-5, on
/// `blocks.0.0.ghost2.final_bn.running_mean` (mean |v| 2e-3, |Δ| < 1e-7; README: 1e-4).
const FINAL_REL: f64 = 1e-4;
/// Cheap kernels (target, our CSLA's equivalent, stored equivalent) and the CSLA's final W, φ:
/// observed ≤ 8.7e-8 (README: official 8.2e-8, tolerance 1e-5).
const KERNEL_REL: f64 = 1e-6;

fn released_pth() -> PathBuf {
    shared_file(RELEASED).unwrap_or_else(|| panic!("{RELEASED} is required by this test"))
}

fn preset_0_5x() -> RepOptGhostNetConfig {
    RepOptGhostNetConfig::preset("0_5x")
        .expect("preset")
        .with_mode(GhostMode::Target)
}

fn small(mode: GhostMode) -> RepOptGhostNetConfig {
    RepOptGhostNetConfig::small().with_mode(mode)
}

fn bits(data: &TensorData) -> Vec<u32> {
    vec_f32(data).into_iter().map(f32::to_bits).collect()
}

// ---------------------------------------------------------------------------------------------
// File G: the released 0.5× scales
// ---------------------------------------------------------------------------------------------

#[test]
fn released_scales_and_sgd_mults_match_the_official_handler_exactly() {
    let (file, _) = golden("ghostnet_released_mults.safetensors");
    let config = preset_0_5x();
    let scales = GhostNetScales::from_official_pth(&released_pth(), &config).unwrap();
    assert_eq!(scales.modules.len(), 32);
    let stored_scales = with_prefix(&file, "scale");
    assert_eq!(stored_scales.len(), 64);
    let (mut negative_phi, mut negative_psi, mut channels) = (0, 0, 0);
    for (spec, module) in config.ghost_modules().unwrap().iter().zip(&scales.modules) {
        assert_eq!(module.module, spec.path, "handler order");
        let fusion = TensorData::new(module.fusion.clone(), [spec.channels]);
        let cheap = TensorData::new(module.cheap.clone(), [spec.channels]);
        assert_eq!(bits(&fusion), bits(&stored_scales[&spec.fusion_scale_path]));
        assert_eq!(bits(&cheap), bits(&stored_scales[&spec.cheap_scale_path]));
        negative_phi += module.fusion.iter().filter(|v| **v < 0.0).count();
        negative_psi += module.cheap.iter().filter(|v| **v < 0.0).count();
        channels += spec.channels;
    }
    assert_eq!((negative_phi, negative_psi, channels), (7, 10, 2480));
    check_released_ranges(&scales);

    let device = Device::flex();
    let target = config.init(&device).unwrap();
    let mults = scales
        .csla_model(&config)
        .unwrap()
        .grad_mults(&target, UpdateRule::Sgd, &device)
        .unwrap();
    let stored_mults = with_prefix(&file, "mult_sgd");
    assert_eq!(stored_mults.len(), 32);
    let (mut low, mut high) = (f32::MAX, f32::MIN);
    for (kernel, expected) in &stored_mults {
        let ours = mults
            .get(kernel)
            .expect("a mult per cheap kernel")
            .to_data();
        assert_eq!(ours.shape(), expected.shape(), "{kernel}");
        assert_eq!(bits(&ours), bits(expected), "mult_sgd.{kernel}");
        let (l, h) = range(vec_f32(&ours));
        (low, high) = (low.min(l), high.max(h));
    }
    assert!(
        (low - 0.0038).abs() < 5e-5 && (high - 216.1).abs() < 0.05,
        "{low} {high}"
    );
}

/// An official hyper-search checkpoint (`{'model': state_dict, 'optimizer': …, 'epoch': …}` as
/// `main_repopt.py` saves it), made from the released state dict by
/// `tests/fixtures/wrap_checkpoint.py` without torch, imports the same scales.
#[test]
fn official_checkpoints_import_as_scales() {
    let dir = tempfile_dir("ghost-checkpoint");
    let checkpoint = dir.join("latest.pth");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrap_checkpoint.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg(released_pth())
        .arg(&checkpoint)
        .status()
        .expect("python3 (the standard library only) makes the checkpoint");
    assert!(status.success(), "{}", script.display());
    let config = preset_0_5x();
    let released = GhostNetScales::from_official_pth(&released_pth(), &config).unwrap();
    let imported = GhostNetScales::load(&checkpoint, &config).unwrap();
    assert_eq!(imported.modules, released.modules);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(min, max)` of `values`.
fn range(values: impl IntoIterator<Item = f32>) -> (f32, f32) {
    values
        .into_iter()
        .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(v), h.max(v)))
}

/// The ranges the README states for the released scales.
fn check_released_ranges(scales: &GhostNetScales) {
    let (psi_min, psi_max) = range(scales.modules.iter().flat_map(|m| m.cheap.clone()));
    let (phi_min, phi_max) = range(scales.modules.iter().flat_map(|m| m.fusion.clone()));
    assert!((psi_min + 1.70).abs() < 0.005 && (psi_max - 14.67).abs() < 0.005);
    assert!((phi_min + 1.11).abs() < 0.005 && (phi_max - 10.44).abs() < 0.005);
}

// ---------------------------------------------------------------------------------------------
// File F: the handler rules through `GhostNetScales` on the small net
// ---------------------------------------------------------------------------------------------

#[test]
fn small_net_rules_from_scales_match_the_official_handler_exactly() {
    let (file, _) = golden("ghostnet_handler.safetensors");
    let config = small(GhostMode::Target);
    let stored = with_prefix(&file, "scale");
    let specs = config.ghost_modules().unwrap();
    let scales = GhostNetScales {
        modules: specs
            .iter()
            .map(|s| GhostScales {
                module: s.path.clone(),
                fusion: vec_f32(&stored[&s.fusion_scale_path]),
                cheap: vec_f32(&stored[&s.cheap_scale_path]),
            })
            .collect(),
        source: "file F".into(),
    };
    let device = Device::flex();
    let init = with_prefix(&file, "init");
    let target: RepOptGhostNet =
        load_torch_tensors(config.init(&device).unwrap(), &init, false).unwrap();
    let mults = scales
        .csla_model(&config)
        .unwrap()
        .grad_mults(&target, UpdateRule::Sgd, &device)
        .unwrap();
    for (flag, prefix) in [(true, "reinit"), (false, "reinit_unit_identity")] {
        let structure = scales.csla_model_with(&config, flag).unwrap();
        let mut no_branch = |_: &_, _| unreachable!("ghost modules have no branch");
        let reinit = structure
            .reinitialize_with(target.clone(), &mut no_branch)
            .unwrap();
        let kernels = cheap_kernels(&reinit);
        for spec in &specs {
            let expected = &file.tensors[&format!("{prefix}.{}", spec.kernel_path)];
            assert_eq!(
                bits(&kernels[&spec.kernel_path]),
                bits(expected),
                "{prefix}"
            );
        }
    }
    for spec in &specs {
        let expected = &file.tensors[&format!("mult_sgd.{}", spec.kernel_path)];
        let ours = mults.get(&spec.kernel_path).unwrap().to_data();
        assert_eq!(bits(&ours), bits(expected), "mult_sgd.{}", spec.kernel_path);
    }
}

fn cheap_kernels(model: &RepOptGhostNet) -> BTreeMap<String, TensorData> {
    model
        .ghost_modules()
        .into_iter()
        .map(|m| {
            let kernel = m.cheap_conv().weight.val().into_data();
            (m.spec.kernel_path.clone(), kernel)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// File I: CSLA + SGD against target + RepOptimizer SGD
// ---------------------------------------------------------------------------------------------

/// One model's run: per-step losses and logits.
struct Run {
    model: RepOptGhostNet,
    losses: Vec<f32>,
    logits: Vec<TensorData>,
}

fn train(file: &TensorFile, mut model: RepOptGhostNet, optim: &mut ModuleOptimizer) -> Run {
    let device = device();
    let x = Tensor::<4>::from_data(file.tensors["x"].clone(), &device);
    let labels = Tensor::<1, Int>::from_data(file.tensors["labels"].clone(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let (mut losses, mut all_logits) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let logits = model.forward(x.clone());
        all_logits.push(logits.to_data());
        let loss = loss_fn.forward(logits, labels.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(LR, model, grads);
    }
    Run {
        model: model.valid(),
        losses,
        logits: all_logits,
    }
}

/// The CSLA model of file I: `target_init` for every shared tensor, `csla_init` for W, ψ, φ.
fn csla_init(file: &TensorFile) -> RepOptGhostNet {
    let mut tensors = with_prefix(file, "target_init");
    tensors.extend(with_prefix(file, "csla_init"));
    let model = small(GhostMode::Csla).init(&device()).unwrap();
    load_torch_tensors(model, &tensors, true).unwrap()
}

fn train_csla(file: &TensorFile, decays: fn(&ParamInfo) -> bool) -> Run {
    let model = csla_init(file);
    let mut optim = official_sgd(&model, decays);
    train(file, model, &mut optim)
}

fn train_target(file: &TensorFile) -> Run {
    let device = device();
    let target: RepOptGhostNet = load_torch_tensors(
        small(GhostMode::Target).init(&device).unwrap(),
        &with_prefix(file, "target_init"),
        true,
    )
    .unwrap();
    // The Grad Mults come from the CSLA's (φ, ψ), and equal the official ones bit for bit.
    let scales = GhostNetScales::from_model(&csla_init(file)).unwrap();
    let mults = scales
        .csla_model(&small(GhostMode::Target))
        .unwrap()
        .grad_mults(&target, UpdateRule::Sgd, &device)
        .unwrap();
    for (kernel, expected) in with_prefix(file, "mult") {
        let ours = mults.get(&kernel).expect("mult").to_data();
        assert_eq!(bits(&ours), bits(&expected), "mult.{kernel}");
    }
    let mut optim = official_rep_sgd(&target, &mults, decays_weight);
    train(file, target, &mut optim)
}

/// `W_eq = ψ ⊙ W + φ ⊙ I` of every ghost module of a CSLA model.
fn equivalent_kernels(csla: &RepOptGhostNet) -> BTreeMap<String, TensorData> {
    let scales = GhostNetScales::from_model(csla).unwrap();
    let kernels = cheap_kernels(csla);
    csla.ghost_modules()
        .into_iter()
        .zip(&scales.modules)
        .map(|(m, s)| {
            let conv = ghost_conv(&m.spec, s);
            let w = &kernels[&m.spec.kernel_path];
            let eq = conv.equivalent_kernel(w, &[], IdentityInit::Scale).unwrap();
            (m.spec.kernel_path.clone(), eq)
        })
        .collect()
}

/// Largest per-module relative difference between two sets of kernels.
fn worst_rel(ours: &BTreeMap<String, TensorData>, reference: &BTreeMap<String, TensorData>) -> f64 {
    assert_eq!(ours.len(), 12);
    ours.iter()
        .map(|(k, v)| rel_diff(v, &reference[k]))
        .fold(0.0, f64::max)
}

fn check_run(name: &str, run: &Run, file: &TensorFile) -> f32 {
    let losses = vec_f32(&file.tensors[&format!("{name}.loss")]);
    let logits = &file.tensors[&format!("{name}.logits_per_step")];
    let logits = Tensor::<3>::from_data(logits.clone(), &Device::flex());
    assert_eq!(losses.len(), STEPS);
    let mut worst = 0.0f32;
    for (step, (ours, stored)) in run.losses.iter().zip(&losses).enumerate() {
        let loss_gap = (ours - stored).abs();
        assert!(
            loss_gap <= LOSS_ATOL,
            "{name} step {step}: loss gap {loss_gap:e}"
        );
        let expected = logits
            .clone()
            .narrow(0, step, 1)
            .reshape([8, 10])
            .into_data();
        let diff = max_abs_diff(&run.logits[step], &expected);
        assert!(
            diff <= LOGITS_ATOL,
            "{name} step {step}: logits |Δ| {diff:e}"
        );
        worst = worst.max(loss_gap).max(diff);
    }
    worst
}

#[test]
fn csla_with_decayed_phi_and_target_with_repoptimizer_match_the_official_run() {
    let (file, _) = golden("ghostnet_e2e_sgd.safetensors");
    let csla = train_csla(&file, decays_weight_equivalent_csla);
    let target = train_target(&file);
    // Losses and logits of every step, both models, against the official ones.
    let csla_gap = check_run("csla", &csla, &file);
    let target_gap = check_run("target", &target, &file);

    let (worst_abs, worst_rel_big) = check_target_final(&file, &target.model);

    let worst_csla = check_csla_final(&file, &csla.model);
    let stored_equiv = with_prefix(&file, "csla_final_equiv");
    let target_kernels = cheap_kernels(&target.model);
    let ours_equiv = equivalent_kernels(&csla.model);
    let target_vs_stored = worst_rel(&target_kernels, &stored_equiv);
    let csla_vs_stored = worst_rel(&ours_equiv, &stored_equiv);
    let target_vs_csla = worst_rel(&target_kernels, &ours_equiv);
    eprintln!(
        "file I: loss/logit gap csla {csla_gap:e}, target {target_gap:e}; target_final max |Δ| \
         {worst_abs:e}, max rel {worst_rel_big:e}; csla_final rel {worst_csla:e}; kernels rel: \
         target vs stored equiv {target_vs_stored:e}, our CSLA equiv vs stored \
         {csla_vs_stored:e}, target vs our CSLA equiv {target_vs_csla:e}"
    );
    for (what, rel) in [
        ("target vs csla_final_equiv", target_vs_stored),
        ("our CSLA equivalent vs csla_final_equiv", csla_vs_stored),
        ("target vs our CSLA equivalent", target_vs_csla),
    ] {
        assert!(rel <= KERNEL_REL, "{what}: rel {rel:e}");
    }
}

/// Every final target tensor against `target_final`; returns the worst absolute and relative
/// deviations.
fn check_target_final(file: &TensorFile, target: &RepOptGhostNet) -> (f32, f64) {
    // Every tensor of the final target, BN running statistics included: absolute, and relative
    // where mean |v| ≥ 1e-4 (the README's 13 near-zero tensors are rounding noise).
    // Reloaded into a model so that `classifier.weight` has Burn's `[in, out]` layout.
    let reloaded: RepOptGhostNet = load_torch_tensors(
        small(GhostMode::Target).init(&Device::flex()).unwrap(),
        &with_prefix(file, "target_final"),
        true,
    )
    .unwrap();
    let expected = state(&reloaded);
    let actual = state(target);
    assert_eq!(expected.len(), actual.len());
    let (mut worst_abs, mut worst_rel_big) = (0.0f32, 0.0f64);
    for (key, expected) in &expected {
        let abs = max_abs_diff(&actual[key], expected);
        assert!(abs <= FINAL_ATOL, "target_final.{key}: |Δ| {abs:e}");
        let values = vec_f32(expected);
        let mean = values.iter().map(|v| v.abs() as f64).sum::<f64>() / values.len() as f64;
        if mean >= 1e-4 {
            let rel = rel_diff(&actual[key], expected);
            assert!(rel <= FINAL_REL, "target_final.{key}: rel {rel:e}");
            worst_rel_big = worst_rel_big.max(rel);
        }
        worst_abs = worst_abs.max(abs);
    }

    (worst_abs, worst_rel_big)
}

/// The CSLA's W, φ (relative) and ψ (bit for bit) against `csla_final`; returns the worst
/// relative deviation.
fn check_csla_final(file: &TensorFile, csla: &RepOptGhostNet) -> f64 {
    // The CSLA's own tensors (ψ unchanged, bit for bit) and its equivalent kernels.
    let csla_final = with_prefix(file, "csla_final");
    let csla_state = state(csla);
    let mut worst_csla = 0.0f64;
    for (key, expected) in &csla_final {
        if key.ends_with("cheap_operation.1.weight") {
            assert_eq!(bits(&csla_state[key]), bits(expected), "ψ moved: {key}");
        } else {
            let rel = rel_diff(&csla_state[key], expected);
            assert!(rel <= KERNEL_REL, "csla_final.{key}: rel {rel:e}");
            worst_csla = worst_csla.max(rel);
        }
    }
    worst_csla
}

#[test]
fn csla_with_the_official_groups_drifts_from_the_target() {
    let (file, _) = golden("ghostnet_e2e_sgd.safetensors");
    // φ undecayed, as the official `set_weight_decay` leaves it.
    let csla = train_csla(&file, decays_weight);
    let target_final = with_prefix(&file, "target_final");
    let target_kernels = equivalent_kernels(&csla.model)
        .into_keys()
        .map(|k| (k.clone(), target_final[&k].clone()))
        .collect();
    let drift = worst_rel(&equivalent_kernels(&csla.model), &target_kernels);
    eprintln!("file I, official groups: CSLA equivalent vs target kernels, rel {drift:e}");
    // The README: a relative 5.3e-3 on the cheap kernels after 5 steps; observed here 5.33e-3
    // (largest over the 12 modules), against ≤ 1e-5 with φ decayed (the test above).
    assert!((5.0e-3..5.6e-3).contains(&drift), "drift {drift:e}");
}

// ---------------------------------------------------------------------------------------------
// Refusals, files, and the other constructors
// ---------------------------------------------------------------------------------------------

#[test]
fn released_scales_are_refused_for_another_width_naming_the_module() {
    let pth = released_pth();
    let wider = RepOptGhostNetConfig::preset("1_0x").unwrap();
    let error = GhostNetScales::from_official_pth(&pth, &wider).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("blocks.0.0.ghost1.fusion_scale.weight") && text.contains("expects [8]"),
        "{text}"
    );
    // The small net is a prefix of 0.5×, so the first module 0.5× has beyond it is named.
    let error = GhostNetScales::load(&pth, &small(GhostMode::Target)).unwrap_err();
    assert!(error.to_string().contains("blocks."), "{error}");
}

#[test]
fn a_file_without_ghost_scales_is_refused_clearly() {
    let vgg = shared_file("official_scales/RepOpt-VGG-B1-scales.pth").expect("B1 scales");
    let error = GhostNetScales::from_official_pth(&vgg, &preset_0_5x()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("no ghost-module scales") && text.contains("`model` entry"),
        "{text}"
    );
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("repopt-{}-{name}.safetensors", std::process::id()))
}

#[test]
fn missing_extra_and_misshapen_modules_are_named() {
    let config = small(GhostMode::Target);
    let full = GhostNetScales::constant(&config, 1.0).unwrap();
    full.validate_for(&config).unwrap();

    let mut missing = full.clone();
    missing.modules.retain(|m| m.module != "blocks.2.0.ghost2");
    let path = temp("missing");
    missing.save(&path).unwrap();
    let error = GhostNetScales::load(&path, &config).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(
        matches!(&error, ModelError::MissingBlock { block, .. } if block == "blocks.2.0.ghost2"),
        "{error}"
    );

    let mut extra = full.clone();
    extra.modules.push(GhostScales {
        module: "blocks.9.0.ghost1".into(),
        fusion: vec![1.0; 4],
        cheap: vec![1.0; 4],
    });
    let error = extra.csla_model(&config).unwrap_err();
    assert!(error.to_string().contains("blocks.9.0.ghost1"), "{error}");

    let mut short = full;
    short.modules[3].cheap.pop();
    let error = short.validate_for(&config).unwrap_err();
    let module = &short.modules[3].module;
    assert!(
        matches!(&error, ModelError::BlockShape { block, .. } if block == module),
        "{error}"
    );
}

#[test]
fn scales_round_trip_through_our_file_and_come_from_a_model() {
    let config = small(GhostMode::HyperSearch);
    let model = config.init(&Device::flex()).unwrap();
    let scales = GhostNetScales::from_model(&model).unwrap();
    for (spec, module) in config.ghost_modules().unwrap().iter().zip(&scales.modules) {
        assert_eq!(module.fusion, vec![1.0; spec.channels]);
        assert_eq!(
            module.cheap,
            vec![spec.initial_cheap_scale(); spec.channels]
        );
    }
    let path = temp("round-trip");
    scales.save(&path).unwrap();
    let loaded = GhostNetScales::load(&path, &config).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.modules, scales.modules);
    let target = config.with_mode(GhostMode::Target);
    loaded.csla_model(&target).unwrap();
    let target_model = target.init(&Device::flex()).unwrap();
    assert!(matches!(
        GhostNetScales::from_model(&target_model),
        Err(ModelError::WrongMode { .. })
    ));
}
