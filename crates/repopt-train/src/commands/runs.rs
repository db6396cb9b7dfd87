//! `train`, `hs`, `eval`, `export` and `extract-scales`: the commands on a run folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use repopt_models::{MapBatchNorms, VggScales};

use super::say;
use crate::cli::EvalArgs;
use crate::config::RunConfig;
use crate::data::{ImageBatch, LoaderOptions};
use crate::derived_run::{self, Derivation};
use crate::device::parse_device;
use crate::error::{Result, TrainError};
use crate::recalibrate::{BatchNormSelection, Estimate, reestimate_selected_batch_norms};
use crate::run_folder::{self, RunRecord, files};
use crate::trainer;

pub(super) fn extract_scales(
    run: &Path,
    out: Option<PathBuf>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let record = RunRecord::load(run)?;
    let model = record.load_model(run, &burn::tensor::Device::flex())?;
    let scales = VggScales::extract(&model)?;
    let out = out.unwrap_or_else(|| run.join(files::SCALES));
    scales.save(&out)?;
    say!(
        stdout,
        "scales of {} blocks written to {}",
        scales.blocks.len(),
        out.display()
    )?;
    Ok(())
}

/// `repopt eval`: the final model (or a kept checkpoint) on the run's test split, or on
/// another data folder of the same format and classes; its BatchNorm statistics re-estimated
/// on training batches first when asked, and written as a new run folder when asked.
pub(super) fn eval(args: &EvalArgs, stdout: &mut dyn Write) -> Result<()> {
    let run = args.run.as_path();
    if let Some(dir) = &args.save_run {
        derived_run::check_new_folder(dir)?;
    }
    let ghostnet = run_folder::run_model_kind(run)? == crate::config::ModelKind::Ghostnet;
    let (epoch, checkpoint) = chosen_checkpoint(args, stdout)?.unzip();
    let data = eval_data(args)?;
    let derivation = |batch_norms, test| Derivation {
        source_run: run.to_path_buf(),
        epoch,
        batch_norms,
        evaluated_on: args.data.clone(),
        test,
    };
    if ghostnet {
        let record = run_folder::GhostRunRecord::load(run)?;
        let model = match checkpoint {
            None => record.load_model(run, &data.device)?,
            Some(path) => {
                run_folder::load_ghostnet_checkpoint(&path, &record.architecture, &data.device)?
            }
        };
        let (model, batch_norms) = data.recalibrated(model, stdout, |m, x| m.forward(x))?;
        let report = crate::eval::evaluate_ghostnet(&model, data.test)?;
        finish(args, &model, derivation(batch_norms, report), stdout)
    } else {
        let record = RunRecord::load(run)?;
        let model = match checkpoint {
            None => record.load_model(run, &data.device)?,
            Some(path) => {
                run_folder::load_checkpoint_model(&path, &record.architecture, &data.device)?
            }
        }
        .with_conv_impl(crate::config::default_conv(&args.device));
        let (model, batch_norms) = data.recalibrated(model, stdout, |m, x| m.forward(x))?;
        let report = crate::eval::evaluate(&model, data.test)?;
        finish(args, &model, derivation(batch_norms, report), stdout)
    }
}

/// Says `eval`'s result and, with `--save-run`, writes the model as a new run folder.
fn finish<M: Module>(
    args: &EvalArgs,
    model: &M,
    derivation: Derivation,
    stdout: &mut dyn Write,
) -> Result<()> {
    say!(stdout, "{}: {}", args.run.display(), derivation.test)?;
    let Some(dir) = &args.save_run else {
        return Ok(());
    };
    derived_run::save(&args.run, dir, model, &derivation)?;
    say!(stdout, "model written as the run folder {}", dir.display())?;
    Ok(())
}

/// What `eval` feeds the model: the test batches (of the run's data or `--data`), and the
/// training batches to re-estimate its BatchNorm statistics on when `--recalibrate-bn` asks.
fn eval_data(args: &EvalArgs) -> Result<EvalData> {
    let mut config = run_folder::load_run_config(&args.run)?;
    if let Some(data) = &args.data {
        config.data = data.clone();
    }
    config.test_limit = args.test_limit.or(config.test_limit);
    let device = parse_device(&args.device)?;
    let data = crate::run_data::open_data(&config)?;
    let options = LoaderOptions {
        batch_size: config.batch_size,
        num_workers: config.workers,
        seed: config.seed,
    };
    let estimate = match args.recalibrate_momentum {
        Some(m) => Estimate::Momentum(m),
        None => Estimate::Average,
    };
    let recalibration = args.recalibrate_bn.map(|batches| Recalibration {
        estimate,
        selection: args.recalibrate_only.clone().unwrap_or_default(),
        loader: crate::data::train_loader(
            data.train.clone(),
            data.train_transform.clone(),
            data.normalize.clone(),
            &options,
            &device,
        ),
        batches,
    });
    let test = crate::data::eval_loader(
        data.test,
        data.eval_transform,
        data.normalize,
        &options,
        &device,
    );
    Ok(EvalData {
        test,
        recalibration,
        device,
    })
}

