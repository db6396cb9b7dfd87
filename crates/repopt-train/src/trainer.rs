//! One training run with Burn's Learner: data, model and rules for the chosen method, the
//! RepOptimizer, warm-up + cosine schedule, metrics, atomic checkpoints, resume and artifacts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{
    AsyncCheckpointer, ComposedCheckpointingStrategy, KeepLastNCheckpoints,
    MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::{Interrupter, Learner, LearnerSummary, SupervisedTraining};
use repopt_core::tensor_io::write_atomic;
use repopt_core::{GradMults, RepSgdConfig, UpdateRule};
use repopt_models::{RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales, decays_weight};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{AtomicFileCheckpointer, last_complete_epoch, last_readable_epoch};
use crate::classifier::Classifier;
use crate::config::{DataFormat, Method, Normalization, RunConfig};
use crate::data::transform::{self, Compose, Fit};
use crate::data::{
    AugmentedDataset, CifarDataset, CifarKind, EpochShuffled, IdxDataset, ImageBatch, ImageBatcher,
    ImageFolder, ImageFolderOptions, ImageItem, LoaderOptions, Normalize, Split, Validation,
    eval_loader,
};
use crate::device::parse_device;
use crate::error::{Result, TrainError, file_error};
use crate::eval::{EvalReport, evaluate};
use crate::schedule::OfficialCosineConfig;

/// The `k` of the top-k accuracy reported beside top-1 (when there are more classes).
pub const TOP_K: usize = 5;

/// A dataset behind a shared pointer.
pub type SharedDataset = Arc<dyn Dataset<ImageItem>>;

/// The data of a run: both splits, their transforms and normalisation.
pub struct RunData {
    /// Training images.
    pub train: SharedDataset,
    /// Test images.
    pub test: SharedDataset,
    /// Number of classes.
    pub num_classes: usize,
    /// Class names, by label: folder names, CIFAR-10's names, or the labels as numbers.
    pub class_names: Vec<String>,
    /// Channels of the network input.
    pub channels: usize,
    /// Training augmentation.
    pub train_transform: Compose,
    /// Evaluation transform.
    pub eval_transform: Compose,
    /// Normalisation applied when batching.
    pub normalize: Normalize,
    /// Images skipped as unreadable (with `skip_invalid`).
    pub skipped: usize,
}

fn subset(dataset: SharedDataset, limit: Option<usize>, seed: u64) -> SharedDataset {
    match limit {
        Some(n) if n < dataset.len() => Arc::new(PartialDataset::new(
            ShuffledDataset::new(dataset, seed),
            0,
            n,
        )),
        _ => dataset,
    }
}

/// Opens the data of `config` (format detected when not given).
pub fn open_data(config: &RunConfig) -> Result<RunData> {
    let format = match config.format {
        Some(format) => format,
        None => DataFormat::detect(&config.data)?,
    };
    let dir = &config.data;
    let mut folder_classes = Vec::new();
    let (train, test, num_classes, channels, skipped): (SharedDataset, SharedDataset, _, _, _) =
        match format {
            DataFormat::Idx => {
                let train = IdxDataset::open(dir, Split::Train)?;
                let test = IdxDataset::open(dir, Split::Test)?;
                let classes = train.num_classes().max(test.num_classes());
                (Arc::new(train), Arc::new(test), classes, 1, 0)
            }
            DataFormat::Cifar10 | DataFormat::Cifar100 => {
                let kind = if format == DataFormat::Cifar10 {
                    CifarKind::Cifar10
                } else {
                    CifarKind::Cifar100
                };
                let train = CifarDataset::open(dir, kind, Split::Train)?;
                let test = CifarDataset::open(dir, kind, Split::Test)?;
                (Arc::new(train), Arc::new(test), kind.num_classes(), 3, 0)
            }
            DataFormat::ImageFolder => {
                let options = ImageFolderOptions {
                    validation: if config.skip_invalid {
                        Validation::Decode
                    } else {
                        Validation::None
                    },
                    skip_invalid: config.skip_invalid,
                    ..ImageFolderOptions::default()
                };
                let test_dir = ["test", "val"]
                    .iter()
                    .map(|d| dir.join(d))
                    .find(|d| d.is_dir())
                    .ok_or_else(|| {
                        file_error(dir, "no `test/` or `val/` folder beside `train/`")
                    })?;
                let train = ImageFolder::open_with(dir.join("train"), &options)?;
                let test = ImageFolder::open_with(&test_dir, &options)?;
                if train.classes() != test.classes() {
                    return Err(file_error(
                        &test_dir,
                        format!(
                            "its classes {:?} differ from the training classes {:?}",
                            test.classes(),
                            train.classes()
                        ),
                    ));
                }
                let skipped = train.num_skipped() + test.num_skipped();
                let classes = train.classes().len();
                folder_classes = train.classes().to_vec();
                (Arc::new(train), Arc::new(test), classes, 3, skipped)
            }
        };
    let class_names = match format {
        DataFormat::Cifar10 => crate::data::CIFAR10_CLASSES
            .iter()
            .map(|c| c.to_string())
            .collect(),
        _ => folder_classes,
    };
    let class_names = match class_names.len() == num_classes {
        true => class_names,
        false => (0..num_classes).map(|c| c.to_string()).collect(),
    };
    let (train_transform, eval_transform) = recipe(config.image_size, channels);
    let normalize = normalization(config.normalize, format, config.image_size);
    if !normalize.supports(channels) {
        return Err(TrainError::Config(format!(
            "--normalize {:?} is for {}-channel images, but {} holds {channels}-channel ones",
            config.normalize,
            normalize.mean.len(),
            config.data.display()
        )));
    }
    Ok(RunData {
        train: subset(train, config.train_limit, config.seed),
        test: subset(test, config.test_limit, config.seed ^ 1),
        num_classes,
        class_names,
        channels,
        train_transform,
        eval_transform,
        normalize,
        skipped,
    })
}

