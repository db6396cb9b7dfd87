//! `repopt quantize`: post-training int8 quantization of a trained run in its deployed form
//! (target: BN folded into the conv; RepVGG: the three branches fused), calibrated on training
//! images and evaluated on the test images, for every scheme asked for.
//!
//! The arithmetic is [`repopt_models::quant`]'s, simulated in `f32`: the accuracy is that of an
//! int8 kernel with the same scales; the speed is not measured here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};
use burn::module::Module;
use burn::tensor::Device;
use repopt_core::tensor_io::write_atomic;
use repopt_models::quant::{
    ActivationQuant, Calibration, QuantSettings, WeightGranularity, calibrated_range,
};
use repopt_models::{BlockMode, RepOptVgg};
use serde::{Deserialize, Serialize};

use crate::data::{LoaderOptions, eval_loader};
use crate::error::{Result, TrainError, file_error};
use crate::eval::{EvalReport, evaluate_with};
use crate::run_data::open_data;
use crate::run_folder::RunRecord;

/// Values kept per quantization point for calibration (a strided sample beyond that).
const MAX_CALIBRATION_VALUES: usize = 4_000_000;

/// What `repopt quantize` measures.
#[derive(Debug, Clone)]
pub struct QuantizeRequest {
    /// The run folder.
    pub run: PathBuf,
    /// Training images the activation ranges are calibrated on.
    pub calibration_images: usize,
    /// Weight granularities to evaluate.
    pub weights: Vec<WeightGranularity>,
    /// Activation calibrations to evaluate; `None`: activations kept in `f32` (int8 weights
    /// only).
    pub activations: Vec<Option<Calibration>>,
    /// Whether the first block and the classifier are quantized, for each value given.
    pub first_and_last: Vec<bool>,
    /// Evaluate on a random subset of this many test images.
    pub test_limit: Option<usize>,
    /// Also evaluate each layer's int8 weights alone (everything else in `f32`), for every
    /// granularity of `weights`.
    pub per_layer: bool,
    /// The device.
    pub device: Device,
}

/// One scheme's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemeResult {
    /// Weight granularity.
    pub weights: WeightGranularity,
    /// Activation calibration; `None` (`null`): activations kept in `f32`.
    pub activations: Option<Calibration>,
    /// Whether the first block and the classifier are quantized.
    pub first_and_last: bool,
    /// The int8 model's evaluation.
    pub int8: EvalReport,
    /// Top-1 lost against the float model (points).
    pub drop: f64,
}

/// The weight quantization error of one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerSqnr {
    /// Block name, or `linear`.
    pub layer: String,
    /// SQNR with per-channel scales (dB).
    pub per_channel: f64,
    /// SQNR with one scale per tensor (dB).
    pub per_tensor: f64,
}

/// One layer's weights in int8, everything else in `f32`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerDrop {
    /// Block name, or `linear`.
    pub layer: String,
    /// Weight granularity.
    pub weights: WeightGranularity,
    /// Top-1 of the model with this layer's weights quantized (%).
    pub top1: f64,
    /// Top-1 lost against the float model (points).
    pub drop: f64,
}

/// The float model and every scheme.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantizeReport {
    /// The run folder.
    pub run: PathBuf,
    /// The method the run trained.
    pub method: String,
    /// Calibration images used.
    pub calibration_images: usize,
    /// The deployed float model's evaluation.
    pub fp32: EvalReport,
    /// Per layer (forward order) the weight SQNR in dB, per channel and per tensor.
    pub weight_sqnr_db: Vec<LayerSqnr>,
    /// Each scheme.
    pub schemes: Vec<SchemeResult>,
    /// Each layer's int8 weights alone (when asked for), layer by layer in forward order, each
    /// granularity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_layer: Vec<LayerDrop>,
}

/// The run's model in its deployed form, in eval mode.
pub fn deployed(record: &RunRecord, run: &Path, device: &Device) -> Result<RepOptVgg> {
    let conv = crate::config::default_conv(&record.config.device);
    let model = record.load_model(run, device)?.with_conv_impl(conv).valid();
    let deployed = match model.mode() {
        BlockMode::Target => model.fuse_target()?,
        BlockMode::RepVgg => model.fuse_repvgg()?,
        BlockMode::Deploy => model,
        BlockMode::HyperSearch | BlockMode::Csla => model.equivalent_target()?.fuse_target()?,
    };
    Ok(deployed)
}

