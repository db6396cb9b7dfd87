//! What each method trains: the model in its mode, re-initialised or not, and its Grad Mults.

use std::path::Path;

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use repopt_core::{GradMults, UpdateRule};
use repopt_models::ghostnet::{GhostMode, GhostNetScales, RepOptGhostNet, RepOptGhostNetConfig};
use repopt_models::{RepOptVgg, RepOptVggConfig, RepOptVggHandler, ScaleLayer, VggScales};

use crate::config::{Method, OptimizerKind, RunConfig};
use crate::error::{Result, TrainError};

/// The update rule the Grad Mults are made for: power 2 for SGD, 1 for AdamW.
pub fn update_rule(config: &RunConfig) -> UpdateRule {
    match config.optimizer {
        OptimizerKind::Sgd => UpdateRule::Sgd,
        OptimizerKind::Adamw => UpdateRule::AdamW,
    }
}

/// Whether the run must refuse negative scales: AdamW (power-1 Grad Mults) without
/// `--allow-negative-scales`.
fn needs_positive_scales(config: &RunConfig) -> bool {
    config.optimizer == OptimizerKind::Adamw && !config.allow_negative_scales
}

/// How many of `values` are below 0.
fn count_negatives<'a>(values: impl IntoIterator<Item = &'a f32>) -> usize {
    values.into_iter().filter(|v| **v < 0.0).count()
}

