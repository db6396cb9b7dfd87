//! Reading scale vectors from official PyTorch files: released scale files (a state dict) and
//! training checkpoints as `main_repopt.py` saves them (`{'model': state_dict, …}`).

use std::collections::HashMap;
use std::path::Path;

use burn::store::pytorch_reader::{DType as TorchDType, PytorchReader, Tensor as TorchTensor};
use burn::tensor::TensorData;

use crate::error::{ModelError, Result, file_error};

/// The state dict of `path`: its top level when that holds one of `probe_keys`, else its
/// `model` entry (an official training checkpoint; the reader also lists that entry's tensors
/// at the top level, prefixed with `model.`, which the exact probe keys do not match).
/// `what` names the scales in errors, e.g. ``ghost-module scales (`M.fusion_scale.weight`)``.
pub(crate) fn open_state_dict(
    path: &Path,
    probe_keys: &[&str],
    what: &str,
) -> Result<PytorchReader> {
    let has_scales = |r: &PytorchReader| probe_keys.iter().any(|k| r.get(k).is_some());
    let top = PytorchReader::new(path);
    if let Ok(reader) = &top
        && has_scales(reader)
    {
        return top.map_err(|e| file_error(path, e.to_string()));
    }
    let top_note = match &top {
        Ok(reader) => format!("its top level has no {what} ({})", some_keys(reader)),
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
        // A readable file without a `model` entry: the reader's error lists every key again.
        Err(_) if top.is_ok() => Err(file_error(
            path,
            format!("{top_note}, and no `model` entry (a checkpoint's)"),
        )),
        Err(e) => Err(file_error(
            path,
            format!("{top_note}, and it has no readable `model` entry (a checkpoint's): {e}"),
        )),
    }
}

/// How many tensors `reader` holds and the first few names, sorted: enough to tell which
/// architecture's file it is without listing hundreds of keys.
fn some_keys(reader: &PytorchReader) -> String {
    const SHOWN: usize = 3;
    let mut keys = reader.keys();
    keys.sort();
    let shown: Vec<String> = keys.iter().take(SHOWN).map(|k| format!("`{k}`")).collect();
    let more = if keys.len() > SHOWN { ", …" } else { "" };
    format!("{} tensors: {}{more}", keys.len(), shown.join(", "))
}

/// Tensor `key` as `expected` `f32` values, `None` when absent; `per` says what one value is
/// for (in the shape error). The element count is checked before any data is read: the shape
/// comes from the pickle, and a view with stride 0 lets a few bytes of storage stand for
/// gigabytes that `read` would allocate.
pub(crate) fn read_vector(
    path: &Path,
    tensors: &HashMap<String, TorchTensor>,
    key: &str,
    expected: usize,
    per: &str,
) -> Result<Option<Vec<f32>>> {
    let Some(tensor) = tensors.get(key) else {
        return Ok(None);
    };
    if tensor.num_elements() != expected {
        return Err(file_error(
            path,
            format!(
                "tensor `{key}` has shape {:?}, the architecture expects [{expected}] ({per})",
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