/// Runs the request: calibrates once per calibration method and evaluates every scheme.
pub fn quantize(request: &QuantizeRequest) -> Result<QuantizeReport> {
    if request.calibration_images == 0 {
        return Err(TrainError::Config(
            "--calibration-images must be at least 1".into(),
        ));
    }
    let record = RunRecord::load(&request.run)?;
    let mut config = record.config.clone();
    config.test_limit = request.test_limit.or(config.test_limit);
    let model = deployed(&record, &request.run, &request.device)?;
    let loaders = Loaders::new(&config, request)?;
    let samples = collect_points(&model, loaders.calibration())?;
    let fp32 = evaluate_with(loaders.test(), |x| model.forward(x))?;
    let schemes = evaluate_schemes(&model, &samples, request, fp32.top1, &loaders)?;
    let per_layer = match request.per_layer {
        true => per_layer_drops(&model, &request.weights, fp32.top1, &loaders)?,
        false => Vec::new(),
    };
    Ok(QuantizeReport {
        run: request.run.clone(),
        weight_sqnr_db: weight_sqnr(&model),
        method: record.config.method_name(),
        calibration_images: loaders.calibration_set.len(),
        fp32,
        schemes,
        per_layer,
    })
}

/// The calibration images (a seeded subset of the training images) and the test images, each
/// loaded afresh with the evaluation transform.
struct Loaders {
    calibration_set: Arc<dyn Dataset<crate::data::ImageItem>>,
    data: crate::run_data::RunData,
    options: LoaderOptions,
    device: Device,
}

type Loader = Arc<dyn burn::data::dataloader::DataLoader<crate::data::ImageBatch>>;

impl Loaders {
    fn new(config: &crate::config::RunConfig, request: &QuantizeRequest) -> Result<Self> {
        let data = open_data(config)?;
        let calibration_set: Arc<dyn Dataset<_>> = Arc::new(PartialDataset::new(
            ShuffledDataset::new(data.train.clone(), config.seed ^ 0xCA1B),
            0,
            request.calibration_images.min(data.train.len()),
        ));
        let options = LoaderOptions {
            batch_size: config.batch_size,
            num_workers: config.workers,
            seed: config.seed,
        };
        let device = request.device.clone();
        Ok(Self {
            calibration_set,
            data,
            options,
            device,
        })
    }

    fn calibration(&self) -> Loader {
        self.load(self.calibration_set.clone())
    }

    fn test(&self) -> Loader {
        self.load(self.data.test.clone())
    }

    fn load(&self, set: impl Dataset<crate::data::ImageItem> + 'static) -> Loader {
        eval_loader(
            set,
            self.data.eval_transform.clone(),
            self.data.normalize.clone(),
            &self.options,
            &self.device,
        )
    }
}

/// Every combination of the request's activation calibrations, weight granularities and
/// first/last settings, evaluated on the test images.
fn evaluate_schemes(
    model: &RepOptVgg,
    samples: &[Vec<f32>],
    request: &QuantizeRequest,
    fp32_top1: f64,
    loaders: &Loaders,
) -> Result<Vec<SchemeResult>> {
    let mut schemes = Vec::new();
    for &activations in &request.activations {
        let grids = activation_grids(samples, activations);
        for &weights in &request.weights {
            for &first_and_last in &request.first_and_last {
                let settings = QuantSettings {
                    weights,
                    first_and_last,
                };
                let quantized = model.clone().with_quantized_weights(settings)?;
                let last = grids.len() - 1;
                let used: Vec<Option<ActivationQuant>> = grids
                    .iter()
                    .enumerate()
                    .map(|(i, g)| g.filter(|_| first_and_last || (i != 0 && i != last)))
                    .collect();
                let int8 =
                    evaluate_with(loaders.test(), |x| quantized.forward_quantized(x, &used))?;
                schemes.push(SchemeResult {
                    weights,
                    activations,
                    first_and_last,
                    drop: fp32_top1 - int8.top1,
                    int8,
                });
            }
        }
    }
    Ok(schemes)
}

/// Each quantization point's grid under `calibration` (`None`: activations kept in `f32`).
fn activation_grids(
    samples: &[Vec<f32>],
    calibration: Option<Calibration>,
) -> Vec<Option<ActivationQuant>> {
    samples
        .iter()
        .map(|values| {
            calibration.map(|calibration| {
                let (lo, hi) = calibrated_range(&mut values.clone(), calibration);
                ActivationQuant::from_range(lo, hi)
            })
        })
        .collect()
}

/// Every layer's weight SQNR, per channel and per tensor.
fn weight_sqnr(model: &RepOptVgg) -> Vec<LayerSqnr> {
    let per_tensor = model.weight_sqnr(WeightGranularity::PerTensor);
    model
        .weight_sqnr(WeightGranularity::PerChannel)
        .into_iter()
        .zip(per_tensor)
        .map(|((layer, per_channel), (_, per_tensor))| LayerSqnr {
            layer,
            per_channel,
            per_tensor,
        })
        .collect()
}