/// Of `(name, negative scales)` per unit (block, ghost module), the units with any, in order,
/// and the sum of their counts.
fn negative_units<'a>(
    units: impl Iterator<Item = (&'a str, usize)>,
) -> (Vec<(&'a str, usize)>, usize) {
    let negatives: Vec<(&str, usize)> = units.filter(|(_, n)| *n > 0).collect();
    let total = negatives.iter().map(|(_, n)| n).sum();
    (negatives, total)
}

/// The scales file of a method that needs one (checked when the run was configured).
fn scales_path(config: &RunConfig) -> &Path {
    config
        .scales
        .as_deref()
        .expect("validated: method needs scales")
}

/// What `method` trains of a model's two rules: `reinit-only` the `reinitialized` model without
/// Grad Mults, `mults-only` the `initial` model with `mults`, every other method both.
fn apply_rules<M>(
    method: Method,
    initial: M,
    reinitialized: M,
    mults: GradMults,
) -> (M, GradMults) {
    match method {
        Method::ReinitOnly => (reinitialized, GradMults::new()),
        Method::MultsOnly => (initial, mults),
        _ => (reinitialized, mults),
    }
}

/// Sets `layer`'s weight to the constant `values` on `device`, trainable or not.
fn set_scale(layer: &mut ScaleLayer, values: &[f32], train: bool, device: &Device) {
    let values = Tensor::<1>::from_floats(values, device);
    layer.weight = Param::from_tensor(values).set_require_grad(train);
}

/// With power-1 Grad Mults, AdamW's RepOptimizer follows the CSLA model only when every `s` and
/// `t` is positive (`γ`'s sign does not matter: its mult is 1); refused otherwise unless
/// `--allow-negative-scales`.
fn check_signs_for_adamw(config: &RunConfig, scales: &VggScales) -> Result<()> {
    if !needs_positive_scales(config) {
        return Ok(());
    }
    let (negatives, total) = negative_units(scales.blocks.iter().map(|b| {
        let n = count_negatives(b.conv.iter().chain(&b.conv_1x1));
        (b.spec.name.as_str(), n)
    }));
    let Some((first, n)) = negatives.first() else {
        return Ok(());
    };
    Err(TrainError::Config(format!(
        "--optimizer adamw: {total} of the scales s, t in {} are negative ({n} in block `{first}`, \
         {} blocks in all); with power-1 Grad Mults AdamW follows the multi-branch model only when \
         every scale is positive (docs/optimizers.md). Use --optimizer sgd, or \
         --allow-negative-scales to train anyway",
        scales.source,
        negatives.len()
    )))
}

/// The model of `method` and the Grad Mults (keyed by model path) that train it.
pub fn build_model(
    config: &RunConfig,
    architecture: &RepOptVggConfig,
    device: &Device,
) -> Result<(RepOptVgg, GradMults)> {
    device.seed(config.seed);
    let model = architecture.init(device).with_conv_impl(config.conv_impl());
    let target = architecture
        .clone()
        .with_mode(repopt_models::BlockMode::Target);
    let load_scales =
        || -> Result<VggScales> { Ok(VggScales::load(scales_path(config), Some(&target))?) };
    let rules = |scales: VggScales| -> Result<(RepOptVgg, GradMults)> {
        check_signs_for_adamw(config, &scales)?;
        let handler = RepOptVggHandler::new(scales);
        let reinitialized = handler.reinitialize_model(model.clone())?;
        let mults = handler.grad_mults_for(&reinitialized, update_rule(config), device)?;
        Ok(apply_rules(
            config.method,
            model.clone(),
            reinitialized,
            mults,
        ))
    };
    match config.method {
        Method::Hs | Method::Plain | Method::Repvgg => Ok((model, GradMults::new())),
        Method::RepoptOnes => rules(VggScales::constant(&target, 1.0)),
        Method::Repopt | Method::ReinitOnly | Method::MultsOnly => rules(load_scales()?),
        Method::Csla => {
            let scales = load_scales()?;
            let model = model.try_map_blocks(|mut block| {
                let s = scales.block(&block.spec.name).expect("validated");
                let set = |layer: &mut Option<ScaleLayer>, v: &[f32], train: bool| {
                    if let Some(layer) = layer {
                        set_scale(layer, v, train, device);
                    }
                };
                set(&mut block.scale_conv, &s.conv, false);
                set(&mut block.scale_1x1, &s.conv_1x1, false);
                if let Some(g) = &s.identity {
                    set(&mut block.scale_identity, g, true);
                }
                Ok(block)
            })?;
            Ok((model, GradMults::new()))
        }
    }
}

/// With power-1 Grad Mults (AdamW), the cheap kernels' mults are `ψ` (plus 1 at the centre):
/// AdamW's RepOptimizer follows the CSLA model only when every `ψ` is positive (`φ` only
/// enters the initialisation); refused otherwise unless `--allow-negative-scales`.
fn check_ghostnet_signs_for_adamw(config: &RunConfig, scales: &GhostNetScales) -> Result<()> {
    if !needs_positive_scales(config) {
        return Ok(());
    }
    let (negatives, total) = negative_units(
        scales
            .modules
            .iter()
            .map(|m| (m.module.as_str(), count_negatives(&m.cheap))),
    );
    let Some((first, n)) = negatives.first() else {
        return Ok(());
    };
    Err(TrainError::Config(format!(
        "--optimizer adamw: {total} of the cheap-branch scales ψ in {} are negative ({n} in ghost \
         module `{first}`, {} modules in all); with power-1 Grad Mults AdamW follows the \
         multi-branch model only when every ψ is positive (docs/optimizers.md). Use --optimizer \
         sgd, or --allow-negative-scales to train anyway",
        scales.source,
        negatives.len()
    )))
}

/// The RepOpt-GhostNet of `method` and the Grad Mults (keyed by model path) that train it:
/// `repopt` the target re-initialised from the scales (Rule of Initialization) with the Grad
/// Mults (Rule of Iteration), `plain` the target, `repopt-ones` the rules of `φ = ψ = 1`, `hs`
/// the hyper-search model, `repvgg` the RepGhost baseline, `csla` the CSLA model with the
/// scales' constant `ψ` and trainable `φ`, and the ablations `reinit-only`, `mults-only`.
pub fn build_ghostnet(
    config: &RunConfig,
    architecture: &RepOptGhostNetConfig,
    device: &Device,
) -> Result<(RepOptGhostNet, GradMults)> {
    device.seed(config.seed);
    let model = architecture.init(device)?;
    let target = architecture.clone().with_mode(GhostMode::Target);
    let load_scales =
        || -> Result<GhostNetScales> { Ok(GhostNetScales::load(scales_path(config), &target)?) };
    let rules = |scales: GhostNetScales| -> Result<(RepOptGhostNet, GradMults)> {
        check_ghostnet_signs_for_adamw(config, &scales)?;
        let structure = scales.csla_model(&target)?;
        let reinitialized = structure.reinitialize(model.clone(), device)?;
        let mults = structure.grad_mults(&reinitialized, update_rule(config), device)?;
        Ok(apply_rules(
            config.method,
            model.clone(),
            reinitialized,
            mults,
        ))
    };
    match config.method {
        Method::Hs | Method::Plain | Method::Repvgg => Ok((model, GradMults::new())),
        Method::RepoptOnes => rules(GhostNetScales::constant(&target, 1.0)?),
        Method::Repopt | Method::ReinitOnly | Method::MultsOnly => rules(load_scales()?),
        Method::Csla => {
            let scales = load_scales()?;
            let model = model.try_map_ghost_modules(|mut module| {
                let s = scales.module(&module.spec.path).expect("validated");
                if let Some(phi) = module.fusion_scale.as_mut() {
                    set_scale(phi, &s.fusion, true, device);
                }
                if let Some(repopt_models::ghostnet::Either::Left(psi)) =
                    module.cheap_operation.1.as_mut()
                {
                    set_scale(psi, &s.cheap, false, device);
                }
                Ok(module)
            })?;
            Ok((model, GradMults::new()))
        }
    }
}

/// The weight-decay grouping of a RepOpt-GhostNet run: the official one
/// ([`decays_weight`](repopt_models::ghostnet::decays_weight)), and for `csla` the one under
/// which the CSLA model is equivalent to the target trained with it (`φ` decayed too, as the
/// RepOptimizer decays the identity part of the target's cheap kernel).
pub fn ghostnet_decay(config: &RunConfig) -> fn(&repopt_core::ParamInfo) -> bool {
    match config.method {
        Method::Csla => repopt_models::ghostnet::decays_weight_equivalent_csla,
        _ => repopt_models::ghostnet::decays_weight,
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use repopt_models::ghostnet::Either;

    use super::*;
    use crate::config::ModelKind;

    /// Scales of the small GhostNet with distinct `φ`, `ψ`, saved into `dir`.
    fn scales_file(dir: &std::path::Path, target: &RepOptGhostNetConfig) -> GhostNetScales {
        let mut scales = GhostNetScales::constant(target, 1.0).unwrap();
        for (i, m) in scales.modules.iter_mut().enumerate() {
            m.fusion.iter_mut().for_each(|v| *v = 0.5 + i as f32 * 0.01);
            m.cheap.iter_mut().for_each(|v| *v = 0.8 - i as f32 * 0.01);
        }
        scales.save(&dir.join("scales.safetensors")).unwrap();
        scales
    }

    fn config(method: Method, dir: &std::path::Path) -> RunConfig {
        RunConfig {
            model: ModelKind::Ghostnet,
            method,
            scales: Some(dir.join("scales.safetensors")),
            ..RunConfig::default()
        }
    }

    /// `csla`: the scales' `ψ` constant, their `φ` trainable; `repopt`: Grad Mults on every cheap
    /// kernel and kernels re-initialised; `plain`: neither.
    #[test]
    fn ghostnet_methods_get_their_scales_and_rules() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex().autodiff();
        let target = RepOptGhostNetConfig::small().with_mode(GhostMode::Target);
        let scales = scales_file(dir.path(), &target);

        let csla_arch = target.clone().with_mode(GhostMode::Csla);
        let (csla, mults) =
            build_ghostnet(&config(Method::Csla, dir.path()), &csla_arch, &device).unwrap();
        assert!(mults.is_empty());
        assert_eq!(
            GhostNetScales::from_model(&csla).unwrap().modules,
            scales.modules
        );
        for module in csla.ghost_modules() {
            let Some(Either::Left(psi)) = &module.cheap_operation.1 else {
                panic!("no ψ in {}", module.spec.path);
            };
            let trains = |p: &Param<burn::tensor::Tensor<1>>| p.is_require_grad();
            assert!(!trains(&psi.weight), "ψ trains in {}", module.spec.path);
            assert!(trains(&module.fusion_scale.as_ref().unwrap().weight));
        }

        let (plain, none) =
            build_ghostnet(&config(Method::Plain, dir.path()), &target, &device).unwrap();
        assert!(none.is_empty());
        let (repopt, mults) =
            build_ghostnet(&config(Method::Repopt, dir.path()), &target, &device).unwrap();
        let kernels: Vec<String> = target
            .ghost_modules()
            .unwrap()
            .into_iter()
            .map(|s| s.kernel_path)
            .collect();
        let mut keys: Vec<String> = mults.iter().map(|(k, _)| k.to_string()).collect();
        let mut expected = kernels.clone();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
        // Same seed, same draw: only the re-initialisation tells the two apart.
        let kernel = |m: &RepOptGhostNet| m.ghost_modules()[0].cheap_conv().weight.val();
        assert!(
            !kernel(&plain)
                .equal(kernel(&repopt))
                .all()
                .into_scalar::<bool>()
        );
    }

    /// `csla` decays `φ` (the equivalent grouping); the others follow the official one.
    #[test]
    fn ghostnet_decay_groups() {
        let info = |path: &str| repopt_core::ParamInfo {
            path: path.into(),
            id: burn::module::ParamId::new(),
            shape: vec![8],
        };
        let phi = info("blocks.0.0.ghost1.fusion_scale.weight");
        let dir = std::path::Path::new(".");
        assert!(ghostnet_decay(&config(Method::Csla, dir))(&phi));
        assert!(!ghostnet_decay(&config(Method::Hs, dir))(&phi));
        assert!(!ghostnet_decay(&config(Method::Repopt, dir))(&phi));
    }
}
