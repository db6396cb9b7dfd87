//! The `repopt` command line: parsing, config-file merging and the subcommands.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use repopt_models::{ConvImpl, RepOptVggConfig, ScaleStats, VggScales};
use serde::Serialize;

use crate::config::{DataFormat, Method, RunConfig};
use crate::data::LoaderOptions;
use crate::device::parse_device;
use crate::error::{Result, TrainError};
use crate::run_folder::{self, RunRecord, files};
use crate::trainer;

const ABOUT: &str =
    "RepOptimizers: train plain RepOpt-VGG models whose structural prior lives in the optimizer";

const WORKFLOW: &str = "\
The paper's workflow, end to end:

  1. Hyper-search: train the three-branch model with trainable scales on a small set.
       repopt hs --data DATA --preset a0 --epochs 30 --out runs/hs
     (writes runs/hs/scales.safetensors; `repopt extract-scales --run runs/hs` does it again)
  2. Look at the scales:
       repopt inspect-scales runs/hs/scales.safetensors
  3. Train the plain target model with the RepOptimizer built from those scales:
       repopt train --method repopt --scales runs/hs/scales.safetensors --data DATA --out runs/repopt
     or from an official release: --preset b1 --scales RepOpt-VGG-B1-scales.pth
     Baselines: --method plain (ordinary SGD), repvgg (three branches, fused to evaluate),
     csla (the equivalent multi-branch model), repopt-ones (all scales 1); the paper's
     ablations reinit-only (Rule of Initialization, plain SGD) and mults-only (Grad Mults,
     ordinary initialisation) take --scales too.
  4. Evaluate:
       repopt eval --run runs/repopt
     RepOpt-GhostNet: --model ghostnet --preset 0_5x --scales RepOptGhostNet_0_5x_scales.pth
     (repvgg is then the RepGhost baseline; eval works on its runs, export/quantize do not).
  5. Check the equivalence the method rests on (CSLA + SGD == target + RepOptimizer):
       repopt verify --preset tiny --scales runs/hs/scales.safetensors

DATA is a folder: class sub-folders (`train/<class>/*.jpg`, `test/<class>/`), CIFAR-10/100
binary batches, or MNIST/Fashion-MNIST IDX files. Every training flag can also come from a
JSON file (--config run.json, keys as the flags with `_`); flags override the file. Each run
folder gets run.json, model.bpk, metrics.csv, experiment.log and checkpoint/ (resume with
--resume). GPU backends are cargo features (--features wgpu / cuda) chosen with --device.";