/// The training and evaluation transforms for `size`×`size` inputs of `channels` channels.
///
/// Every image is brought to `size`×`size` for training and evaluation alike, whatever its own
/// size: above 64 px the official ImageNet recipe (RandomResizedCrop + flip; shorter side to
/// `size` + centre crop), otherwise the CIFAR recipe after resizing the shorter side to `size`
/// and centre cropping (random crop with `size / 8` zero padding + flip). One-channel sets
/// (MNIST, Fashion-MNIST) are zero-padded or centre-cropped to `size` (28 → 32 adds 2 px a side).
pub fn recipe(size: usize, channels: usize) -> (Compose, Compose) {
    if channels == 1 {
        let adapt = || transform::gray_adapter(false, Some((size, Fit::Pad)));
        let padding = size / 8;
        let train = adapt().then(transform::RandomCrop { size, padding });
        (train, adapt())
    } else if size > 64 {
        (
            transform::imagenet_train(size),
            transform::imagenet_eval(size),
        )
    } else {
        (transform::cifar_train_at(size), transform::fit(size))
    }
}

/// The input normalisation of `choice` for data of `format` at `size` px.
///
/// `auto`: CIFAR-10 and CIFAR-100 binaries their own statistics (the official ones for
/// CIFAR-100), IDX files Fashion-MNIST's, image folders CIFAR-10's at ≤ 64 px and ImageNet's
/// above.
pub fn normalization(choice: Normalization, format: DataFormat, size: usize) -> Normalize {
    match choice {
        Normalization::Cifar10 => Normalize::cifar(),
        Normalization::Cifar100 => Normalize::cifar100(),
        Normalization::Imagenet => Normalize::imagenet(),
        Normalization::FashionMnist => Normalize::fashion_mnist(),
        Normalization::Auto => match format {
            DataFormat::Cifar10 => Normalize::cifar(),
            DataFormat::Cifar100 => Normalize::cifar100(),
            DataFormat::Idx => Normalize::fashion_mnist(),
            DataFormat::ImageFolder if size > 64 => Normalize::imagenet(),
            DataFormat::ImageFolder => Normalize::cifar(),
        },
    }
}

