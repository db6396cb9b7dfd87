//! Reading the hyper-search scales `(φ, ψ)` of a RepOpt-GhostNet.

use serde::{Deserialize, Serialize};

use super::config::GhostMode;
use super::model::RepOptGhostNet;
use crate::error::{ModelError, Result};

/// The scales of one ghost module, as the official handler's `scales[i] = (φ, ψ)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GhostScales {
    /// Module path (`blocks.i.j.ghostK`).
    pub module: String,
    /// `φ`: the identity branch's scale (`fusion_scale.weight`), one per channel.
    pub fusion: Vec<f32>,
    /// `ψ`: the cheap branch's scale (`cheap_operation.1.weight`), one per channel.
    pub cheap: Vec<f32>,
}

impl RepOptGhostNet {
    /// `(φ, ψ)` of every ghost module of a `HyperSearch` or `Csla` model, in handler order (that
    /// of [`RepOptGhostNetConfig::ghost_modules`](super::RepOptGhostNetConfig::ghost_modules)).
    pub fn scales(&self) -> Result<Vec<GhostScales>> {
        let wrong_mode = || ModelError::WrongMode {
            operation: "reading the ghost modules' scales".into(),
            expected: "hs or csla".into(),
            found: self.mode().to_string(),
        };
        if !matches!(self.mode(), GhostMode::HyperSearch | GhostMode::Csla) {
            return Err(wrong_mode());
        }
        self.ghost_modules()
            .into_iter()
            .map(|module| {
                let (phi, psi) = module.scales().ok_or_else(wrong_mode)?;
                let values = |t: burn::tensor::Tensor<1>, what: &str| {
                    t.into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .map_err(|e| ModelError::Tensor {
                            name: format!("{}.{what}", module.spec.path),
                            message: format!("{e:?}"),
                        })
                };
                Ok(GhostScales {
                    module: module.spec.path.clone(),
                    fusion: values(phi, "fusion_scale.weight")?,
                    cheap: values(psi, "cheap_operation.1.weight")?,
                })
            })
            .collect()
    }
}
