//! [`GhostNetScales`] files: this project's safetensors format, and the choice between it and
//! the official `.pth` files by extension.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::TensorData;
use repopt_core::tensor_io::TensorFile;
use serde::{Deserialize, Serialize};

use super::config::RepOptGhostNetConfig;
use super::rules::GhostNetScales;
use super::scales::GhostScales;
use crate::error::{ModelError, Result, file_error};

/// The format tag written into every GhostNet scales file.
pub const GHOSTNET_SCALES_FORMAT: &str = "repopt-ghostnet-scales";
/// The current version of the GhostNet scales file format.
pub const GHOSTNET_SCALES_FORMAT_VERSION: u32 = 1;

/// Suffix of `φ` under a module path, as in the official state dict.
pub(crate) const FUSION_KEY: &str = "fusion_scale.weight";
/// Suffix of `ψ` under a module path, as in the official state dict.
pub(crate) const CHEAP_KEY: &str = "cheap_operation.1.weight";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    /// Module paths, in handler order.
    modules: Vec<String>,
}

impl GhostNetScales {
    /// Writes the scales (atomically) as safetensors: tensors `M.fusion_scale.weight` (`φ`) and
    /// `M.cheap_operation.1.weight` (`ψ`), the official key names, and a `repopt` metadata entry
    /// with the format tag [`GHOSTNET_SCALES_FORMAT`], its version and the module order.
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = Header {
            format: GHOSTNET_SCALES_FORMAT.into(),
            format_version: GHOSTNET_SCALES_FORMAT_VERSION,
            modules: self.modules.iter().map(|m| m.module.clone()).collect(),
        };
        let mut tensors = BTreeMap::new();
        for m in &self.modules {
            let vector = |v: &Vec<f32>| TensorData::new(v.clone(), [v.len()]);
            tensors.insert(format!("{}.{FUSION_KEY}", m.module), vector(&m.fusion));
            tensors.insert(format!("{}.{CHEAP_KEY}", m.module), vector(&m.cheap));
        }
        let json = serde_json::to_string(&header)
            .map_err(|e| file_error(path, format!("cannot encode the header: {e}")))?;
        let metadata = BTreeMap::from([("repopt".to_string(), json)]);
        Ok(TensorFile::write(path, &tensors, &metadata)?)
    }

    /// Reads scales for the architecture `config` and validates them strictly: an official file
    /// (`.pth`, `.pt`, `.tar`: see [`from_official_pth`](Self::from_official_pth)), else one
    /// written by [`save`](Self::save).
    pub fn load(path: &Path, config: &RepOptGhostNetConfig) -> Result<Self> {
        let official = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt" | "tar")
        );
        if official {
            #[cfg(feature = "pth")]
            return Self::from_official_pth(path, config);
            #[cfg(not(feature = "pth"))]
            return Err(file_error(
                path,
                "reading a PyTorch file needs repopt-models' `pth` feature",
            ));
        }
        let scales = Self::read_ours(path)?;
        scales.validate_for(config)?;
        Ok(scales)
    }

    /// Reads a file written by [`save`](Self::save), without checking it against a model.
    fn read_ours(path: &Path) -> Result<Self> {
        let mut file = TensorFile::read(path)?;
        let header = read_header(&file, path)?;
        let mut modules = Vec::with_capacity(header.modules.len());
        for module in header.modules {
            let mut take = |suffix: &str| -> Result<Vec<f32>> {
                let key = format!("{module}.{suffix}");
                let data = file.take(&key, path)?;
                if data.shape().len() != 1 {
                    return Err(file_error(
                        path,
                        format!("tensor `{key}` has shape {:?}, expected [C]", data.shape()),
                    ));
                }
                data.convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| ModelError::Tensor {
                        name: key.clone(),
                        message: format!("{e:?}"),
                    })
            };
            let fusion = take(FUSION_KEY)?;
            let cheap = take(CHEAP_KEY)?;
            modules.push(GhostScales {
                module,
                fusion,
                cheap,
            });
        }
        if let Some(extra) = file.tensors.keys().next() {
            return Err(file_error(
                path,
                format!("tensor `{extra}` belongs to no module of the header"),
            ));
        }
        Ok(Self {
            modules,
            source: path.display().to_string(),
        })
    }
}

fn read_header(file: &TensorFile, path: &Path) -> Result<Header> {
    let json = file.metadata.get("repopt").ok_or_else(|| {
        file_error(
            path,
            format!("not a {GHOSTNET_SCALES_FORMAT} file (no `repopt` header in the metadata)"),
        )
    })?;
    let header: Header = serde_json::from_str(json)
        .map_err(|e| file_error(path, format!("bad scales header: {e}")))?;
    if header.format != GHOSTNET_SCALES_FORMAT {
        return Err(file_error(
            path,
            format!(
                "format is `{}`, expected `{GHOSTNET_SCALES_FORMAT}`",
                header.format
            ),
        ));
    }
    if header.format_version > GHOSTNET_SCALES_FORMAT_VERSION {
        return Err(file_error(
            path,
            format!(
                "format version {} is newer than this build reads \
                 ({GHOSTNET_SCALES_FORMAT_VERSION})",
                header.format_version
            ),
        ));
    }
    Ok(header)
}
