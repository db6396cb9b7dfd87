//! Import of the official RepOpt-GhostNet scales: the released `RepOptGhostNet_0_5x_scales.pth`
//! and hyper-search checkpoints as the official `main_repopt.py` saves them.

use std::collections::HashMap;
use std::path::Path;

use burn::store::pytorch_reader::{DType as TorchDType, PytorchReader, Tensor as TorchTensor};
use burn::tensor::TensorData;

use super::config::RepOptGhostNetConfig;
use super::rules::GhostNetScales;
use super::scales::GhostScales;
use super::scales_file::{CHEAP_KEY, FUSION_KEY};
use crate::error::{ModelError, Result, file_error};

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
        let reader = open_state_dict(path, &phi_keys)?;
        let tensors = reader.tensors();
        let mut modules = Vec::with_capacity(specs.len());
        for spec in &specs {
            let read = |key: &str| read_vector(path, tensors, key, spec.channels);
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

/// The tensors of `path`: its top level when that holds one of `phi_keys`, else its `model`
/// entry (an official training checkpoint).
fn open_state_dict(path: &Path, phi_keys: &[&str]) -> Result<PytorchReader> {
    let has_scales = |r: &PytorchReader| phi_keys.iter().any(|k| r.get(k).is_some());
    let top = PytorchReader::new(path);
    if let Ok(reader) = &top
        && has_scales(reader)
    {
        return top.map_err(|e| file_error(path, e.to_string()));
    }
    let top_note = match &top {
        Ok(_) => "its top level has no ghost-module scales (`M.fusion_scale.weight`)".to_string(),
        Err(e) => format!("not a readable PyTorch file ({e})"),
    };
    match PytorchReader::with_top_level_key(path, "model") {
        Ok(reader) if has_scales(&reader) => Ok(reader),
        Ok(_) => Err(file_error(
            path,
            format!(
                "{top_note}, and neither has its `model` entry: not scales of this architecture"
            ),
        )),
        Err(e) => Err(file_error(
            path,
            format!("{top_note}, and it has no readable `model` entry (a checkpoint's): {e}"),
        )),
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

/// Tensor `key` as `expected` `f32` values, `None` when absent. The element count is checked
/// before any data is read: the shape comes from the pickle, and a view with stride 0 lets a few
/// bytes of storage stand for gigabytes that `read` would allocate.
fn read_vector(
    path: &Path,
    tensors: &HashMap<String, TorchTensor>,
    key: &str,
    expected: usize,
) -> Result<Option<Vec<f32>>> {
    let Some(tensor) = tensors.get(key) else {
        return Ok(None);
    };
    if tensor.num_elements() != expected {
        return Err(file_error(
            path,
            format!(
                "tensor `{key}` has shape {:?}, the architecture expects [{expected}] \
                 (one scale per channel of the ghost module)",
                tensor.shape()
            ),
        ));
    }
    let dtype = match tensor.dtype() {
        TorchDType::F32 => burn::tensor::DType::F32,
        TorchDType::F64 => burn::tensor::DType::F64,
        other => {
            return Err(file_error(
                path,
                format!("tensor `{key}` has dtype {other:?}, expected a float type"),
            ));
        }
    };
    let bytes = tensor
        .read()
        .map_err(|e| file_error(path, format!("tensor `{key}` is unreadable: {e}")))?;
    if bytes.len() != expected * tensor.dtype().size() {
        return Err(file_error(path, format!("tensor `{key}` is truncated")));
    }
    TensorData::from_bytes_vec(bytes, vec![expected], dtype)
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map(Some)
        .map_err(|e| ModelError::Tensor {
            name: key.into(),
            message: format!("{e:?}"),
        })
}
