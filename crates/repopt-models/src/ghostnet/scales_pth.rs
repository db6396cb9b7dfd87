//! Import of the official RepOpt-GhostNet scales: the released `RepOptGhostNet_0_5x_scales.pth`
//! and hyper-search checkpoints as the official `main_repopt.py` saves them.

use std::collections::HashMap;
use std::path::Path;

use burn::store::pytorch_reader::Tensor as TorchTensor;

use super::config::RepOptGhostNetConfig;
use super::rules::GhostNetScales;
use super::scales::GhostScales;
use super::scales_file::{CHEAP_KEY, FUSION_KEY};
use crate::error::{ModelError, Result, file_error};
use crate::pth::{open_state_dict, read_vector};

impl GhostNetScales {
    /// Imports official scales for the architecture `config` (e.g. the `repoptghostnet_0_5x`
    /// preset): per ghost module `M`, `φ = M.fusion_scale.weight` and
    /// `ψ = M.cheap_operation.1.weight`, each `[C]`, as in the released file or in a hyper-search
    /// state dict. When the top level has none of the architecture's `φ` keys, the state dict
    /// is read from the checkpoint's `model` entry (`{'model': state_dict, 'optimizer': …}`).
    ///
    /// Strict: every ghost module of `config` present with `C` float values (sizes are checked
    /// before any data is read), no scale of a module `config` does not have (the first one is
    /// named), no NaN or infinity.
    pub fn from_official_pth(path: &Path, config: &RepOptGhostNetConfig) -> Result<Self> {
        if !path.is_file() {
            return Err(file_error(path, "no such file"));
        }
        let specs = config.ghost_modules()?;
        let phi_keys: Vec<&str> = specs.iter().map(|s| s.fusion_scale_path.as_str()).collect();
        let reader = open_state_dict(
            path,
            &phi_keys,
            "ghost-module scales (`M.fusion_scale.weight`)",
        )?;
        let tensors = reader.tensors();
        let mut modules = Vec::with_capacity(specs.len());
        for spec in &specs {
            let per = "one scale per channel of the ghost module";
            let read = |key: &str| read_vector(path, tensors, key, spec.channels, per);
            let (Some(fusion), Some(cheap)) = (
                read(&spec.fusion_scale_path)?,
                read(&spec.cheap_scale_path)?,
            ) else {
                return Err(ModelError::MissingBlock {
                    source_name: path.display().to_string(),
                    block: spec.path.clone(),
                });
            };
            modules.push(GhostScales {
                module: spec.path.clone(),
                fusion,
                cheap,
            });
        }
        let known: Vec<&str> = specs.iter().map(|s| s.path.as_str()).collect();
        if let Some(extra) = first_extra_module(tensors, &known) {
            return Err(ModelError::ExtraBlock {
                source_name: path.display().to_string(),
                block: extra,
            });
        }
        let scales = Self {
            modules,
            source: path.display().to_string(),
        };
        scales.validate_for(config)?;
        Ok(scales)
    }
}

/// The first module (sorted by path) with a `φ` or `ψ` key that is not in `known`.
fn first_extra_module(tensors: &HashMap<String, TorchTensor>, known: &[&str]) -> Option<String> {
    let mut extra: Vec<&str> = tensors
        .keys()
        .filter_map(|key| {
            let module = key
                .strip_suffix(FUSION_KEY)
                .or_else(|| key.strip_suffix(CHEAP_KEY))?
                .strip_suffix('.')?;
            (!known.contains(&module)).then_some(module)
        })
        .collect();
    extra.sort_unstable();
    extra.first().map(|m| m.to_string())
}