/// The model of `method` and the Grad Mults (keyed by model path) that train it.
pub fn build_model(
    config: &RunConfig,
    architecture: &RepOptVggConfig,
    device: &Device,
) -> Result<(RepOptVgg, GradMults)> {
    device.seed(config.seed);
    let model = architecture.init(device).with_conv_impl(config.conv_impl());
    let target = architecture
        .clone()
        .with_mode(repopt_models::BlockMode::Target);
    let load_scales = || -> Result<VggScales> {
        let path = config
            .scales
            .as_ref()
            .expect("validated: method needs scales");
        Ok(VggScales::load(path, Some(&target))?)
    };
    let rules = |scales: VggScales| -> Result<(RepOptVgg, GradMults)> {
        let handler = RepOptVggHandler::new(scales);
        let reinitialized = handler.reinitialize_model(model.clone())?;
        let mults = handler.grad_mults_for(&reinitialized, UpdateRule::Sgd, device)?;
        Ok(match config.method {
            Method::ReinitOnly => (reinitialized, GradMults::new()),
            Method::MultsOnly => (model.clone(), mults),
            _ => (reinitialized, mults),
        })
    };
    match config.method {
        Method::Hs | Method::Plain | Method::Repvgg => Ok((model, GradMults::new())),
        Method::RepoptOnes => rules(VggScales::constant(&target, 1.0)),
        Method::Repopt | Method::ReinitOnly | Method::MultsOnly => rules(load_scales()?),
        Method::Csla => {
            let scales = load_scales()?;
            let model = model.try_map_blocks(|mut block| {
                let s = scales.block(&block.spec.name).expect("validated");
                let set = |layer: &mut Option<repopt_models::ScaleLayer>,
                           v: &[f32],
                           train: bool| {
                    if let Some(layer) = layer {
                        let t = burn::tensor::Tensor::<1>::from_floats(v, device);
                        layer.weight = burn::module::Param::from_tensor(t).set_require_grad(train);
                    }
                };
                set(&mut block.scale_conv, &s.conv, false);
                set(&mut block.scale_1x1, &s.conv_1x1, false);
                if let Some(g) = &s.identity {
                    set(&mut block.scale_identity, g, true);
                }
                Ok(block)
            })?;
            Ok((model, GradMults::new()))
        }
    }
}

/// The official schedule (timm's cosine with a linear warm-up alongside it, see
/// [`OfficialCosine`]) for a run of `iters_per_epoch` iterations per epoch, rates scaled by the
/// linear rule when the run asks for it.
pub fn lr_schedule(config: &RunConfig, iters_per_epoch: usize) -> Result<ModuleLrScheduler> {
    let (lr, warmup_lr, min_lr) = config.scaled_rates();
    let schedule = OfficialCosineConfig {
        lr,
        warmup_lr,
        min_lr,
        warmup_iters: (config.warmup_epochs * iters_per_epoch as f64) as usize,
        total_iters: config.epochs * iters_per_epoch,
    }
    .init()
    .map_err(|e| TrainError::Config(format!("learning-rate schedule: {e}")))?;
    Ok(ModuleLrScheduler::new(schedule))
}

/// Training iterations per epoch: `n / batch`, rounded down with `drop_last` (as the official
/// loader) and up without; a set smaller than one batch still makes one batch.
pub fn iterations_per_epoch(images: usize, batch_size: usize, drop_last: bool) -> usize {
    match drop_last && images >= batch_size {
        true => images / batch_size,
        false => images.div_ceil(batch_size),
    }
}

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

/// The peak resident memory of this process (`VmHWM`), where the OS reports it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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
}

/// The settings and architecture a run folder was trained with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's settings.
    pub config: RunConfig,
    /// The architecture (mode included).
    pub architecture: RepOptVggConfig,
}

impl RunRecord {
    /// Reads `<dir>/run.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(files::RUN);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            file_error(
                &path,
                format!("{e} (is this a run folder made by `repopt`?)"),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| file_error(&path, format!("bad run record: {e}")))
    }

    /// The trained model of run folder `dir` on `device`.
    pub fn load_model(&self, dir: &Path, device: &Device) -> Result<RepOptVgg> {
        load_model_file(&dir.join(files::MODEL), &self.architecture, device)
    }
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
    if !path.is_file() {
        return Err(file_error(path, "no such model file"));
    }
    let record = ModuleRecord::load(path)
        .map_err(|e| file_error(path, format!("not a readable model file: {e}")))?;
    architecture
        .init(device)
        .try_load_record(record)
        .map_err(|e| file_error(path, format!("does not fit the architecture: {e}")))
}

/// Loads the model of a training checkpoint (the Learner saves the [`Classifier`]).
pub fn load_checkpoint_model(
    path: &Path,
    architecture: &RepOptVggConfig,
    device: &Device,
) -> Result<RepOptVgg> {
    let record = ModuleRecord::load(path)
        .map_err(|e| file_error(path, format!("not a readable checkpoint: {e}")))?;
    Classifier::new(architecture.init(device), 0.0)
        .try_load_record(record)
        .map(|classifier| classifier.model)
        .map_err(|e| file_error(path, format!("does not fit the architecture: {e}")))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    write_atomic(path, text.as_bytes()).map_err(|e| file_error(path, e))
}

