//! `repopt export`: a trained run's model in its deployed form (target: each BN folded into its
//! conv; RepVGG: the three branches fused), as a burnpack with a JSON card beside it that says
//! how to build and feed it. What an application loads to classify images: no multi-branch
//! model, no conversion.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use repopt_core::tensor_io::write_atomic;
use repopt_models::{RepOptVgg, RepOptVggConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, file_error};
use crate::eval::EvalReport;
use crate::run_data::open_data;
use crate::run_folder::{RunRecord, load_model_file};

/// What an application needs to know about an exported model (`<model>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The deployed architecture (mode `Deploy`).
    pub architecture: RepOptVggConfig,
    /// Class names, by label.
    pub classes: Vec<String>,
    /// Side of the square input, pixels.
    pub image_size: usize,
    /// Per-channel mean subtracted from `[0, 1]` pixel values (one value: all channels).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation the centred values are divided by.
    pub std: Vec<f32>,
    /// The method the run trained.
    pub method: String,
    /// The run folder it was exported from.
    pub source_run: PathBuf,
    /// The run's final test evaluation (or, for a folder written by `repopt eval --save-run`,
    /// the saved model's), when it recorded one.
    pub test: Option<EvalReport>,
}

/// The card file beside model file `model`: the same name with `.json`.
pub fn card_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

/// Writes the deployed model of run `run` to `out` and its card beside it.
pub fn export(run: &Path, out: &Path) -> Result<ModelCard> {
    let record = RunRecord::load(run)?;
    let device = Device::flex();
    let model = crate::quantize::deployed(&record, run, &device)?;
    let data = open_data(&record.config)?;
    let test = crate::derived_run::recorded_test(run);
    let card = ModelCard {
        architecture: model.config.clone(),
        classes: data.class_names,
        image_size: record.config.image_size,
        mean: data.normalize.mean.clone(),
        std: data.normalize.std.clone(),
        method: record.config.method_name(),
        source_run: run.to_path_buf(),
        test,
    };
    let bytes = model
        .into_record()
        .into_bytes()
        .map_err(|e| file_error(out, e))?;
    write_atomic(out, &bytes).map_err(|e| file_error(out, e))?;
    let card_file = card_path(out);
    let text = serde_json::to_string_pretty(&card).expect("serializable");
    write_atomic(&card_file, text.as_bytes()).map_err(|e| file_error(&card_file, e))?;
    Ok(card)
}

/// Loads an exported model and its card.
pub fn load(model: &Path, device: &Device) -> Result<(ModelCard, RepOptVgg)> {
    let card_file = card_path(model);
    let text = std::fs::read_to_string(&card_file).map_err(|e| file_error(&card_file, e))?;
    let card: ModelCard = serde_json::from_str(&text)
        .map_err(|e| file_error(&card_file, format!("not a model card: {e}")))?;
    let loaded = load_model_file(model, &card.architecture, device)?;
    Ok((card, loaded))
}
