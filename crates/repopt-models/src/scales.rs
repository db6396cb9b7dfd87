//! Hyper-search scales: extraction, a versioned file format, strict validation, and import of
//! the officially released `.pth` files.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::TensorData;
use repopt_core::tensor_io::TensorFile;
use serde::{Deserialize, Serialize};

use crate::config::{BlockMode, BlockSpec, RepOptVggConfig};
use crate::error::{ModelError, Result, file_error};
use crate::model::RepOptVgg;

/// The format tag written into every scales file.
pub const SCALES_FORMAT: &str = "repopt-vgg-scales";
/// The current version of the scales file format.
pub const SCALES_FORMAT_VERSION: u32 = 1;

/// The scales of one block: `s` (3×3 branch), `t` (1×1 branch), `γ` (identity branch).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockScales {
    /// The block's place and shape.
    pub spec: BlockSpec,
    /// `s`, one per output channel.
    pub conv: Vec<f32>,
    /// `t`, one per output channel.
    pub conv_1x1: Vec<f32>,
    /// `γ`, one per output channel, for identity blocks.
    pub identity: Option<Vec<f32>>,
}

/// Summary statistics of one scale vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleStats {
    /// Mean.
    pub mean: f32,
    /// Population standard deviation.
    pub std: f32,
    /// Minimum.
    pub min: f32,
    /// Maximum.
    pub max: f32,
}

impl ScaleStats {
    /// Statistics of `values` (which must not be empty).
    pub fn of(values: &[f32]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        Self {
            mean: mean as f32,
            std: var.sqrt() as f32,
            min: values.iter().copied().fold(f32::INFINITY, f32::min),
            max: values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

/// The scales of every block of a RepOpt-VGG, in forward order, with where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct VggScales {
    /// The architecture they were searched on, when known (files of this crate record it).
    pub architecture: Option<RepOptVggConfig>,
    /// Per-block scales, in forward order.
    pub blocks: Vec<BlockScales>,
    /// A human-readable origin (a file path, `extracted`, …), used in error messages.
    pub source: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    architecture: Option<RepOptVggConfig>,
    blocks: Vec<BlockSpec>,
}

fn to_vec(data: TensorData, name: &str) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::Tensor {
            name: name.into(),
            message: format!("{e:?}"),
        })
}

impl VggScales {
    /// The scales of a `HyperSearch` or `Csla` model.
    pub fn extract(model: &RepOptVgg) -> Result<Self> {
        if !matches!(model.mode(), BlockMode::HyperSearch | BlockMode::Csla) {
            return Err(ModelError::WrongMode {
                operation: "scale extraction".into(),
                expected: "hs or csla".into(),
                found: model.mode().to_string(),
            });
        }
        let blocks = model
            .blocks()
            .into_iter()
            .map(|block| BlockScales {
                spec: block.spec.clone(),
                conv: block.scale_conv.as_ref().expect("CSLA block").values(),
                conv_1x1: block.scale_1x1.as_ref().expect("CSLA block").values(),
                identity: block.scale_identity.as_ref().map(|g| g.values()),
            })
            .collect();
        let mut architecture = model.config.clone();
        architecture.mode = BlockMode::Target;
        Ok(Self {
            architecture: Some(architecture),
            blocks,
            source: "extracted from the hyper-search model".into(),
        })
    }

    /// Scales that make every block a plain sum: `s = t = γ = 1` (the paper's ablation).
    pub fn constant(config: &RepOptVggConfig, value: f32) -> Self {
        let blocks = config
            .blocks()
            .into_iter()
            .map(|spec| BlockScales {
                conv: vec![value; spec.out_channels],
                conv_1x1: vec![value; spec.out_channels],
                identity: spec.has_identity().then(|| vec![value; spec.out_channels]),
                spec,
            })
            .collect();
        let mut architecture = config.clone();
        architecture.mode = BlockMode::Target;
        Self {
            architecture: Some(architecture),
            blocks,
            source: format!("constant {value}"),
        }
    }

    /// The scales of block `name`.
    pub fn block(&self, name: &str) -> Option<&BlockScales> {
        self.blocks.iter().find(|b| b.spec.name == name)
    }