/// Top-1 with one layer's weights in int8 at a time (activations and the other layers in
/// `f32`), for each layer and granularity: where a weights-only drop comes from.
fn per_layer_drops(
    model: &RepOptVgg,
    granularities: &[WeightGranularity],
    fp32_top1: f64,
    loaders: &Loaders,
) -> Result<Vec<LayerDrop>> {
    let mut drops = Vec::new();
    for (index, layer) in model.weight_layers().into_iter().enumerate() {
        for &weights in granularities {
            let quantized = model.clone().with_quantized_layer(index, weights)?;
            let top1 = evaluate_with(loaders.test(), |x| quantized.forward(x))?.top1;
            drops.push(LayerDrop {
                layer: layer.clone(),
                weights,
                top1,
                drop: fp32_top1 - top1,
            });
        }
    }
    Ok(drops)
}

/// The values seen at every quantization point over the calibration images (each point's
/// sample capped at [`MAX_CALIBRATION_VALUES`] by keeping every k-th value of a batch).
fn collect_points(model: &RepOptVgg, loader: Loader) -> Result<Vec<Vec<f32>>> {
    let mut samples: Vec<Vec<f32>> = Vec::new();
    for batch in loader.iter() {
        let batch = batch.map_err(|e| TrainError::Stopped(format!("calibration data: {e}")))?;
        let points = model.quantization_points(batch.images);
        samples.resize_with(points.len(), Vec::new);
        for (sample, point) in samples.iter_mut().zip(points) {
            let values: Vec<f32> = point
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| TrainError::Stopped(format!("calibration values: {e:?}")))?;
            let stride = (sample.len() + values.len())
                .div_ceil(MAX_CALIBRATION_VALUES)
                .max(1);
            sample.extend(values.into_iter().step_by(stride));
        }
    }
    if samples.is_empty() {
        return Err(TrainError::Config("no calibration image".into()));
    }
    Ok(samples)
}

impl QuantizeReport {
    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ({}), calibrated on {} training images; FP32 {}\n\n\
             | weights | activations | first/last | INT8 top-1 (%) | drop (points) |\n\
             |---|---|---|---|---|\n",
            self.run.display(),
            self.method,
            self.calibration_images,
            self.fp32
        );
        for s in &self.schemes {
            out.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:+.2} |\n",
                granularity_name(s.weights),
                match s.activations {
                    Some(Calibration::MinMax) => "min-max".to_string(),
                    Some(Calibration::Percentile(p)) => format!("percentile {p}"),
                    None => "f32".to_string(),
                },
                if s.first_and_last { "int8" } else { "f32" },
                s.int8.top1,
                s.drop
            ));
        }
        let worst = self
            .weight_sqnr_db
            .iter()
            .min_by(|a, b| a.per_tensor.total_cmp(&b.per_tensor));
        if let Some(worst) = worst {
            out.push_str(&format!(
                "\nweight SQNR: lowest per tensor {:.1} dB ({}); per layer in the JSON report\n",
                worst.per_tensor, worst.layer
            ));
        }
        out.push_str(&self.per_layer_table());
        out
    }

    /// The per-layer drops as a Markdown table, a row per layer and a column per granularity;
    /// empty when none were measured.
    fn per_layer_table(&self) -> String {
        let mut columns: Vec<WeightGranularity> = Vec::new();
        for d in &self.per_layer {
            if !columns.contains(&d.weights) {
                columns.push(d.weights);
            }
        }
        if columns.is_empty() {
            return String::new();
        }
        let names: Vec<&str> = columns.iter().map(|&g| granularity_name(g)).collect();
        let mut out = format!(
            "\none layer's weights in int8, the rest and the activations in f32 (drop in points)\n\n\
             | layer | {} |\n|---|{}\n",
            names.join(" | "),
            "---|".repeat(columns.len())
        );
        for row in self.per_layer.chunks(columns.len()) {
            let cells: Vec<String> = row.iter().map(|d| format!("{:+.2}", d.drop)).collect();
            out.push_str(&format!("| {} | {} |\n", row[0].layer, cells.join(" | ")));
        }
        out
    }

    /// Writes the report as JSON to `path`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serializable");
        write_atomic(path, text.as_bytes()).map_err(|e| file_error(path, e))
    }
}

/// A granularity as the tables name it.
fn granularity_name(granularity: WeightGranularity) -> &'static str {
    match granularity {
        WeightGranularity::PerChannel => "per channel",
        WeightGranularity::PerTensor => "per tensor",
    }
}
