//! A run folder: its files, its record (`run.json`), its outcome, and loading the models and
//! checkpoints it holds.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use repopt_core::tensor_io::write_atomic;
use repopt_models::ghostnet::{RepOptGhostNet, RepOptGhostNetConfig};
use repopt_models::{RepOptVgg, RepOptVggConfig};
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, Network};
use crate::config::{ModelKind, RunConfig};
use crate::error::{Result, TrainError, file_error};
use crate::eval::EvalReport;

/// What a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The output folder.
    pub dir: PathBuf,
    /// The trained model (burnpack).
    pub model: PathBuf,
    /// The extracted scales (hyper-search only).
    pub scales: Option<PathBuf>,
    /// Per-epoch metrics.
    pub metrics_csv: PathBuf,
    /// The training log.
    pub log: PathBuf,
    /// Epochs completed in this invocation.
    pub epochs_run: usize,
    /// Mean wall time of a training epoch (training and validation), seconds.
    pub seconds_per_epoch: f64,
    /// Final evaluation on the test split.
    pub test: EvalReport,
    /// Images skipped as unreadable.
    pub skipped_images: usize,
    /// Peak resident memory of the process (Linux), bytes.
    pub peak_memory_bytes: Option<u64>,
}

/// File names inside a run folder.
pub mod files {
    /// The run's settings and architecture.
    pub const RUN: &str = "run.json";
    /// The trained model.
    pub const MODEL: &str = "model.bpk";
    /// Scales extracted from a hyper-search model.
    pub const SCALES: &str = "scales.safetensors";
    /// The scales a hyper-search started from.
    pub const INITIAL_SCALES: &str = "scales-initial.safetensors";
    /// Per-epoch metrics.
    pub const METRICS: &str = "metrics.csv";
    /// The outcome summary.
    pub const OUTCOME: &str = "outcome.json";
    /// Checkpoints.
    pub const CHECKPOINTS: &str = "checkpoint";
    /// Burn's experiment log.
    pub const LOG: &str = "experiment.log";
    /// Where the model of a run folder written by `repopt eval --save-run` came from.
    pub const DERIVED: &str = "derived.json";
}

/// The settings and architecture a run folder was trained with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's settings.
    pub config: RunConfig,
    /// The architecture (mode included).
    pub architecture: RepOptVggConfig,
}

/// The text of `<dir>/run.json`, its path, and the network family it records (VGG when the
/// record predates the setting or cannot be read as JSON).
fn read_run_json(dir: &Path) -> Result<(PathBuf, String, ModelKind)> {
    let path = dir.join(files::RUN);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        file_error(
            &path,
            format!("{e} (is this a run folder made by `repopt`?)"),
        )
    })?;
    let model = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("config")?.get("model").cloned())
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    Ok((path, text, model))
}

/// The settings of the run folder `dir`, whatever its network.
pub fn load_run_config(dir: &Path) -> Result<RunConfig> {
    match read_run_json(dir)?.2 {
        ModelKind::Vgg => Ok(RunRecord::load(dir)?.config),
        ModelKind::Ghostnet => Ok(GhostRunRecord::load(dir)?.config),
    }
}

/// The network family of the run folder `dir`.
pub fn run_model_kind(dir: &Path) -> Result<ModelKind> {
    Ok(read_run_json(dir)?.2)
}

impl RunRecord {
    /// Reads `<dir>/run.json` of a RepOpt-VGG run; a RepOpt-GhostNet run is refused (the
    /// commands that read this record support RepOpt-VGG runs only).
    pub fn load(dir: &Path) -> Result<Self> {
        let (path, text, model) = read_run_json(dir)?;
        if model == ModelKind::Ghostnet {
            return Err(TrainError::Config(format!(
                "{} is a RepOpt-GhostNet run; this command supports RepOpt-VGG runs only",
                dir.display()
            )));
        }
        serde_json::from_str(&text).map_err(|e| file_error(&path, format!("bad run record: {e}")))
    }

    /// The trained model of run folder `dir` on `device`.
    pub fn load_model(&self, dir: &Path, device: &Device) -> Result<RepOptVgg> {
        load_model_file(&dir.join(files::MODEL), &self.architecture, device)
    }
}

/// The settings and architecture of a RepOpt-GhostNet run (`run.json`, the same layout as
/// [`RunRecord`], `config.model` = `ghostnet`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GhostRunRecord {
    /// The run's settings.
    pub config: RunConfig,
    /// The architecture (mode included).
    pub architecture: RepOptGhostNetConfig,
}

impl GhostRunRecord {
    /// Reads `<dir>/run.json` of a RepOpt-GhostNet run.
    pub fn load(dir: &Path) -> Result<Self> {
        let (path, text, model) = read_run_json(dir)?;
        if model != ModelKind::Ghostnet {
            return Err(file_error(&path, "not a RepOpt-GhostNet run"));
        }
        serde_json::from_str(&text).map_err(|e| file_error(&path, format!("bad run record: {e}")))
    }

    /// The trained model of run folder `dir` on `device`.
    pub fn load_model(&self, dir: &Path, device: &Device) -> Result<RepOptGhostNet> {
        load_ghostnet_file(&dir.join(files::MODEL), &self.architecture, device)
    }
}

/// Loads a RepOpt-GhostNet saved by a run.
pub fn load_ghostnet_file(
    path: &Path,
    architecture: &RepOptGhostNetConfig,
    device: &Device,
) -> Result<RepOptGhostNet> {
    load_into(path, architecture.init(device)?)
}

