//! What each method trains: the model in its mode, re-initialised or not, and its Grad Mults.

use burn::tensor::Device;
use repopt_core::{GradMults, UpdateRule};
use repopt_models::{RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales};

use crate::config::{Method, OptimizerKind, RunConfig};
use crate::error::{Result, TrainError};

/// The update rule the Grad Mults are made for: power 2 for SGD, 1 for AdamW.
pub fn update_rule(config: &RunConfig) -> UpdateRule {
    match config.optimizer {
        OptimizerKind::Sgd => UpdateRule::Sgd,
        OptimizerKind::Adamw => UpdateRule::AdamW,
    }
}

/// With power-1 Grad Mults, AdamW's RepOptimizer follows the CSLA model only when every `s` and
/// `t` is positive (`γ`'s sign does not matter: its mult is 1); refused otherwise unless
/// `--allow-negative-scales`.
fn check_signs_for_adamw(config: &RunConfig, scales: &VggScales) -> Result<()> {
    if config.optimizer != OptimizerKind::Adamw || config.allow_negative_scales {
        return Ok(());
    }
    let negatives: Vec<(&str, usize)> = scales
        .blocks
        .iter()
        .map(|b| {
            let n = b
                .conv
                .iter()
                .chain(&b.conv_1x1)
                .filter(|v| **v < 0.0)
                .count();
            (b.spec.name.as_str(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let Some((first, n)) = negatives.first() else {
        return Ok(());
    };
    let total: usize = negatives.iter().map(|(_, n)| n).sum();
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
    let load_scales = || -> Result<VggScales> {
        let path = config
            .scales
            .as_ref()
            .expect("validated: method needs scales");
        Ok(VggScales::load(path, Some(&target))?)
    };
    let rules = |scales: VggScales| -> Result<(RepOptVgg, GradMults)> {
        check_signs_for_adamw(config, &scales)?;
        let handler = RepOptVggHandler::new(scales);
        let reinitialized = handler.reinitialize_model(model.clone())?;
        let mults = handler.grad_mults_for(&reinitialized, update_rule(config), device)?;
        Ok(match config.method {
            Method::ReinitOnly => (reinitialized, GradMults::new()),
            Method::MultsOnly => (model.clone(), mults),
            _ => (reinitialized, mults),
        })
    };
    match config.method {
        Method::Hs | Method::Plain | Method::Repvgg => Ok((model, GradMults::new())),
        Method::RepoptOnes => rules(VggScales::constant(&target, 1.0)),
        Method::Repopt | Method::ReinitOnly | Method::MultsOnly => rules(load_scales()?),
        Method::Csla => {
            let scales = load_scales()?;
            let model = model.try_map_blocks(|mut block| {
                let s = scales.block(&block.spec.name).expect("validated");
                let set = |layer: &mut Option<repopt_models::ScaleLayer>,
                           v: &[f32],
                           train: bool| {
                    if let Some(layer) = layer {
                        let t = burn::tensor::Tensor::<1>::from_floats(v, device);
                        layer.weight = burn::module::Param::from_tensor(t).set_require_grad(train);
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
