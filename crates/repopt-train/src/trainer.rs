//! One training run with Burn's Learner: the method's model and Grad Mults, the RepOptimizer, the
//! official schedule, metrics, atomic checkpoints (the last two and the best), resume, and the
//! artifacts of the run folder.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use burn::train::checkpoint::{
    AsyncCheckpointer, ComposedCheckpointingStrategy, KeepLastNCheckpoints,
    MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::{Interrupter, Learner, SupervisedTraining};
use repopt_core::tensor_io::write_atomic;
use repopt_core::{GradMults, ParamInfo, RepAdamWConfig, RepOptimizerConfig, RepSgdConfig};
use repopt_models::ghostnet::GhostNetScales;
use repopt_models::{VggScales, decays_weight};

use crate::checkpoint::{AtomicFileCheckpointer, last_complete_epoch, last_readable_epoch};
use crate::classifier::{Classifier, MODEL_PATH, Network};
use crate::config::{Method, ModelKind, OptimizerKind, RunConfig};
use crate::data::eval_loader;
use crate::data::{AugmentedDataset, EpochShuffled, ImageBatch, ImageBatcher, LoaderOptions};
use crate::device::parse_device;
use crate::error::{Result, TrainError, file_error};
use crate::eval::{evaluate, evaluate_ghostnet};
use crate::methods::{build_ghostnet, build_model, ghostnet_decay};
use crate::metrics_csv::write_metrics_csv;
use crate::run_data::{RunData, open_data};
use crate::run_folder::{
    GhostRunRecord, RunOutcome, RunRecord, files, load_checkpoint_model, load_ghostnet_checkpoint,
    write_json,
};
use crate::schedule::{iterations_per_epoch, lr_schedule};

/// The `k` of the top-k accuracy reported beside top-1 (when there are more classes).
pub const TOP_K: usize = 5;

/// The peak resident memory of this process (`VmHWM`), where the OS reports it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Trains as `config` says and writes the artifacts into `config.out`.
///
/// Computes on the caller's rayon pool if called from one, else on a pool of its own with
/// subnormals flushed to zero, as the `repopt` commands do
/// ([`on_compute_threads`](crate::compute_pool::on_compute_threads)).
pub fn run(config: &RunConfig) -> Result<RunOutcome> {
    crate::compute_pool::on_compute_threads(|| run_here(config))
        .map_err(|e| TrainError::Config(format!("compute threads: {e}")))?
}

/// [`run`] on the calling thread's pool.
fn run_here(config: &RunConfig) -> Result<RunOutcome> {
    config.validate()?;
    let device = parse_device(&config.device)?;
    let data = open_data(config)?;
    match config.model {
        ModelKind::Vgg => run_vgg(config, &data, &device),
        ModelKind::Ghostnet => run_ghostnet(config, &data, &device),
    }
}

/// A RepOpt-VGG run.
fn run_vgg(config: &RunConfig, data: &RunData, device: &Device) -> Result<RunOutcome> {
    let architecture = config.architecture(data.num_classes, data.channels)?;
    let out = config.out.clone();
    let start_epoch = start_epoch(config, |checkpoint| {
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
        load_checkpoint_model(checkpoint, &architecture, device).map(|_| ())
    })?;
    std::fs::create_dir_all(&out).map_err(|e| file_error(&out, e))?;
    let record = RunRecord {
        config: config.clone(),
        architecture: architecture.clone(),
    };
    write_json(&out.join(files::RUN), &record)?;

    let (model, mults) = build_model(config, &architecture, &config.training_device(device))?;
    if config.method == Method::Hs && start_epoch == 0 {
        // The scales the search starts from, to compare the searched ones with.
        VggScales::extract(&model)?.save(&out.join(files::INITIAL_SCALES))?;
    }
    let trained = fit(
        config,
        data,
        device,
        start_epoch,
        model,
        mults,
        decays_weight,
    )?;
    let model = &trained.model;
    let scales = match config.method {
        Method::Hs => {
            let path = out.join(files::SCALES);
            VggScales::extract(model)?.save(&path)?;
            Some(path)
        }
        _ => None,
    };
    let test = evaluate(model, trained.valid_loader.clone())?;
    finish(config, data, &trained, scales, test)
}