/// Loads the RepOpt-GhostNet of a training checkpoint (the Learner saves the [`Classifier`]).
pub fn load_ghostnet_checkpoint(
    path: &Path,
    architecture: &RepOptGhostNetConfig,
    device: &Device,
) -> Result<RepOptGhostNet> {
    load_checkpoint_into(path, architecture.init(device)?)
}

/// The epoch with the highest test top-1 in the run folder's `metrics.csv` (the first of equals).
pub fn best_epoch(dir: &Path) -> Result<usize> {
    let path = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = header
        .iter()
        .position(|c| *c == "valid_top1")
        .ok_or_else(|| file_error(&path, "no valid_top1 column"))?;
    let mut best: Option<(usize, f64)> = None;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let (Some(epoch), Some(top1)) = (
            cells.first().and_then(|c| c.parse::<usize>().ok()),
            cells.get(column).and_then(|c| c.parse::<f64>().ok()),
        ) else {
            return Err(file_error(&path, format!("bad row `{line}`")));
        };
        if best.is_none_or(|(_, b)| top1 > b) {
            best = Some((epoch, top1));
        }
    }
    best.map(|(epoch, _)| epoch)
        .ok_or_else(|| file_error(&path, "no epoch recorded"))
}

/// Loads a model saved by a run, with a clear error for a missing, truncated or foreign file.
pub fn load_model_file(
    path: &Path,
    architecture: &RepOptVggConfig,
    device: &Device,
) -> Result<RepOptVgg> {
    load_into(path, architecture.init(device))
}

/// Loads the model of a training checkpoint (the Learner saves the [`Classifier`]).
pub fn load_checkpoint_model(
    path: &Path,
    architecture: &RepOptVggConfig,
    device: &Device,
) -> Result<RepOptVgg> {
    load_checkpoint_into(path, architecture.init(device))
}

/// The record at `path`, cast to the module's dtypes: a record whose float tensors claim another
/// dtype (a damaged file, or one saved in f16) loads or fails cleanly instead of panicking
/// inside Burn.
fn read_record(path: &Path, what: &str) -> Result<ModuleRecord> {
    Ok(ModuleRecord::load(path)
        .map_err(|e| file_error(path, format!("not a readable {what}: {e}")))?
        .cast_to_module_dtype())
}

/// `module` with the model file at `path` loaded into it; a training checkpoint's model (the
/// [`Classifier`] record) is taken as well.
fn load_into<M: Network>(path: &Path, module: M) -> Result<M> {
    if !path.is_file() {
        return Err(file_error(path, "no such model file"));
    }
    let record = read_record(path, "model file")?;
    module
        .clone()
        .try_load_record(record)
        .or_else(|e| load_checkpoint_into(path, module).map_err(|_| e))
        .map_err(|e| {
            file_error(
                path,
                format!("does not fit the architecture: {}", brief(&e)),
            )
        })
}

/// Characters of a record error kept in a message (Burn lists every tensor it misses).
const ERROR_CHARS: usize = 300;

/// `error`'s message, cut after [`ERROR_CHARS`] characters.
fn brief(error: &impl std::fmt::Display) -> String {
    let message = error.to_string();
    let total = message.chars().count();
    match total > ERROR_CHARS {
        true => {
            let kept: String = message.chars().take(ERROR_CHARS).collect();
            format!("{kept}… ({} more characters)", total - ERROR_CHARS)
        }
        false => message,
    }
}

/// `model` with the model of the training checkpoint at `path` loaded into it.
fn load_checkpoint_into<M: Network>(path: &Path, model: M) -> Result<M> {
    Classifier::new(model, 0.0)
        .try_load_record(read_record(path, "checkpoint")?)
        .map(|classifier| classifier.model)
        .map_err(|e| {
            file_error(
                path,
                format!("does not fit the architecture: {}", brief(&e)),
            )
        })
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    write_atomic(path, text.as_bytes()).map_err(|e| file_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(width: f32) -> RepOptVggConfig {
        let mut config = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10);
        config.width_multiplier = [width; 4];
        config
    }

    fn write(path: &Path, module: impl Module) {
        std::fs::write(path, &*module.into_record().into_bytes().unwrap()).unwrap();
    }

    fn kernel(model: &RepOptVgg) -> Vec<f32> {
        let conv = model.blocks()[1].conv.as_ref().unwrap().weight.val();
        conv.into_data().try_into_vec::<f32>().unwrap()
    }

    /// A training checkpoint (the Classifier's record) given as a model file loads its model; a
    /// model of another architecture fails with a message that names the file and stays short
    /// although Burn lists every missing tensor.
    #[test]
    fn a_checkpoint_loads_as_a_model_file_and_a_mismatch_is_brief() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let config = tiny(0.25);
        let model = config.init(&device);
        let checkpoint = dir.path().join("model-7.bpk");
        write(&checkpoint, Classifier::new(model.clone(), 0.0));
        let loaded = load_model_file(&checkpoint, &config, &device).unwrap();
        assert_eq!(kernel(&loaded), kernel(&model));

        let foreign = dir.path().join("foreign.bpk");
        write(&foreign, tiny(0.5).init(&device));
        let as_model = load_model_file(&foreign, &config, &device).unwrap_err();
        let as_checkpoint = load_checkpoint_model(&foreign, &config, &device).unwrap_err();
        for error in [as_model, as_checkpoint].map(|e| e.to_string()) {
            assert!(error.contains("foreign.bpk") && error.contains("does not fit"));
            assert!(error.chars().count() < ERROR_CHARS + 200, "{error}");
        }
    }
}
