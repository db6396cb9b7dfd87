//! Shared helpers of the integration tests: the golden files, the shared data folder, the tiny
//! model, comparing tensors, reading a model's state, and the official SGD setup.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use repopt_core::tensor_io::TensorFile;
use repopt_core::{
    GradMults, ParamInfo, RepOptimizerConfig, RepSgdConfig, UpdateRule, param_infos,
};
use repopt_models::{
    BatchNorm2d, RepOptVgg, RepOptVggBlock, RepOptVggConfig, RepOptVggHandler, VggScales,
    decays_weight,
};

/// The golden file `fixtures/golden/<name>` of the project, and its path.
pub fn golden(name: &str) -> (TensorFile, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(name);
    (TensorFile::read(&path).expect("golden fixture"), path)
}

/// `../shared` beside the project root, or `$REPOPT_SHARED`. Data that is not committed (the
/// official `.pth` scales, CIFAR-10) lives there. Returns `None` (after saying so loudly) only
/// when `REPOPT_ALLOW_MISSING_DATA=1`; otherwise a missing file fails the test.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REPOPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join(relative);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "\n!!! MISSING TEST DATA: {} does not exist.\n!!! Set REPOPT_SHARED to the folder that \
         holds `{relative}` (see README.md).\n",
        path.display()
    );
    if std::env::var("REPOPT_ALLOW_MISSING_DATA").as_deref() == Ok("1") {
        eprintln!("{message}!!! REPOPT_ALLOW_MISSING_DATA=1: skipping this check.\n");
        None
    } else {
        panic!("{message}");
    }
}

pub fn device() -> Device {
    Device::flex().autodiff()
}

pub fn tiny() -> RepOptVggConfig {
    RepOptVggConfig::preset("tiny")
        .unwrap()
        .with_num_classes(10)
}

/// `sum|a-b| / sum|b|`, in f64.
pub fn rel_diff(a: &TensorData, b: &TensorData) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.clone().convert::<f64>().try_to_vec::<f64>().unwrap();
    let b = b.clone().convert::<f64>().try_to_vec::<f64>().unwrap();
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    let den: f64 = b.iter().map(|y| y.abs()).sum();
    num / den
}

pub fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
    let b = b.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The tensors whose name starts with `prefix.`, with the prefix removed.
pub fn with_prefix(file: &TensorFile, prefix: &str) -> BTreeMap<String, TensorData> {
    let prefix = format!("{prefix}.");
    file.tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

pub fn vec_f32(data: &TensorData) -> Vec<f32> {
    data.clone().convert::<f32>().try_to_vec().unwrap()
}

/// Every float parameter and buffer of `model` by module path (`stage1.0.bn.running_mean`), as
/// the official state dict names them.
pub fn state<M: Module>(model: &M) -> BTreeMap<String, TensorData> {
    #[derive(Default)]
    struct Collect(Vec<String>, BTreeMap<String, TensorData>);
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.insert(self.0.join("."), param.val().into_data());
        }
    }
    let mut collect = Collect::default();
    model.visit(&mut collect);
    collect.1
}

/// The BNs a RepOpt-VGG block has in its mode, under their PyTorch names (`stage1.0.bn_3x3`).
pub fn block_bns(block: &RepOptVggBlock) -> Vec<(String, &BatchNorm2d)> {
    [
        ("bn", &block.bn),
        ("bn_3x3", &block.bn_3x3),
        ("bn_1x1", &block.bn_1x1),
        ("bn_identity", &block.bn_identity),
    ]
    .into_iter()
    .filter_map(|(name, bn)| {
        bn.as_ref()
            .map(|bn| (format!("{}.{name}", block.spec.name), bn))
    })
    .collect()
}

/// Burn's SGD set up as the official training: Nesterov momentum 0.9, weight decay 1e-3 on the
/// parameters `decays` selects and none on the others (a group of their own).
pub fn official_sgd<M: Module>(model: &M, decays: fn(&ParamInfo) -> bool) -> ModuleOptimizer {
    let momentum = Some(MomentumConfig {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
    });
    let undecayed: Vec<String> = param_infos(model)
        .into_iter()
        .filter(|p| !decays(p))
        .map(|p| p.path)
        .collect();
    SgdConfig::new()
        .with_momentum(momentum.clone())
        .with_weight_decay(Some(WeightDecayConfig { penalty: 1e-3 }))
        .init()
        .with_group(
            ParamGroup::from_paths(undecayed),
            SgdConfig::new().with_momentum(momentum).build(),
            None,
        )
}

/// The RepOptimizer's SGD with the Grad Mults `mults`, set up as the official training: Nesterov
/// momentum 0.9, weight decay 1e-3 on the parameters `decays` selects.
pub fn official_rep_sgd<M: Module>(
    model: &M,
    mults: &GradMults,
    decays: fn(&ParamInfo) -> bool,
) -> ModuleOptimizer {
    RepSgdConfig::new()
        .with_momentum(0.9)
        .with_nesterov(true)
        .with_weight_decay(1e-3)
        .init_with_decay(model, mults, decays)
        .unwrap()
}

/// The two optimizers of GR = CSLA on RepOpt-VGG, as the official training sets them up:
/// `(target's, csla's)`. The target trains with [`official_rep_sgd`], its Grad Mults from the
/// CSLA model's own scales; the CSLA model with Burn's [`official_sgd`].
pub fn vgg_gr_and_csla_sgd(
    target: &RepOptVgg,
    csla: &RepOptVgg,
    device: &Device,
) -> (ModuleOptimizer, ModuleOptimizer) {
    let handler = RepOptVggHandler::new(VggScales::extract(csla).unwrap());
    let mults = handler
        .grad_mults_for(target, UpdateRule::Sgd, device)
        .unwrap();
    (
        official_rep_sgd(target, &mults, decays_weight),
        official_sgd(csla, decays_weight),
    )
}
