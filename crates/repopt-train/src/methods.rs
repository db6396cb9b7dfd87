//! What each method trains: the model in its mode, re-initialised or not, and its Grad Mults.

use burn::tensor::Device;
use repopt_core::{GradMults, UpdateRule};
use repopt_models::{RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales};

use crate::config::{Method, RunConfig};
use crate::error::Result;

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
        let handler = RepOptVggHandler::new(scales);
        let reinitialized = handler.reinitialize_model(model.clone())?;
        let mults = handler.grad_mults_for(&reinitialized, UpdateRule::Sgd, device)?;
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