/// A RepOpt-GhostNet run.
fn run_ghostnet(config: &RunConfig, data: &RunData, device: &Device) -> Result<RunOutcome> {
    let architecture = config.ghostnet_architecture(data.num_classes)?;
    let out = config.out.clone();
    let start_epoch = start_epoch(config, |checkpoint| {
        let record = GhostRunRecord::load(&out)?;
        if record.architecture != architecture {
            return Err(TrainError::Config(format!(
                "{} was trained with another architecture (width {}, {} mode); resume with the \
                 same settings",
                out.display(),
                record.architecture.width,
                record.architecture.mode
            )));
        }
        load_ghostnet_checkpoint(checkpoint, &architecture, device).map(|_| ())
    })?;
    std::fs::create_dir_all(&out).map_err(|e| file_error(&out, e))?;
    let record = GhostRunRecord {
        config: config.clone(),
        architecture: architecture.clone(),
    };
    write_json(&out.join(files::RUN), &record)?;

    let (model, mults) = build_ghostnet(config, &architecture, &config.training_device(device))?;
    if config.method == Method::Hs && start_epoch == 0 {
        GhostNetScales::from_model(&model)?.save(&out.join(files::INITIAL_SCALES))?;
    }
    let decay = ghostnet_decay(config);
    let trained = fit(config, data, device, start_epoch, model, mults, decay)?;
    let model = &trained.model;
    let scales = match config.method {
        Method::Hs => {
            let path = out.join(files::SCALES);
            GhostNetScales::from_model(model)?.save(&path)?;
            Some(path)
        }
        _ => None,
    };
    let test = evaluate_ghostnet(model, trained.valid_loader.clone())?;
    finish(config, data, &trained, scales, test)
}

/// A trained model, with what the outcome reports about its training.
struct Trained<M> {
    model: M,
    valid_loader: Arc<dyn DataLoader<ImageBatch>>,
    seconds: f64,
    epochs_run: usize,
}

/// Trains `model` with the method's Grad Mults from `start_epoch` to the end, with Burn's
/// Learner (metrics, checkpoints, the non-finite guard), and writes `metrics.csv`.
fn fit<M: Network>(
    config: &RunConfig,
    data: &RunData,
    device: &Device,
    start_epoch: usize,
    model: M,
    mults: GradMults,
    decay: fn(&ParamInfo) -> bool,
) -> Result<Trained<M>> {
    let out = &config.out;
    let interrupter = Interrupter::new();
    let (classifier, optim) = classifier_and_optimizer(config, model, mults, decay, &interrupter)?;
    let iters = iterations_per_epoch(data.train.len(), config.batch_size, config.drop_last);
    let schedule = lr_schedule(config, iters)?;
    let train_loader = train_loader(config, data, iters, start_epoch, device);
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
        device,
    );
    let training = supervised(
        config,
        data,
        train_loader,
        valid_loader.clone(),
        &interrupter,
        start_epoch,
    );

    let started = Instant::now();
    let result = training.launch(Learner::new(classifier, optim, schedule));
    let seconds = started.elapsed().as_secs_f64();
    write_metrics_csv(out, &out.join(files::METRICS))?;
    if let Some(error) = &result.error {
        return Err(TrainError::Stopped(format!(
            "training failed: {error}; checkpoints in {}",
            out.join(files::CHECKPOINTS).display()
        )));
    }
    stopped_early(&interrupter, out)?;
    Ok(Trained {
        model: result.model.model,
        valid_loader,
        seconds,
        epochs_run: config.epochs.saturating_sub(start_epoch),
    })
}

/// Saves the trained model and writes `outcome.json`.
fn finish<M: Network>(
    config: &RunConfig,
    data: &RunData,
    trained: &Trained<M>,
    scales: Option<std::path::PathBuf>,
    test: crate::eval::EvalReport,
) -> Result<RunOutcome> {
    let out = &config.out;
    let outcome = RunOutcome {
        dir: out.clone(),
        model: save_model(&trained.model, out)?,
        scales,
        metrics_csv: out.join(files::METRICS),
        log: out.join(files::LOG),
        epochs_run: trained.epochs_run,
        seconds_per_epoch: trained.seconds / trained.epochs_run.max(1) as f64,
        test,
        skipped_images: data.skipped,
        peak_memory_bytes: peak_memory_bytes(),
    };
    write_json(&out.join(files::OUTCOME), &outcome)?;
    Ok(outcome)
}

/// The epoch training continues after: 0 for a new run (refusing a folder that holds an earlier
/// run's checkpoints), the newest readable checkpoint's epoch when resuming, once `check` has
/// accepted the run record and that checkpoint.
fn start_epoch(config: &RunConfig, check: impl FnOnce(&Path) -> Result<()>) -> Result<usize> {
    let out = &config.out;
    let checkpoint_dir = out.join(files::CHECKPOINTS);
    if !config.resume {
        if last_complete_epoch(&checkpoint_dir).is_some() {
            return Err(file_error(
                out,
                "holds checkpoints of an earlier run: pass --resume to continue it, or choose \
                 another --out (nothing was overwritten)",
            ));
        }
        return Ok(0);
    }
    let (epoch, skipped) = last_readable_epoch(&checkpoint_dir);
    for message in &skipped {
        tracing::warn!("{message}; resuming from an older one");
    }
    let epoch = epoch.ok_or_else(|| {
        file_error(
            &checkpoint_dir,
            "no complete, readable checkpoint to resume from",
        )
    })?;
    check(&checkpoint_dir.join(format!("model-{epoch}.bpk")))?;
    Ok(epoch)
}