    /// Strict check against an architecture: the same blocks (no missing, no extra), each with
    /// the model's channel counts and scale lengths, and an identity scale exactly where the model
    /// has an identity branch. Errors name the block and both shapes.
    pub fn validate_for(&self, config: &RepOptVggConfig) -> Result<()> {
        let specs = config.blocks();
        for spec in &specs {
            let Some(scales) = self.block(&spec.name) else {
                return Err(ModelError::MissingBlock {
                    source_name: self.source.clone(),
                    block: spec.name.clone(),
                });
            };
            let block = spec.name.clone();
            let shape_err = |what: &str, expected: Vec<usize>, found: Vec<usize>| {
                Err(ModelError::BlockShape {
                    block: block.clone(),
                    what: what.into(),
                    expected,
                    found,
                })
            };
            let kernel = |s: &BlockSpec| vec![s.out_channels, s.in_channels, 3, 3];
            if (scales.spec.in_channels, scales.spec.out_channels)
                != (spec.in_channels, spec.out_channels)
            {
                return shape_err("3x3 kernel", kernel(spec), kernel(&scales.spec));
            }
            let out = spec.out_channels;
            if scales.conv.len() != out {
                return shape_err("scale_conv", vec![out], vec![scales.conv.len()]);
            }
            if scales.conv_1x1.len() != out {
                return shape_err("scale_1x1", vec![out], vec![scales.conv_1x1.len()]);
            }
            match (&scales.identity, spec.has_identity()) {
                (Some(g), true) if g.len() != out => {
                    return shape_err("scale_identity", vec![out], vec![g.len()]);
                }
                (Some(g), false) => return shape_err("scale_identity", vec![], vec![g.len()]),
                (None, true) => return shape_err("scale_identity", vec![out], vec![]),
                _ => {}
            }
            let values = scales
                .conv
                .iter()
                .chain(&scales.conv_1x1)
                .chain(scales.identity.iter().flatten());
            if values.clone().any(|v| !v.is_finite()) {
                return Err(ModelError::Tensor {
                    name: format!("{}.scales", spec.name),
                    message: "contains NaN or infinity".into(),
                });
            }
        }
        if let Some(extra) = self
            .blocks
            .iter()
            .find(|b| !specs.iter().any(|s| s.name == b.spec.name))
        {
            return Err(ModelError::ExtraBlock {
                source_name: self.source.clone(),
                block: extra.spec.name.clone(),
            });
        }
        Ok(())
    }