fn write_metrics_csv(dir: &Path, path: &Path) -> Result<()> {
    let names = [
        ("Loss", "loss"),
        ("Accuracy", "top1"),
        ("Top-K Accuracy @ TopK(5)", "top5"),
        ("Learning Rate", "lr"),
    ];
    let metric_names: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let Ok(summary) = LearnerSummary::new(dir, &metric_names) else {
        return Ok(());
    };
    let mut rows: std::collections::BTreeMap<usize, Vec<(String, f64)>> = Default::default();
    for (split, metrics) in [
        ("train", &summary.metrics.train),
        ("valid", &summary.metrics.valid),
    ] {
        for metric in metrics.iter() {
            for entry in &metric.entries {
                let short = names
                    .iter()
                    .find(|(n, _)| *n == metric.name)
                    .map_or(metric.name.as_str(), |(_, s)| s);
                let column = format!("{split}_{short}");
                rows.entry(entry.step)
                    .or_default()
                    .push((column, entry.value));
            }
        }
    }
    let mut columns: Vec<String> = rows
        .values()
        .flat_map(|r| r.iter().map(|(c, _)| c.clone()))
        .collect();
    columns.sort();
    columns.dedup();
    let mut csv = format!("epoch,{}\n", columns.join(","));
    for (epoch, values) in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                values
                    .iter()
                    .find(|(name, _)| name == c)
                    .map(|(_, v)| format!("{v}"))
                    .unwrap_or_default()
            })
            .collect();
        csv.push_str(&format!("{epoch},{}\n", cells.join(",")));
    }
    write_atomic(path, csv.as_bytes()).map_err(|e| file_error(path, e))
}