/// The model with its loss, non-finite guard and clipping, and the RepOptimizer with the
/// method's Grad Mults (weight decay by `decay`, the official grouping).
fn classifier_and_optimizer<M: Network>(
    config: &RunConfig,
    model: M,
    mults: GradMults,
    decay: fn(&ParamInfo) -> bool,
    interrupter: &Interrupter,
) -> Result<(Classifier<M>, ModuleOptimizer)> {
    if config.clip_grad_norm.is_some() && !mults.is_empty() {
        return Err(repopt_core::RepOptError::ClippingWithMults.into());
    }
    let classifier = Classifier::new(model, config.label_smoothing)
        .with_guard(interrupter.clone())
        .with_clip_global_norm(config.clip_grad_norm);
    let mults = mults.with_prefix(MODEL_PATH);
    let optim = match config.optimizer {
        OptimizerKind::Sgd => RepSgdConfig::new()
            .with_momentum(config.momentum)
            .with_nesterov(config.nesterov)
            .with_weight_decay(config.weight_decay)
            .init_with_decay(&classifier, &mults, decay)?,
        OptimizerKind::Adamw => RepAdamWConfig::new()
            .with_weight_decay(config.weight_decay)
            .init_with_decay(&classifier, &mults, decay)?,
    };
    Ok((classifier, optim))
}

/// The training images in an order and with augmentations that depend only on the seed and the
/// epoch (so a resumed run sees what an uninterrupted one would), `iters` batches an epoch.
fn train_loader(
    config: &RunConfig,
    data: &RunData,
    iters: usize,
    start_epoch: usize,
    device: &Device,
) -> Arc<dyn DataLoader<ImageBatch>> {
    if data.train.len() < config.batch_size {
        tracing::warn!(
            "--batch-size {} is larger than the {} training images: every step sees the whole \
             set",
            config.batch_size,
            data.train.len()
        );
    }
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
}

/// Burn's supervised training: metrics, atomic checkpoints (the last two epochs and the best
/// by test top-1), the interrupter, the renderer, the epoch to resume from.
fn supervised<M: Network>(
    config: &RunConfig,
    data: &RunData,
    train: Arc<dyn DataLoader<ImageBatch>>,
    valid: Arc<dyn DataLoader<ImageBatch>>,
    interrupter: &Interrupter,
    start_epoch: usize,
) -> SupervisedTraining<Classifier<M>> {
    let checkpoint_dir = config.out.join(files::CHECKPOINTS);
    let training = SupervisedTraining::new(&config.out, train, valid);
    // Top-5 only where it means something: with 5 classes or fewer it is always 100 %.
    let training = match data.num_classes > TOP_K {
        true => training.metrics((
            AccuracyMetric::new(),
            TopKAccuracyMetric::new(TOP_K),
            LossMetric::new(),
        )),
        false => training.metrics((AccuracyMetric::new(), LossMetric::new())),
    };
    let training = training
        .metric_train_numeric(LearningRateMetric::new())
        .with_custom_checkpointers(
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "model")),
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "optim")),
            AsyncCheckpointer::new(AtomicFileCheckpointer::new(&checkpoint_dir, "scheduler")),
        )
        .with_checkpointing_strategy(
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
        .with_application_logger(Some(Box::new(crate::logging::RunLogInstaller::new(
            config.out.join(files::LOG),
        ))))
        .renderer(crate::renderer::renderer_for_output(
            interrupter.clone(),
            (start_epoch > 0).then_some(start_epoch),
        ))
        .num_epochs(config.epochs);
    match start_epoch {
        0 => training,
        epoch => training.checkpoint(epoch),
    }
}

/// An error if the run was stopped before its end (non-finite loss, interruption), naming the
/// last good checkpoint.
fn stopped_early(interrupter: &Interrupter, out: &Path) -> Result<()> {
    let Some(interruption) = interrupter.interruption() else {
        return Ok(());
    };
    let checkpoint_dir = out.join(files::CHECKPOINTS);
    let reason = interruption.reason.unwrap_or_else(|| "interrupted".into());
    let last = last_complete_epoch(&checkpoint_dir)
        .map(|e| format!("epoch {e} in {}", checkpoint_dir.display()))
        .unwrap_or_else(|| "none yet".into());
    Err(TrainError::Stopped(format!(
        "training stopped: {reason} (last good checkpoint: {last})"
    )))
}

/// Writes the trained model to `<out>/model.bpk`.
fn save_model<M: Module>(model: &M, out: &Path) -> Result<std::path::PathBuf> {
    let path = out.join(files::MODEL);
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| file_error(&path, e))?;
    write_atomic(&path, &bytes).map_err(|e| file_error(&path, e))?;
    Ok(path)
}
