//! Named-tensor files (safetensors) and atomic writes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{RepOptError, Result};

fn file_err(path: &Path, message: impl Into<String>) -> RepOptError {
    RepOptError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it is written, synced and renamed
/// over `path`, so a crash never leaves a half-written file and never destroys the old one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| file_err(dir, format!("cannot create folder: {e}")))?;
    let name = path
        .file_name()
        .ok_or_else(|| file_err(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(path, format!("cannot write: {e}")));
    }
    Ok(())
}

/// The tensors of a safetensors file (F32, F64 and I64 are supported) and its `__metadata__`.
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorData>,
    /// The string metadata of the header.
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes).map_err(|message| file_err(path, message))
    }

    /// Parses safetensors bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let metadata = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let tensor = match view.dtype() {
                Dtype::F32 => TensorData::new(le_values(data, f32::from_le_bytes), shape),
                Dtype::F64 => TensorData::new(le_values(data, f64::from_le_bytes), shape),
                Dtype::I64 => TensorData::new(le_values(data, i64::from_le_bytes), shape),
                other => return Err(format!("tensor `{name}` has unsupported dtype {other:?}")),
            };
            tensors.insert(name, tensor);
        }
        Ok(Self { tensors, metadata })
    }

    /// Removes and returns tensor `name`, or an error naming the file and the tensor.
    pub fn take(&mut self, name: &str, path: &Path) -> Result<TensorData> {
        self.tensors
            .remove(name)
            .ok_or_else(|| file_err(path, format!("tensor `{name}` is missing")))
    }

    /// Serializes `tensors` (f32 or i64) with `metadata` and writes them atomically to `path`.
    pub fn write(
        path: &Path,
        tensors: &BTreeMap<String, TensorData>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut views = Vec::with_capacity(tensors.len());
        for (name, data) in tensors {
            let dtype = match data.dtype() {
                DType::F32 => Dtype::F32,
                DType::I64 => Dtype::I64,
                other => {
                    return Err(file_err(
                        path,
                        format!("tensor `{name}`: cannot write dtype {other:?}"),
                    ));
                }
            };
            let view = TensorView::new(dtype, data.shape().to_vec(), data.as_bytes())
                .map_err(|e| file_err(path, format!("tensor `{name}`: {e}")))?;
            views.push((name.clone(), view));
        }
        let metadata: HashMap<String, String> = metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| file_err(path, format!("cannot serialize: {e}")))?;
        write_atomic(path, &bytes)
    }
}

fn le_values<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| from(chunk.try_into().expect("chunk of N bytes")))
        .collect()
}