/// The `repopt` command line.
#[derive(Parser, Debug)]
#[command(name = "repopt", version, about = ABOUT, long_about = None, after_long_help = WORKFLOW)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Hyper-search: train the model with trainable scales, then extract the scales.
    Hs(TrainArgs),
    /// Extract the scales of a trained hyper-search run into a scales file.
    ExtractScales {
        /// The hyper-search run folder.
        #[arg(long)]
        run: PathBuf,
        /// Output file (default: <run>/scales.safetensors).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train a model: the RepOptimizer on the plain target (default) or a baseline.
    Train(TrainArgs),
    /// Evaluate a trained run on its test split (or on --data).
    Eval {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// Another data folder of the same format and classes.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Evaluate on a random subset of this many images.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Device (cpu, wgpu, cuda:N).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Evaluate the checkpoint of the epoch with the best test top-1 (kept beside the last
        /// two) instead of the final model.
        #[arg(long)]
        best: bool,
    },
    /// The deployed model of a trained run (target: BN folded; RepVGG: fused) as a burnpack,
    /// with a JSON card beside it (architecture, classes, input size, normalisation, accuracy).
    Export {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// The burnpack to write; the card goes to the same name with `.json`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Post-training int8 quantization of a trained run in its deployed form (target: BN
    /// folded; RepVGG: fused), evaluated on the test images for each scheme: weights symmetric
    /// int8 (Burn's Q8F) per output channel or per tensor; activations uint8 at every block
    /// input and the classifier input, their ranges calibrated on training images by min-max or
    /// by percentiles; the first block and the classifier quantized or kept in f32.
    Quantize(QuantizeArgs),
    /// Check GR = CSLA: train a CSLA model with SGD and the equivalent target with the
    /// RepOptimizer on the same batches and print how far their kernels drift apart.
    Verify(crate::verify::VerifyArgs),
    /// Pictures: training curves of runs (`--runs a,b,c`), or the scales of a file (`--scales`).
    Plot {
        /// Run folders whose metrics.csv are drawn as curves.
        #[arg(long, value_delimiter = ',')]
        runs: Vec<PathBuf>,
        /// Legend labels of the runs (default: the folder names).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// A scales file to draw per block instead.
        #[arg(long)]
        scales: Option<PathBuf>,
        /// Draw the per-layer weight SQNR of these `repopt quantize` reports instead.
        #[arg(long, value_delimiter = ',')]
        quantization: Vec<PathBuf>,
        /// Draw the distribution of these runs' deployed 3x3 kernel values instead (each
        /// layer's values over its largest magnitude, as per-tensor int8 sees them).
        #[arg(long, value_delimiter = ',')]
        kernels: Vec<PathBuf>,
        /// Architecture preset (for .pth scales files).
        #[arg(long)]
        preset: Option<String>,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Per-block statistics of a scales file (ours, or an official .pth with --preset).
    InspectScales {
        /// The scales file.
        file: PathBuf,
        /// Architecture preset (needed for .pth files).
        #[arg(long)]
        preset: Option<String>,
        /// Also what the scales imply for the kernels before training: the Grad Mults'
        /// centre and identity emphasis, and the int8 weight SQNR of the re-initialised kernels
        /// beside a freshly fused RepVGG's (random kernels seeded by --seed).
        #[arg(long)]
        kernels: bool,
        /// Seed of the random kernels for --kernels.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

impl Cli {
    /// The run folder the command writes or reads, if it has one (for error messages).
    pub fn run_folder(&self) -> Option<PathBuf> {
        match &self.command {
            Command::Hs(args) | Command::Train(args) => args
                .resolve()
                .map(|c| c.out)
                .ok()
                .or_else(|| args.out.clone()),
            Command::ExtractScales { run, .. } | Command::Eval { run, .. } => Some(run.clone()),
            Command::Quantize(args) => Some(args.run.clone()),
            Command::Export { run, .. } => Some(run.clone()),
            _ => None,
        }
    }
}

/// Settings a run resumed with `--resume DIR` may take from the command line instead of its
/// run.json: they change where and how fast it computes, not what.
const RESUME_MAY_CHANGE: [&str; 3] = ["workers", "device", "conv"];

/// Settings of `hs` and `train`; unset flags come from --config, then from the defaults.
#[derive(Args, Debug, Default, Serialize)]
pub struct TrainArgs {
    /// JSON file with any of these settings (flags override it).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data folder.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// Data layout (detected when absent).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    /// Train on a random subset of this many images.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Evaluate on a random subset of this many images.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Skip unreadable images (reporting how many) instead of failing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_invalid: Option<bool>,
    /// Input resolution: every image is resized to it for training and evaluation (above 64:
    /// ImageNet recipe) [default: 32].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// RandAugment after the crop and flip, as the official ImageNet recipe (`AUG.PRESET
    /// raug15` is --randaugment 15): two operations per image out of sixteen, levels drawn from
    /// 0..M [default: off].
    #[arg(long, value_name = "M")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub randaugment: Option<u32>,
    /// Input normalisation (auto: by data set) [default: auto].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<crate::config::Normalization>,
    /// Network: vgg (RepOpt-VGG) or ghostnet (RepOpt-GhostNet; gray images are replicated to
    /// RGB; width by --preset) [default: vgg].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::config::ModelKind>,
    /// Architecture preset: tiny, a0, a1, b0, b1, b2, l1, l2 [default: a0]; with --model
    /// ghostnet the official widths 0_5x, 0_58x, 0_8x, 1_0x, 1_11x, 1_3x, 1_5x, 2_0x
    /// [default: 0_5x].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Blocks per stage, e.g. 2,4,14,1.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_blocks: Option<Vec<usize>>,
    /// Width multipliers, e.g. 0.75,0.75,0.75,2.5.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<Vec<f32>>,
    /// What to train (train only) [default: repopt].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Scales file for repopt / csla (ours, or an official .pth with the matching --preset).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<PathBuf>,
    /// Epochs [default: 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Batch size [default: 64].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Drop the last incomplete training batch of an epoch, as the official loader
    /// [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_last: Option<bool>,
    /// Peak learning rate [default: 0.1].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Learning rate the warm-up starts from [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_lr: Option<f64>,
    /// Floor of the cosine decay [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Scale --lr, --warmup-lr and --min-lr by batch size / 256 (the official ImageNet rule)
    /// [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_lr_scaling: Option<bool>,
    /// Update rule: sgd, or the official RepOptimizer adamw (Grad Mults of power 1; --lr and
    /// --weight-decay are AdamW's, decoupled; --momentum and --nesterov unused) [default: sgd].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<crate::config::OptimizerKind>,
    /// With --optimizer adamw, train even when the scales have negative values (AdamW's
    /// RepOptimizer then no longer follows the CSLA model; see docs/optimizers.md).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_negative_scales: Option<bool>,
    /// SGD momentum [default: 0.9].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Nesterov momentum [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    /// Weight decay on conv/linear weights [default: 5e-4].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// Warm-up epochs: a linear ramp from --warmup-lr alongside one cosine over the whole run
    /// (the official timm schedule) [default: 1].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<f64>,
    /// Label smoothing [default: 0.1].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f32>,
    /// Clip the global gradient norm of all parameters together (hyper-search only).
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f32>,
    /// Data-loading threads; 0 = bit-reproducible [default: 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Seed [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Device: cpu, wgpu, wgpu:cpu, cuda:N [default: cpu].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Convolution: native or im2col [default: im2col on the cpu device, else native].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvImpl>,
    /// Output folder [default: runs/latest].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    /// Continue a run from its last checkpoint: `--resume` continues --out; `--resume DIR`
    /// continues the run folder DIR with the settings of its run.json (flags given again must
    /// agree with them, except --workers and --device).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<String>,
}

impl TrainArgs {
    /// Defaults, then the --config file, then the flags.
    pub fn resolve(&self) -> Result<RunConfig> {
        for (flag, len) in [
            ("--num-blocks", self.num_blocks.as_ref().map(Vec::len)),
            ("--width", self.width.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len.filter(|&n| n != 4) {
                return Err(TrainError::Config(format!(
                    "{flag} needs 4 comma-separated values, one per stage, got {len}"
                )));
            }
        }
        if let Some(width) = &self.width
            && let Some(bad) = width.iter().find(|w| !(w.is_finite() && **w > 0.0))
        {
            return Err(TrainError::Config(format!(
                "--width needs 4 positive multipliers, got {bad} in {width:?}"
            )));
        }
        let folder = match self.resume.as_deref() {
            None | Some("true") | Some("false") => None,
            Some(dir) => Some(PathBuf::from(dir)),
        };
        let base = match (&folder, &self.config) {
            (Some(_), Some(_)) => {
                return Err(TrainError::Config(
                    "--resume DIR takes the settings of DIR/run.json; drop --config".into(),
                ));
            }
            (Some(dir), None) => run_folder::load_run_config(dir)?,
            (None, Some(path)) => RunConfig::load(path)?,
            (None, None) => RunConfig::default(),
        };
        let mut merged = serde_json::to_value(&base).expect("serializable");
        let flags = serde_json::to_value(self).expect("serializable");
        if let (Some(merged), Some(flags)) = (merged.as_object_mut(), flags.as_object()) {
            for (key, value) in flags {
                let recorded = merged.insert(key.clone(), value.clone());
                if folder.is_some()
                    && !RESUME_MAY_CHANGE.contains(&key.as_str())
                    && recorded.as_ref() != Some(value)
                {
                    return Err(TrainError::Config(format!(
                        "--{} {value} differs from the {} the run was started with \
                         (its run.json); a resumed run keeps its settings",
                        key.replace('_', "-"),
                        recorded.unwrap_or(serde_json::Value::Null)
                    )));
                }
            }
        }
        let mut config: RunConfig =
            serde_json::from_value(merged).map_err(|e| TrainError::Config(e.to_string()))?;
        // RepOpt-GhostNet's own default preset, where none was chosen.
        if config.model == crate::config::ModelKind::Ghostnet
            && self.preset.is_none()
            && base.preset == RunConfig::default().preset
        {
            config.preset = crate::config::GHOSTNET_DEFAULT_PRESET.into();
        }
        match (&folder, self.resume.as_deref()) {
            (Some(dir), _) => {
                config.out = dir.clone();
                config.resume = true;
            }
            (None, Some(flag)) => config.resume = flag == "true",
            (None, None) => {}
        }
        Ok(config)
    }
}

/// Settings of `quantize`; each list flag takes several values, and every combination is
/// evaluated.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Training images the activation ranges are calibrated on (no augmentation).
    #[arg(long, default_value_t = 1000)]
    pub calibration_images: usize,
    /// Weight scales: per-channel (one per output channel), per-tensor (one per layer).
    #[arg(long, value_delimiter = ',', default_value = "per-channel,per-tensor", value_parser = ["per-channel", "per-tensor"])]
    pub weights: Vec<String>,
    /// Activation ranges: minmax (smallest and largest value seen), percentile (see
    /// --percentile).
    #[arg(long, value_delimiter = ',', default_value = "minmax,percentile", value_parser = ["minmax", "percentile"])]
    pub activations: Vec<String>,
    /// The percentile of the percentile calibration (its low end: 100 − p).
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// The first block and the classifier: int8 (quantized like the rest) or f32 (kept).
    #[arg(long, value_delimiter = ',', default_value = "int8,f32", value_parser = ["int8", "f32"])]
    pub first_last: Vec<String>,
    /// Evaluate on a random subset of this many test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Device (cpu, wgpu, cuda:N).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the JSON report goes [default: <run>/quantization.json].
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the command line.
pub fn main_with(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Hs(args) => {
            let mut config = args.resolve()?;
            if args.method.is_some() && config.method != Method::Hs {
                return Err(TrainError::Config(
                    "`repopt hs` trains the hyper-search model; use `repopt train` for --method"
                        .into(),
                ));
            }
            config.method = Method::Hs;
            train(&config)
        }
        Command::Train(args) => {
            let config = args.resolve()?;
            if config.method == Method::Hs {
                return Err(TrainError::Config(
                    "use `repopt hs` for the hyper-search".into(),
                ));
            }
            train(&config)
        }
        Command::ExtractScales { run, out } => extract_scales(&run, out),
        Command::Eval {
            run,
            data,
            test_limit,
            device,
            best,
        } => eval(&run, data, test_limit, &device, best),
        Command::Quantize(args) => quantize(&args),
        Command::Export { run, out } => export(&run, &out),
        Command::Verify(args) => crate::verify::verify(&args),
        Command::InspectScales {
            file,
            preset,
            kernels,
            seed,
        } => inspect_scales(&file, preset.as_deref(), kernels.then_some(seed)),
        Command::Plot {
            runs,
            labels,
            scales,
            quantization,
            kernels,
            preset,
            out,
        } => {
            if !quantization.is_empty() {
                plot_quantization(&quantization, &labels, &out)
            } else if !kernels.is_empty() {
                plot_kernels(&kernels, &labels, &out)
            } else {
                plot(&runs, &labels, scales.as_deref(), preset.as_deref(), &out)
            }
        }
    }
}

fn extract_scales(run: &Path, out: Option<PathBuf>) -> Result<()> {
    let record = RunRecord::load(run)?;
    let model = record.load_model(run, &burn::tensor::Device::flex())?;
    let scales = VggScales::extract(&model)?;
    let out = out.unwrap_or_else(|| run.join(files::SCALES));
    scales.save(&out)?;
    println!(
        "scales of {} blocks written to {}",
        scales.blocks.len(),
        out.display()
    );
    Ok(())
}

/// `repopt eval`: the final model (or the best epoch's checkpoint) on the run's test split, or
/// on another data folder of the same format and classes.
fn eval(
    run: &Path,
    data: Option<PathBuf>,
    test_limit: Option<usize>,
    device: &str,
    best: bool,
) -> Result<()> {
    let ghostnet = run_folder::run_model_kind(run)? == crate::config::ModelKind::Ghostnet;
    let mut config = run_folder::load_run_config(run)?;
    if let Some(data) = data {
        config.data = data;
    }
    config.test_limit = test_limit.or(config.test_limit);
    let conv = crate::config::default_conv(device);
    let device = parse_device(device)?;
    let checkpoint = || -> Result<Option<PathBuf>> {
        if !best {
            return Ok(None);
        }
        let epoch = run_folder::best_epoch(run)?;
        println!("best epoch: {epoch}");
        Ok(Some(
            run.join(files::CHECKPOINTS)
                .join(format!("model-{epoch}.bpk")),
        ))
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
        let model = match checkpoint()? {
            None => record.load_model(run, &device)?,
            Some(path) => {
                run_folder::load_ghostnet_checkpoint(&path, &record.architecture, &device)?
            }
        };
        crate::eval::evaluate_ghostnet(&model, loader)?
    } else {
        let record = RunRecord::load(run)?;
        let model = match checkpoint()? {
            None => record.load_model(run, &device)?,
            Some(path) => run_folder::load_checkpoint_model(&path, &record.architecture, &device)?,
        }
        .with_conv_impl(conv);
        crate::eval::evaluate(&model, loader)?
    };
    println!("{}: {report}", run.display());
    Ok(())
}

fn export(run: &Path, out: &Path) -> Result<()> {
    let card = crate::export::export(run, out)?;
    println!(
        "{} ({} classes, {}x{} input) written to {} and {}",
        card.method,
        card.classes.len(),
        card.image_size,
        card.image_size,
        out.display(),
        crate::export::card_path(out).display()
    );
    Ok(())
}

fn train(config: &RunConfig) -> Result<()> {
    let outcome = trainer::run(config)?;
    println!();
    println!("{} finished: {}", config.method_name(), outcome.test);
    println!("  model      {}", outcome.model.display());
    if let Some(scales) = &outcome.scales {
        println!("  scales     {}", scales.display());
    }
    println!("  metrics    {}", outcome.metrics_csv.display());
    println!("  log        {}", outcome.log.display());
    println!(
        "  checkpoints {}",
        outcome.dir.join(files::CHECKPOINTS).display()
    );
    println!(
        "  {:.1} s per epoch over {} epoch(s)",
        outcome.seconds_per_epoch, outcome.epochs_run
    );
    if outcome.skipped_images > 0 {
        println!("  skipped {} unreadable images", outcome.skipped_images);
    }
    Ok(())
}

fn plot(
    runs: &[PathBuf],
    labels: &[String],
    scales: Option<&Path>,
    preset: Option<&str>,
    out: &Path,
) -> Result<()> {
    match (scales, runs.is_empty()) {
        (Some(file), true) => {
            let config = preset.and_then(RepOptVggConfig::preset);
            crate::plot::plot_scales(&VggScales::load(file, config.as_ref())?, out)?;
        }
        (None, false) => {
            let curves = runs
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let label = labels.get(i).cloned().unwrap_or_else(|| {
                        run.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    crate::plot::Curve::read(run, label)
                })
                .collect::<Result<Vec<_>>>()?;
            crate::plot::plot_curves(&curves, out)?;
        }
        _ => {
            return Err(TrainError::Config(
                "give either --runs (curves) or --scales (scales per block)".into(),
            ));
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// `labels[i]`, or the file or folder name of `path`.
fn label_of(labels: &[String], i: usize, path: &Path) -> String {
    labels.get(i).cloned().unwrap_or_else(|| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    })
}

fn plot_quantization(reports: &[PathBuf], labels: &[String], out: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for (i, path) in reports.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|e| trainer_file_error(path, e))?;
        let report: crate::quantize::QuantizeReport = serde_json::from_str(&text)
            .map_err(|e| trainer_file_error(path, format!("not a quantize report: {e}")))?;
        let label = label_of(labels, i, path.parent().unwrap_or(path));
        for (kind, pick) in [
            (
                "per tensor",
                (|l: &crate::quantize::LayerSqnr| l.per_tensor) as fn(&_) -> f64,
            ),
            ("per channel", |l| l.per_channel),
        ] {
            lines.push(crate::plot::Line {
                label: format!("{label}, {kind}"),
                points: report
                    .weight_sqnr_db
                    .iter()
                    .enumerate()
                    .map(|(x, l)| (x as f64, pick(l)))
                    .collect(),
            });
        }
    }
    crate::plot::plot_lines(
        "Weight quantization error per layer (int8)",
        "layer (forward order; last: classifier)",
        "SQNR (dB)",
        &lines,
        out,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

fn plot_kernels(runs: &[PathBuf], labels: &[String], out: &Path) -> Result<()> {
    let device = burn::tensor::Device::flex();
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let record = RunRecord::load(run)?;
        let model = crate::quantize::deployed(&record, run, &device)?;
        lines.push(crate::plot::Line {
            label: label_of(labels, i, run),
            points: crate::plot::kernel_histogram(&model, 64),
        });
    }
    crate::plot::plot_lines(
        "Deployed 3x3 kernel values over each layer's largest magnitude",
        "w / max|w| of its layer",
        "log10 fraction of values",
        &lines,
        out,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

fn trainer_file_error(path: &Path, message: impl ToString) -> TrainError {
    TrainError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn quantize(args: &QuantizeArgs) -> Result<()> {
    use repopt_models::quant::{Calibration, WeightGranularity};
    if !(args.percentile > 50.0 && args.percentile <= 100.0) {
        return Err(TrainError::Config(format!(
            "--percentile must be in (50, 100], got {}",
            args.percentile
        )));
    }
    let request = crate::quantize::QuantizeRequest {
        run: args.run.clone(),
        calibration_images: args.calibration_images,
        weights: args
            .weights
            .iter()
            .map(|w| match w.as_str() {
                "per-tensor" => WeightGranularity::PerTensor,
                _ => WeightGranularity::PerChannel,
            })
            .collect(),
        activations: args
            .activations
            .iter()
            .map(|a| match a.as_str() {
                "percentile" => Calibration::Percentile(args.percentile),
                _ => Calibration::MinMax,
            })
            .collect(),
        first_and_last: args.first_last.iter().map(|f| f == "int8").collect(),
        test_limit: args.test_limit,
        device: parse_device(&args.device)?,
    };
    let report = crate::quantize::quantize(&request)?;
    println!("{}", report.table());
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| args.run.join("quantization.json"));
    report.save(&json)?;
    println!("report: {}", json.display());
    Ok(())
}

fn inspect_scales(file: &Path, preset: Option<&str>, kernels: Option<u64>) -> Result<()> {
    let config = preset
        .map(|p| {
            RepOptVggConfig::preset(p)
                .ok_or_else(|| TrainError::Config(format!("unknown preset `{p}`")))
        })
        .transpose()?;
    let scales = VggScales::load(file, config.as_ref())?;
    println!("{} ({} blocks)", scales.source, scales.blocks.len());
    println!(
        "{:<10} {:>5} {:>5}  {:>22}  {:>22}  {:>22}",
        "block", "in", "out", "s (3x3) mean±std", "t (1x1) mean±std", "γ (identity) mean±std"
    );
    let cell = |v: &[f32]| {
        let s = ScaleStats::of(v);
        format!("{:+.3}±{:.3} [{:+.2},{:+.2}]", s.mean, s.std, s.min, s.max)
    };
    for block in &scales.blocks {
        println!(
            "{:<10} {:>5} {:>5}  {:>22}  {:>22}  {:>22}",
            block.spec.name,
            block.spec.in_channels,
            block.spec.out_channels,
            cell(&block.conv),
            cell(&block.conv_1x1),
            block
                .identity
                .as_deref()
                .map(cell)
                .unwrap_or_else(|| "-".into())
        );
    }
    match kernels {
        Some(seed) => print_implied_kernels(&scales, config, file, seed),
        None => Ok(()),
    }
}

fn print_implied_kernels(
    scales: &VggScales,
    preset: Option<RepOptVggConfig>,
    file: &Path,
    seed: u64,
) -> Result<()> {
    let config = preset
        .or_else(|| scales.architecture.clone())
        .ok_or_else(|| {
            TrainError::Config(format!(
                "{}: the file records no architecture; give --preset for --kernels",
                file.display()
            ))
        })?;
    let device = burn::tensor::Device::flex().autodiff();
    device.seed(seed);
    let rows = repopt_models::implied::implied_kernels(scales, &config, &device)?;
    println!("\nimplied by the scales before training (random kernels, seed {seed}):");
    println!(
        "{:<10} {:>9} {:>9}  {:>15}  {:>17}  {:>17}",
        "block", "centre/e", "diag/e", "peak/RMS o | v", "SQNR/tensor o | v", "SQNR/chan. o | v"
    );
    for r in &rows {
        let diag = r
            .identity_mult_ratio
            .map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        println!(
            "{:<10} {:>9.2} {:>9}  {:>7.1} | {:<5.1}  {:>7.1} | {:<7.1}  {:>7.1} | {:<7.1}",
            r.block,
            r.centre_mult_ratio,
            diag,
            r.repopt_peak_to_rms,
            r.repvgg_peak_to_rms,
            r.repopt_sqnr_tensor,
            r.repvgg_sqnr_tensor,
            r.repopt_sqnr_channel,
            r.repvgg_sqnr_channel
        );
    }
    println!(
        "centre/e, diag/e: median Grad Mult of the centre and of the identity diagonal over the \
         edges'; o: RepOpt-VGG re-initialised from the scales, v: RepVGG fused at initialisation; \
         SQNR in dB (int8, symmetric)"
    );
    Ok(())
}