    /// Writes the scales as a self-describing safetensors file (atomically): tensors
    /// `<block>.scale_conv`, `<block>.scale_1x1`, `<block>.scale_identity`, and a header with the
    /// format tag and version, the architecture and every block's path, channels and stride.
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = Header {
            format: SCALES_FORMAT.into(),
            format_version: SCALES_FORMAT_VERSION,
            architecture: self.architecture.clone(),
            blocks: self.blocks.iter().map(|b| b.spec.clone()).collect(),
        };
        let mut tensors = BTreeMap::new();
        for block in &self.blocks {
            let name = &block.spec.name;
            let vector = |v: &Vec<f32>| TensorData::new(v.clone(), [v.len()]);
            tensors.insert(format!("{name}.scale_conv"), vector(&block.conv));
            tensors.insert(format!("{name}.scale_1x1"), vector(&block.conv_1x1));
            if let Some(g) = &block.identity {
                tensors.insert(format!("{name}.scale_identity"), vector(g));
            }
        }
        let json = serde_json::to_string(&header).expect("header serializes");
        let metadata = BTreeMap::from([("repopt".to_string(), json)]);
        Ok(TensorFile::write(path, &tensors, &metadata)?)
    }

    /// Reads a scales file: ours (`.safetensors`, see [`save`](Self::save)) or an official
    /// released `.pth` (then `config` gives the architecture, e.g. the B1 preset).
    pub fn load(path: &Path, config: Option<&RepOptVggConfig>) -> Result<Self> {
        let is_pth = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt")
        );
        if is_pth {
            let config = config.ok_or_else(|| {
                file_error(path, "a .pth scales file needs the architecture (a preset)")
            })?;
            #[cfg(feature = "pth")]
            return Self::from_official_pth(path, config);
            #[cfg(not(feature = "pth"))]
            {
                let _ = config;
                return Err(file_error(
                    path,
                    "reading a .pth file needs repopt-models' `pth` feature",
                ));
            }
        }
        let mut file = TensorFile::read(path)?;
        let json = file.metadata.get("repopt").ok_or_else(|| {
            file_error(
                path,
                format!("not a {SCALES_FORMAT} file (no `repopt` header in the metadata)"),
            )
        })?;
        let header: Header = serde_json::from_str(json)
            .map_err(|e| file_error(path, format!("bad scales header: {e}")))?;
        if header.format != SCALES_FORMAT {
            return Err(file_error(
                path,
                format!("format is `{}`, expected `{SCALES_FORMAT}`", header.format),
            ));
        }
        if header.format_version > SCALES_FORMAT_VERSION {
            return Err(file_error(
                path,
                format!(
                    "format version {} is newer than this build reads ({SCALES_FORMAT_VERSION})",
                    header.format_version
                ),
            ));
        }
        let mut blocks = Vec::with_capacity(header.blocks.len());
        for spec in header.blocks {
            let name = spec.name.clone();
            let has_identity = file.tensors.contains_key(&format!("{name}.scale_identity"));
            let mut take = |suffix: &str| -> Result<Vec<f32>> {
                let key = format!("{name}.{suffix}");
                to_vec(file.take(&key, path)?, &key)
            };
            let conv = take("scale_conv")?;
            let conv_1x1 = take("scale_1x1")?;
            let identity = if has_identity {
                Some(take("scale_identity")?)
            } else {
                None
            };
            blocks.push(BlockScales {
                spec,
                conv,
                conv_1x1,
                identity,
            });
        }
        if let Some(extra) = file.tensors.keys().next() {
            return Err(file_error(
                path,
                format!("tensor `{extra}` belongs to no block of the header"),
            ));
        }
        let scales = Self {
            architecture: header.architecture,
            blocks,
            source: path.display().to_string(),
        };
        if let Some(config) = config {
            scales.validate_for(config)?;
        }
        Ok(scales)
    }

    /// Imports an officially released scales file (`RepOpt-VGG-B1-scales.pth`, …) or an official
    /// hyper-search checkpoint (`{'model': state_dict, …}` as `main_repopt.py` saves it) with the
    /// architecture `config`: keys `<block>.scale_conv.weight`, `<block>.scale_1x1.weight` and
    /// `<block>.scale_identity.weight`. Validated strictly against `config`.
    #[cfg(feature = "pth")]
    pub fn from_official_pth(path: &Path, config: &RepOptVggConfig) -> Result<Self> {
        if !path.is_file() {
            return Err(file_error(path, "no such file"));
        }
        let probe = ["stage0.scale_conv.weight"];
        let what = "RepOpt-VGG scales (`stage0.scale_conv.weight`)";
        let reader = crate::pth::open_state_dict(path, &probe, what)?;
        let tensors = reader.tensors();
        let read = |key: &str, expected: usize| {
            crate::pth::read_vector(path, tensors, key, expected, "one scale per output channel")
        };
        let mut blocks = Vec::new();
        for spec in config.blocks() {
            let name = spec.name.clone();
            let out = spec.out_channels;
            let (Some(conv), Some(conv_1x1)) = (
                read(&format!("{name}.scale_conv.weight"), out)?,
                read(&format!("{name}.scale_1x1.weight"), out)?,
            ) else {
                return Err(ModelError::MissingBlock {
                    source_name: path.display().to_string(),
                    block: name,
                });
            };
            let identity = read(&format!("{name}.scale_identity.weight"), out)?;
            blocks.push(BlockScales {
                spec,
                conv,
                conv_1x1,
                identity,
            });
        }
        let known: Vec<String> = config.blocks().into_iter().map(|s| s.name).collect();
        if let Some(extra) = tensors.keys().find_map(|key| {
            let block = key.rsplit_once(".scale_")?.0;
            (!known.iter().any(|k| k == block)).then(|| block.to_string())
        }) {
            return Err(ModelError::ExtraBlock {
                source_name: path.display().to_string(),
                block: extra,
            });
        }
        let mut architecture = config.clone();
        architecture.mode = BlockMode::Target;
        let scales = Self {
            architecture: Some(architecture),
            blocks,
            source: path.display().to_string(),
        };
        scales.validate_for(config)?;
        Ok(scales)
    }
}
