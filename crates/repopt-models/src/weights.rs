//! Loading named tensors into a Burn module by path, e.g. a PyTorch state dict.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use crate::error::{ModelError, Result};

/// How a PyTorch key relates to a Burn parameter path.
///
/// Burn's BatchNorm calls PyTorch's `weight`/`bias` `gamma`/`beta`, and Burn's `Linear` stores
/// its weight as `[in, out]` where PyTorch stores `[out, in]`.
fn torch_key(path: &[(String, String)]) -> (String, bool) {
    let names: Vec<&str> = path.iter().map(|(n, _)| n.as_str()).collect();
    let (leaf, container) = path
        .last()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .unwrap_or(("", ""));
    let parent = &names[..names.len().saturating_sub(1)];
    let join = |leaf: &str| {
        let mut parts = parent.to_vec();
        parts.push(leaf);
        parts.join(".")
    };
    match (container, leaf) {
        ("Struct:BatchNorm", "gamma") => (join("weight"), false),
        ("Struct:BatchNorm", "beta") => (join("bias"), false),
        ("Struct:Linear", "weight") => (join("weight"), true),
        _ => (join(leaf), false),
    }
}

struct Loader<'a> {
    path: Vec<(String, String)>,
    tensors: &'a BTreeMap<String, TensorData>,
    used: BTreeSet<String>,
    missing: Vec<String>,
    error: Option<ModelError>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (key, transpose) = torch_key(&self.path);
        let Some(data) = self.tensors.get(&key) else {
            self.missing.push(key);
            return param;
        };
        self.used.insert(key.clone());
        let (id, old, mapper) = param.consume();
        let mut dims = data.shape().to_vec();
        if transpose {
            dims.reverse();
        }
        if dims != old.dims() {
            let mut found = data.shape().to_vec();
            if transpose {
                found.reverse();
            }
            self.error.get_or_insert(ModelError::Tensor {
                name: key,
                message: format!(
                    "the model expects shape {:?}, the file has {:?}",
                    old.dims(),
                    found
                ),
            });
            return Param::from_mapped_value(id, old, mapper);
        }
        let device = old.device();
        let data = data.clone().convert::<f32>();
        let tensor = if transpose {
            Tensor::<2>::from_data(data, &device)
                .transpose()
                .reshape(old.dims())
        } else {
            Tensor::<D>::from_data(data, &device)
        };
        let tensor = tensor.set_require_grad(old.is_require_grad());
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Loads tensors named as in a PyTorch state dict (BN `weight`/`bias`, `[out, in]` linear
/// weights) into `module`, matching by module path. With `strict`, every parameter and buffer of
/// the module must be given and every given tensor must be used.
pub fn load_torch_tensors<M: Module>(
    module: M,
    tensors: &BTreeMap<String, TensorData>,
    strict: bool,
) -> Result<M> {
    let mut loader = Loader {
        path: Vec::new(),
        tensors,
        used: BTreeSet::new(),
        missing: Vec::new(),
        error: None,
    };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    if strict {
        if let Some(name) = loader.missing.first() {
            return Err(ModelError::Tensor {
                name: name.clone(),
                message: "the model has this parameter, but no tensor was given".into(),
            });
        }
        if let Some(name) = tensors.keys().find(|k| !loader.used.contains(*k)) {
            return Err(ModelError::Tensor {
                name: name.clone(),
                message: "the tensor names no parameter of the model".into(),
            });
        }
    }
    Ok(module)
}