/// Trains as `config` says and writes the artifacts into `config.out`.
pub fn run(config: &RunConfig) -> Result<RunOutcome> {
    config.validate()?;
    let device = parse_device(&config.device)?;
    let data = open_data(config)?;
    let architecture = config.architecture(data.num_classes, data.channels)?;
    let out = config.out.clone();
    let checkpoint_dir = out.join(files::CHECKPOINTS);
    let start_epoch = if config.resume {
        let (epoch, skipped) = last_readable_epoch(&checkpoint_dir);
        for message in &skipped {
            eprintln!("warning: {message}; resuming from an older one");
        }
        let epoch = epoch.ok_or_else(|| {
            file_error(
                &checkpoint_dir,
                "no complete, readable checkpoint to resume from",
            )
        })?;
        let record = RunRecord::load(&out)?;
        if record.architecture != architecture {
            return Err(TrainError::Config(format!(
                "{} was trained with another architecture ({:?} × {:?}, {} mode); resume with \
                 the same settings",
                out.display(),
                record.architecture.num_blocks,
                record.architecture.width_multiplier,
                record.architecture.mode
            )));
        }
        // A checkpoint of another architecture is an error here, not a panic inside the Learner.
        load_checkpoint_model(
            &checkpoint_dir.join(format!("model-{epoch}.bpk")),
            &architecture,
            &device,
        )?;
        epoch
    } else {
        if last_complete_epoch(&checkpoint_dir).is_some() {
            return Err(file_error(
                &out,
                "holds checkpoints of an earlier run: pass --resume to continue it, or choose \
                 another --out (nothing was overwritten)",
            ));
        }
        0
    };
    std::fs::create_dir_all(&out).map_err(|e| file_error(&out, e))?;
    write_json(
        &out.join(files::RUN),
        &RunRecord {
            config: config.clone(),
            architecture: architecture.clone(),
        },
    )?;

    let (model, mults) = build_model(config, &architecture, &device.clone().autodiff())?;
    if config.method == Method::Hs && start_epoch == 0 {
        // The scales the search starts from, to compare the searched ones with.
        VggScales::extract(&model)?.save(&out.join(files::INITIAL_SCALES))?;
    }
    let interrupter = Interrupter::new();
    if config.clip_grad_norm.is_some() && !mults.is_empty() {
        return Err(repopt_core::RepOptError::ClippingWithMults.into());
    }
    let classifier = Classifier::new(model, config.label_smoothing)
        .with_guard(interrupter.clone())
        .with_clip_global_norm(config.clip_grad_norm);
    let optim = RepSgdConfig::new()
        .with_momentum(config.momentum)
        .with_nesterov(config.nesterov)
        .with_weight_decay(config.weight_decay)
        .init_with_decay(&classifier, &mults.with_prefix(Classifier::MODEL_PATH), decays_weight)?;

    if data.train.len() < config.batch_size {
        eprintln!(
            "warning: --batch-size {} is larger than the {} training images: every step sees \
             the whole set",
            config.batch_size,
            data.train.len()
        );
    }
    let iters = iterations_per_epoch(data.train.len(), config.batch_size, config.drop_last);
    let schedule = lr_schedule(config, iters)?;

    let train_loader: Arc<dyn DataLoader<ImageBatch>> = {
        let shuffled = EpochShuffled::new(data.train.clone(), config.seed)
            .with_epoch_len((iters * config.batch_size).min(data.train.len()))
            .with_start_epoch(start_epoch as u64);
        let augmented = AugmentedDataset::new(
            shuffled,
            data.train_transform.clone(),
            config.seed ^ 0xA5A5_5A5A,
        )
        .with_start_epoch(start_epoch as u32);
        DataLoaderBuilder::new(ImageBatcher::new(data.normalize.clone()))
            .batch_size(config.batch_size)
            .num_workers(config.workers)
            .set_device(device.clone())
            .build(augmented)
    };
    let options = LoaderOptions {
        batch_size: config.batch_size,
        num_workers: config.workers,
        seed: config.seed,
    };
    let valid_loader = eval_loader(
        data.test.clone(),
        data.eval_transform.clone(),
        data.normalize.clone(),
        &options,
        &device,
    );

    let training = SupervisedTraining::new(&out, train_loader, valid_loader.clone());
    // Top-5 only where it means something: with 5 classes or fewer it is always 100 %.
    let training = match data.num_classes > TOP_K {
        true => training.metrics((
            AccuracyMetric::new(),
            TopKAccuracyMetric::new(TOP_K),
            LossMetric::new(),
        )),
        false => training.metrics((AccuracyMetric::new(), LossMetric::new())),
    };
    let mut training = training
        .metric_train_numeric(LearningRateMetric::new())
        .with_custom_checkpointers(
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "model")),
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "optim")),
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "scheduler")),
        )
        .with_checkpointing_strategy(
            // The last two epochs (to resume, with a fallback) and the best by test top-1.
            ComposedCheckpointingStrategy::builder()
                .add(KeepLastNCheckpoints::new(2))
                .add(MetricCheckpointingStrategy::new(
                    &AccuracyMetric::new(),
                    Aggregate::Mean,
                    Direction::Highest,
                    MetricSplit::Valid,
                ))
                .build(),
        )
        .with_interrupter(interrupter.clone())
        .renderer(crate::renderer::renderer_for_output(
            interrupter.clone(),
            (start_epoch > 0).then_some(start_epoch),
        ))
        .num_epochs(config.epochs);
    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }
    let learner = Learner::new(classifier, optim, schedule);

    let started = Instant::now();
    let result = training.launch(learner);
    let seconds = started.elapsed().as_secs_f64();
    let epochs_run = config.epochs.saturating_sub(start_epoch);
    let metrics_csv = out.join(files::METRICS);
    write_metrics_csv(&out, &metrics_csv)?;
    if let Some(error) = &result.error {
        return Err(TrainError::Stopped(format!(
            "training failed: {error}; checkpoints in {}",
            checkpoint_dir.display()
        )));
    }
    if let Some(interruption) = interrupter.interruption() {
        let reason = interruption.reason.unwrap_or_else(|| "interrupted".into());
        let last = last_complete_epoch(&checkpoint_dir)
            .map(|e| format!("epoch {e} in {}", checkpoint_dir.display()))
            .unwrap_or_else(|| "none yet".into());
        return Err(TrainError::Stopped(format!(
            "training stopped: {reason} (last good checkpoint: {last})"
        )));
    }

    let model = result.model.model;
    let model_path = out.join(files::MODEL);
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| file_error(&model_path, e))?;
    write_atomic(&model_path, &bytes).map_err(|e| file_error(&model_path, e))?;
    let scales = if config.method == Method::Hs {
        let path = out.join(files::SCALES);
        VggScales::extract(&model)?.save(&path)?;
        Some(path)
    } else {
        None
    };
    let test = evaluate(&model, valid_loader)?;
    let outcome = RunOutcome {
        dir: out.clone(),
        model: model_path,
        scales,
        metrics_csv,
        log: out.join(files::LOG),
        epochs_run,
        seconds_per_epoch: seconds / epochs_run.max(1) as f64,
        test,
        skipped_images: data.skipped,
        peak_memory_bytes: peak_memory_bytes(),
    };
    write_json(&out.join(files::OUTCOME), &outcome)?;
    Ok(outcome)
}
