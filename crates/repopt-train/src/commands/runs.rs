//! `train`, `hs`, `eval`, `export` and `extract-scales`: the commands on a run folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use repopt_models::VggScales;

use super::say;
use crate::config::RunConfig;
use crate::data::LoaderOptions;
use crate::device::parse_device;
use crate::error::Result;
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

/// `repopt eval`: the final model (or the best epoch's checkpoint) on the run's test split, or
/// on another data folder of the same format and classes.
pub(super) fn eval(
    run: &Path,
    data: Option<PathBuf>,
    test_limit: Option<usize>,
    device: &str,
    best: bool,
    stdout: &mut dyn Write,
) -> Result<()> {
    let ghostnet = run_folder::run_model_kind(run)? == crate::config::ModelKind::Ghostnet;
    let mut config = run_folder::load_run_config(run)?;
    if let Some(data) = data {
        config.data = data;
    }
    config.test_limit = test_limit.or(config.test_limit);
    let conv = crate::config::default_conv(device);
    let device = parse_device(device)?;
    let checkpoint = match best {
        true => Some(best_checkpoint(run, stdout)?),
        false => None,
    };
    let data = crate::run_data::open_data(&config)?;
    let options = LoaderOptions {
        batch_size: config.batch_size,
        num_workers: config.workers,
        seed: config.seed,
    };
    let loader = crate::data::eval_loader(
        data.test,
        data.eval_transform,
        data.normalize,
        &options,
        &device,
    );
    let report = if ghostnet {
        let record = run_folder::GhostRunRecord::load(run)?;
        let model = match checkpoint {
            None => record.load_model(run, &device)?,
            Some(path) => {
                run_folder::load_ghostnet_checkpoint(&path, &record.architecture, &device)?
            }
        };
        crate::eval::evaluate_ghostnet(&model, loader)?
    } else {
        let record = RunRecord::load(run)?;
        let model = match checkpoint {
            None => record.load_model(run, &device)?,
            Some(path) => run_folder::load_checkpoint_model(&path, &record.architecture, &device)?,
        }
        .with_conv_impl(conv);
        crate::eval::evaluate(&model, loader)?
    };
    say!(stdout, "{}: {report}", run.display())?;
    Ok(())
}

/// The checkpoint of the epoch with the best test top-1, named on `stdout`.
fn best_checkpoint(run: &Path, stdout: &mut dyn Write) -> Result<PathBuf> {
    let epoch = run_folder::best_epoch(run)?;
    say!(stdout, "best epoch: {epoch}")?;
    Ok(run
        .join(files::CHECKPOINTS)
        .join(format!("model-{epoch}.bpk")))
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