/// The epoch and checkpoint `eval` was asked for (`--best` or `--epoch`), named on `stdout`;
/// `None` for the final model.
fn chosen_checkpoint(args: &EvalArgs, stdout: &mut dyn Write) -> Result<Option<(usize, PathBuf)>> {
    let epoch = match (args.best, args.epoch) {
        (true, _) => {
            let epoch = run_folder::best_epoch(&args.run)?;
            say!(stdout, "best epoch: {epoch}")?;
            epoch
        }
        (false, Some(epoch)) => epoch,
        (false, None) => return Ok(None),
    };
    let path = args
        .run
        .join(files::CHECKPOINTS)
        .join(format!("model-{epoch}.bpk"));
    if !path.is_file() {
        return Err(TrainError::Config(format!(
            "{}: no checkpoint of epoch {epoch} is kept (a run keeps its last two epochs' and its best)",
            path.display()
        )));
    }
    Ok(Some((epoch, path)))
}

/// Training batches to re-estimate the BatchNorm statistics on.
struct Recalibration {
    loader: Arc<dyn DataLoader<ImageBatch>>,
    batches: u64,
    estimate: Estimate,
    selection: BatchNormSelection,
}

/// The batches `eval` feeds a model, on the device it evaluates on.
struct EvalData {
    test: Arc<dyn DataLoader<ImageBatch>>,
    recalibration: Option<Recalibration>,
    device: Device,
}

impl EvalData {
    /// `model`, its BatchNorm statistics re-estimated on the recalibration batches when asked,
    /// and how (said on `stdout`).
    fn recalibrated<M: MapBatchNorms + Module>(
        &self,
        model: M,
        stdout: &mut dyn Write,
        forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
    ) -> Result<(M, Option<String>)> {
        let Some(Recalibration {
            loader,
            batches,
            estimate,
            selection,
        }) = &self.recalibration
        else {
            return Ok((model, None));
        };
        let (model, momenta) = model.batch_norm_momenta();
        selection
            .mask(momenta.len())
            .map_err(|e| TrainError::Config(format!("--recalibrate-only: {e}")))?;
        let images = loader.iter().take(*batches as usize).map(|batch| {
            batch
                .map(|b| b.images)
                .map_err(|e| TrainError::Stopped(format!("training data: {e}")))
        });
        let (model, seen) = reestimate_selected_batch_norms(
            model,
            images,
            &self.device,
            forward,
            *estimate,
            selection,
        )?;
        let how = match estimate {
            Estimate::Average => String::new(),
            Estimate::Momentum(m) => format!(" (momentum {m})"),
        };
        let which = match selection {
            BatchNormSelection::All => String::new(),
            only => format!(" for BatchNorms {only} of {}", momenta.len()),
        };
        let done = format!("re-estimated on {seen} training batches{how}{which}");
        say!(stdout, "BatchNorm statistics {done}")?;
        Ok((model, Some(done)))
    }
}

pub(super) fn export(run: &Path, out: &Path, stdout: &mut dyn Write) -> Result<()> {
    let card = crate::export::export(run, out)?;
    say!(
        stdout,
        "{} ({} classes, {}x{} input) written to {} and {}",
        card.method,
        card.classes.len(),
        card.image_size,
        card.image_size,
        out.display(),
        crate::export::card_path(out).display()
    )?;
    Ok(())
}

pub(super) fn train(config: &RunConfig, stdout: &mut dyn Write) -> Result<()> {
    let outcome = trainer::run(config)?;
    say!(stdout)?;
    say!(
        stdout,
        "{} finished: {}",
        config.method_name(),
        outcome.test
    )?;
    say!(stdout, "  model      {}", outcome.model.display())?;
    if let Some(scales) = &outcome.scales {
        say!(stdout, "  scales     {}", scales.display())?;
    }
    say!(stdout, "  metrics    {}", outcome.metrics_csv.display())?;
    say!(stdout, "  log        {}", outcome.log.display())?;
    say!(
        stdout,
        "  checkpoints {}",
        outcome.dir.join(files::CHECKPOINTS).display()
    )?;
    say!(
        stdout,
        "  {:.1} s per epoch over {} epoch(s)",
        outcome.seconds_per_epoch,
        outcome.epochs_run
    )?;
    if outcome.skipped_images > 0 {
        say!(
            stdout,
            "  skipped {} unreadable images",
            outcome.skipped_images
        )?;
    }
    Ok(())
}
