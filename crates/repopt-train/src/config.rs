//! The settings of a run, as one serialisable struct: the CLI fills it from flags and config
//! files, and every run writes it next to its artifacts (`run.json`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::ArgAction;
use repopt_models::ghostnet::{GHOSTNET_PRESETS, GhostMode, RepOptGhostNetConfig};
use repopt_models::{BlockMode, ConvImpl, RepOptVggConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError, file_error};

/// The update rule: SGD, or the official RepOptimizer AdamW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with momentum (PyTorch semantics), coupled L2 decay; Grad Mults of power 2.
    #[default]
    Sgd,
    /// The official RepOptimizer AdamW (betas 0.9, 0.999, eps 1e-8, decoupled decay); Grad
    /// Mults of power 1, applied to the gradient and to the first moment.
    Adamw,
}

/// The network family a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// RepOpt-VGG (`--preset tiny`, `a0`, …, `l2`).
    #[default]
    Vgg,
    /// RepOpt-GhostNet (`--preset 0_5x`, …, `2_0x`, the official widths).
    Ghostnet,
}

/// The RepOpt-GhostNet preset `repopt train --model ghostnet` uses unless `--preset` says
/// otherwise.
pub const GHOSTNET_DEFAULT_PRESET: &str = "0_5x";

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Hyper-search: the three-branch model with trainable scales (then extract them).
    Hs,
    /// The plain target model, re-initialised from scales and trained with the RepOptimizer.
    Repopt,
    /// The plain target model with all scales 1 (the paper's ablation), RepOptimizer.
    RepoptOnes,
    /// The plain target model with ordinary SGD (no Grad Mults, no re-initialisation).
    Plain,
    /// The structural baseline: RepVGG's three branches with BN, fused for evaluation.
    Repvgg,
    /// The CSLA model (constant scales from a scales file) with ordinary SGD.
    Csla,
    /// Ablation: the target re-initialised from the scales (Rule of Initialization), trained
    /// with ordinary SGD (no Grad Mults).
    ReinitOnly,
    /// Ablation: the target with its ordinary initialisation, trained with the RepOptimizer's
    /// Grad Mults (no re-initialisation).
    MultsOnly,
}

impl Method {
    /// The block mode the method trains.
    pub fn mode(self) -> BlockMode {
        match self {
            Method::Hs => BlockMode::HyperSearch,
            Method::Repopt
            | Method::RepoptOnes
            | Method::Plain
            | Method::ReinitOnly
            | Method::MultsOnly => BlockMode::Target,
            Method::Repvgg => BlockMode::RepVgg,
            Method::Csla => BlockMode::Csla,
        }
    }

    /// The ghost-module mode the method trains (RepOpt-GhostNet; `repvgg` is the RepGhost
    /// baseline).
    pub fn ghost_mode(self) -> GhostMode {
        match self {
            Method::Hs => GhostMode::HyperSearch,
            Method::Repopt
            | Method::RepoptOnes
            | Method::Plain
            | Method::ReinitOnly
            | Method::MultsOnly => GhostMode::Target,
            Method::Repvgg => GhostMode::Rep,
            Method::Csla => GhostMode::Csla,
        }
    }

    /// Whether the method needs a scales file.
    pub fn needs_scales(self) -> bool {
        matches!(
            self,
            Method::Repopt | Method::Csla | Method::ReinitOnly | Method::MultsOnly
        )
    }
}

/// The per-channel mean and std inputs are normalised with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    /// By data set: CIFAR-10 / CIFAR-100 binaries their own, IDX files Fashion-MNIST's, image
    /// folders ImageNet's.
    #[default]
    Auto,
    /// CIFAR-10's: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
    Cifar10,
    /// CIFAR-100's, as the official `data/build.py`: mean (0.5071, 0.4865, 0.4409), std
    /// (0.2673, 0.2564, 0.2762).
    Cifar100,
    /// ImageNet's: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    Imagenet,
    /// Fashion-MNIST's (one channel): mean 0.2860, std 0.3530.
    FashionMnist,
}

/// Whether an image folder's decoded images are kept in memory after their first epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CacheImages {
    /// Kept when all images of both splits decode to at most [`CACHE_IMAGES_AUTO_BYTES`]
    /// (estimated from each split's first image): CIFAR-sized folders, not ImageNet. Never more
    /// than that is kept, should the estimate be low (images of other sizes); images beyond it
    /// are decoded from their files each time.
    #[default]
    Auto,
    /// Always kept.
    On,
    /// Decoded from their files in every epoch.
    Off,
}

/// The most decoded bytes `--cache-images auto` keeps: 2 GiB.
pub const CACHE_IMAGES_AUTO_BYTES: u64 = 2 << 30;

/// How a data folder is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// `train/<class>/*.jpg|png` and `test/<class>/…` (or `val/`): ImageNet layout.
    ImageFolder,
    /// CIFAR-10 binary batches (`data_batch_1.bin` …, `test_batch.bin`).
    Cifar10,
    /// CIFAR-100 binary (`train.bin`, `test.bin`).
    Cifar100,
    /// MNIST / Fashion-MNIST IDX files (gzipped or not).
    Idx,
}

impl DataFormat {
    /// Guesses the layout of `dir` from the files in it.
    pub fn detect(dir: &Path) -> Result<Self> {
        let has = |name: &str| dir.join(name).exists();
        if !dir.is_dir() {
            return Err(file_error(dir, "no such data folder"));
        }
        if has("train-images-idx3-ubyte") || has("train-images-idx3-ubyte.gz") {
            Ok(DataFormat::Idx)
        } else if has("data_batch_1.bin") || has("cifar-10-batches-bin") {
            Ok(DataFormat::Cifar10)
        } else if has("train.bin") || has("cifar-100-binary") {
            Ok(DataFormat::Cifar100)
        } else if has("train") {
            Ok(DataFormat::ImageFolder)
        } else {
            Err(file_error(
                dir,
                "cannot tell the data format (expected IDX files, CIFAR binary batches, or \
                 `train/<class>/` image folders); pass --format",
            ))
        }
    }
}

/// Every setting of a training run: one schema for the CLI flags of `repopt train` / `hs`
/// (field names with `-` for `_`; these doc comments are their help, [`Default`] their
/// defaults), the keys of a JSON config file, and the run's record (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Data folder.
    #[arg(long, value_parser = any_path, default_value = "", hide_default_value = true)]
    pub data: PathBuf,
    /// Data layout (detected when absent).
    #[arg(long, value_enum)]
    pub format: Option<DataFormat>,
    /// Train on a random subset of this many training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate on a random subset of this many test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Decode every image of an image folder before training and skip the unreadable ones
    /// (reporting how many) instead of failing. Without it every file's header is read at the
    /// start, and the first empty or foreign file stops the run there.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().skip_invalid)]
    pub skip_invalid: bool,
    /// Keep an image folder's decoded images in memory after their first read, so that later
    /// epochs decode nothing (the same pixels, the same run): auto (when both splits are
    /// estimated to decode to at most 2 GiB, and never more than that), on, off.
    #[arg(long, value_enum, default_value_t = RunConfig::default().cache_images)]
    pub cache_images: CacheImages,
    /// Input resolution: every image is brought to it, for training and evaluation alike (above
    /// 64: the ImageNet recipe, else the CIFAR one).
    #[arg(long, default_value_t = RunConfig::default().image_size)]
    pub image_size: usize,
    /// RandAugment after the crop and flip of the training images, as the official ImageNet
    /// recipe (`AUG.PRESET raug15` is --randaugment 15): two operations per image out of
    /// sixteen, levels drawn from 0..M [default: off].
    #[arg(long, value_name = "M")]
    pub randaugment: Option<u32>,
    /// Input normalisation (auto: by data set).
    #[arg(long, value_enum, default_value_t = RunConfig::default().normalize)]
    pub normalize: Normalization,
    /// Network: vgg (RepOpt-VGG) or ghostnet (RepOpt-GhostNet; gray images are replicated to
    /// RGB; width by --preset).
    #[arg(long, value_enum, default_value_t = RunConfig::default().model)]
    pub model: ModelKind,
    /// Architecture preset: tiny, a0, a1, b0, b1, b2, l1, l2; with --model ghostnet the
    /// official widths 0_5x, 0_58x, 0_8x, 1_0x, 1_11x, 1_3x, 1_5x, 2_0x [default: a0; with
    /// --model ghostnet 0_5x].
    #[arg(long, default_value_t = RunConfig::default().preset, hide_default_value = true)]
    pub preset: String,
    /// Blocks per stage, e.g. 2,4,14,1 (instead of the preset's).
    #[arg(long, value_parser = four::<usize>)]
    pub num_blocks: Option<[usize; 4]>,
    /// Width multipliers per stage, e.g. 0.75,0.75,0.75,2.5 (instead of the preset's).
    #[arg(long, value_parser = widths, allow_hyphen_values = true)]
    pub width: Option<[f32; 4]>,
    /// What to train (`repopt train` only).
    #[arg(long, value_enum, default_value_t = RunConfig::default().method)]
    pub method: Method,
    /// Scales file for the methods that need one (ours, or an official .pth with the matching
    /// --preset).
    #[arg(long)]
    pub scales: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = RunConfig::default().epochs)]
    pub epochs: usize,
    /// Images per batch.
    #[arg(long, default_value_t = RunConfig::default().batch_size)]
    pub batch_size: usize,
    /// Drop the last incomplete training batch of each epoch, as the official loader.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().drop_last)]
    pub drop_last: bool,
    /// Peak learning rate (after warm-up).
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f64>, default_value_t = RunConfig::default().lr)]
    pub lr: f64,
    /// Learning rate the warm-up starts from (`TRAIN.WARMUP_LR`).
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f64>, default_value_t = RunConfig::default().warmup_lr)]
    pub warmup_lr: f64,
    /// Floor of the cosine decay (`TRAIN.MIN_LR`).
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f64>, default_value_t = RunConfig::default().min_lr)]
    pub min_lr: f64,
    /// Scale --lr, --warmup-lr and --min-lr by batch size / 256, as `main_repopt.py` does (the
    /// official ImageNet rule).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().linear_lr_scaling)]
    pub linear_lr_scaling: bool,
    /// Update rule: sgd, or the official RepOptimizer adamw (Grad Mults of power 1; --lr and
    /// --weight-decay are AdamW's, decoupled; --momentum and --nesterov unused).
    #[arg(long, value_enum, default_value_t = RunConfig::default().optimizer)]
    pub optimizer: OptimizerKind,
    /// With --optimizer adamw, train even with negative `s`/`t` scales, where AdamW's
    /// RepOptimizer no longer follows the CSLA model (see docs/optimizers.md).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().allow_negative_scales)]
    pub allow_negative_scales: bool,
    /// SGD momentum.
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f64>, default_value_t = RunConfig::default().momentum)]
    pub momentum: f64,
    /// Nesterov momentum.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().nesterov)]
    pub nesterov: bool,
    /// L2 weight decay on conv and linear weights (and identity scales).
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f32>, default_value_t = RunConfig::default().weight_decay)]
    pub weight_decay: f32,
    /// Warm-up epochs (may be fractional): a linear ramp from --warmup-lr alongside one cosine
    /// decay over the whole run (timm's schedule with `warmup_prefix=False`, as the official
    /// recipe).
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f64>,
          default_value_t = RunConfig::default().warmup_epochs)]
    pub warmup_epochs: f64,
    /// Label smoothing of the training loss.
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f32>,
          default_value_t = RunConfig::default().label_smoothing)]
    pub label_smoothing: f32,
    /// Clip the global norm of all gradients together (`clip_grad_norm_`); hyper-search only.
    #[arg(long, allow_hyphen_values = true, value_parser = finite::<f32>)]
    pub clip_grad_norm: Option<f32>,
    /// Data-loading threads; 0 loads on the training thread (bit-reproducible runs).
    #[arg(long, default_value_t = RunConfig::default().workers)]
    pub workers: usize,
    /// Seed of the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = RunConfig::default().seed)]
    pub seed: u64,
    /// Compute device: cpu, wgpu, wgpu:cpu, cuda:N.
    #[arg(long, default_value_t = RunConfig::default().device)]
    pub device: String,
    /// How convolutions are computed: native (the backend's own conv), im2col (one matrix
    /// product per conv for the whole batch, through tensor operations) or patches (the same
    /// product as an operation of its own on the cpu device: tiled, patches never kept)
    /// [default: patches on the cpu device, native elsewhere].
    #[arg(long)]
    pub conv: Option<ConvImpl>,
    /// Recompute in the backward pass what the cheap operations computed (BN, ReLU, the
    /// convolutions' patch matrices) instead of keeping it from the forward pass: less memory
    /// for some more time, the same numbers (Burn's balanced gradient checkpointing).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = RunConfig::default().gradient_checkpointing)]
    pub gradient_checkpointing: bool,
    /// Output folder (checkpoints, model, metrics, logs).
    #[arg(long, default_value_os_t = RunConfig::default().out)]
    pub out: PathBuf,
    /// Continue from the last checkpoint in `out` (on the command line: `--resume`).
    #[arg(skip)]
    pub resume: bool,
}

/// A path as given, the empty one included (the unset data folder).
fn any_path(text: &str) -> std::result::Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

/// A finite number (JSON, where settings are recorded, has no NaN or infinity).
fn finite<T>(text: &str) -> std::result::Result<T, String>
where
    T: std::str::FromStr + Into<f64> + Copy,
    T::Err: std::fmt::Display,
{
    let value = text.trim().parse::<T>().map_err(|e| e.to_string())?;
    match value.into().is_finite() {
        true => Ok(value),
        false => Err("needs a finite number".into()),
    }
}

/// Four positive, finite width multipliers.
fn widths(text: &str) -> std::result::Result<[f32; 4], String> {
    let widths = four::<f32>(text)?;
    match widths.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        Some(bad) => Err(format!("needs 4 positive multipliers, got {bad}")),
        None => Ok(widths),
    }
}

/// Four comma-separated values, one per stage.
fn four<T: std::str::FromStr>(text: &str) -> std::result::Result<[T; 4], String>
where
    T::Err: std::fmt::Display,
{
    let values = text
        .split(',')
        .map(|v| v.trim().parse::<T>().map_err(|e| format!("`{v}`: {e}")))
        .collect::<std::result::Result<Vec<T>, String>>()?;
    let len = values.len();
    values
        .try_into()
        .map_err(|_| format!("needs 4 comma-separated values, one per stage, got {len}"))
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            format: None,
            train_limit: None,
            test_limit: None,
            skip_invalid: false,
            cache_images: CacheImages::Auto,
            image_size: 32,
            randaugment: None,
            normalize: Normalization::Auto,
            model: ModelKind::Vgg,
            preset: "a0".into(),
            num_blocks: None,
            width: None,
            method: Method::Repopt,
            scales: None,
            epochs: 10,
            batch_size: 64,
            drop_last: true,
            lr: 0.1,
            warmup_lr: 0.0,
            min_lr: 0.0,
            linear_lr_scaling: false,
            optimizer: OptimizerKind::Sgd,
            allow_negative_scales: false,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            warmup_epochs: 1.0,
            label_smoothing: 0.1,
            clip_grad_norm: None,
            workers: 2,
            seed: 0,
            device: "cpu".into(),
            conv: None,
            gradient_checkpointing: false,
            out: PathBuf::from("runs/latest"),
            resume: false,
        }
    }
}

/// The faster convolution on `device` (a `--device` string): the patch-matrix operation of its own
/// on the `cpu` device (Burn's `flex`, whose own conv runs one narrow matrix product per image;
/// see `docs/benchmarks.md`), the backend's own elsewhere.
pub fn default_conv(device: &str) -> ConvImpl {
    if device.trim() == "cpu" {
        ConvImpl::Patches
    } else {
        ConvImpl::Native
    }
}

impl RunConfig {
    /// The device the model trains on: `device` with automatic differentiation, and with
    /// Burn's balanced gradient checkpointing when [`gradient_checkpointing`](Self::gradient_checkpointing)
    /// is set.
    pub fn training_device(&self, device: &Device) -> Device {
        let device = device.clone().autodiff();
        match self.gradient_checkpointing {
            true => device.gradient_checkpointing(),
            false => device,
        }
    }

    /// The convolution the run uses: [`conv`](Self::conv), or the best one for its device.
    pub fn conv_impl(&self) -> ConvImpl {
        self.conv.unwrap_or_else(|| default_conv(&self.device))
    }

    /// Takes the RepOpt-VGG architecture a scales file of this crate records (`--scales F`
    /// without `--preset`), or, when `chosen` (the preset or stage lists were set), checks that
    /// it agrees. Nothing to do for other models, `.pth` files (which record none) and methods
    /// without scales.
    pub fn adopt_scales_architecture(&mut self, chosen: bool) -> Result<()> {
        let Some(path) = self
            .scales
            .as_deref()
            .filter(|_| self.model == ModelKind::Vgg && self.method.needs_scales())
        else {
            return Ok(());
        };
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt")
        ) {
            return Ok(());
        }
        let Some(recorded) = repopt_models::VggScales::load(path, None)?.architecture else {
            return Ok(());
        };
        let stages = |c: &RepOptVggConfig| (c.num_blocks, c.width_multiplier);
        if !chosen {
            let preset = repopt_models::PRESETS.iter().find(|p| {
                RepOptVggConfig::preset(p).is_some_and(|c| stages(&c) == stages(&recorded))
            });
            (self.num_blocks, self.width) = match preset {
                Some(name) => {
                    self.preset = (*name).into();
                    (None, None)
                }
                None => (Some(recorded.num_blocks), Some(recorded.width_multiplier)),
            };
            return Ok(());
        }
        let ours = self.architecture(1, recorded.in_channels)?;
        if stages(&ours) != stages(&recorded) {
            return Err(TrainError::Config(format!(
                "--preset {} (blocks {:?}, widths {:?}) differs from the architecture {} was \
                 searched on (blocks {:?}, widths {:?}); drop --preset, --num-blocks and --width \
                 to train that one",
                self.preset,
                ours.num_blocks,
                ours.width_multiplier,
                path.display(),
                recorded.num_blocks,
                recorded.width_multiplier
            )));
        }
        Ok(())
    }

    /// The architecture for `num_classes` classes of `in_channels`-channel images.
    pub fn architecture(&self, num_classes: usize, in_channels: usize) -> Result<RepOptVggConfig> {
        let mut config = RepOptVggConfig::preset(&self.preset).ok_or_else(|| {
            TrainError::Config(format!(
                "unknown preset `{}` (known: {})",
                self.preset,
                repopt_models::PRESETS.join(", ")
            ))
        })?;
        if let Some(blocks) = self.num_blocks {
            config.num_blocks = blocks;
        }
        if let Some(width) = self.width {
            config.width_multiplier = width;
        }
        Ok(config
            .with_num_classes(num_classes)
            .with_in_channels(in_channels)
            .with_mode(self.method.mode()))
    }

    /// The RepOpt-GhostNet architecture for `num_classes` classes (3-channel inputs: gray images
    /// are replicated to RGB by the data pipeline).
    pub fn ghostnet_architecture(&self, num_classes: usize) -> Result<RepOptGhostNetConfig> {
        let config = RepOptGhostNetConfig::preset(&self.preset).ok_or_else(|| {
            TrainError::Config(format!(
                "unknown RepOpt-GhostNet preset `{}` (known: {})",
                self.preset,
                GHOSTNET_PRESETS
                    .iter()
                    .map(|(name, _)| name.trim_start_matches("repoptghostnet_"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        Ok(config
            .with_num_classes(num_classes)
            .with_mode(self.method.ghost_mode()))
    }

    /// Settings RepOpt-GhostNet runs do not take.
    fn validate_ghostnet(&self) -> Result<()> {
        let unsupported = [
            ("--num-blocks", self.num_blocks.is_some()),
            ("--width", self.width.is_some()),
        ];
        if let Some((flag, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(TrainError::Config(format!(
                "{flag} is for RepOpt-VGG only; with --model ghostnet choose the width with \
                 --preset (0_5x, 0_58x, 0_8x, 1_0x, 1_11x, 1_3x, 1_5x, 2_0x)"
            )));
        }
        if let Some(conv) = self.conv {
            return Err(TrainError::Config(format!(
                "--conv {conv:?} is for RepOpt-VGG only; RepOpt-GhostNet uses the backend's own \
                 convolutions"
            )));
        }
        self.ghostnet_architecture(1).map(|_| ())
    }

    /// Checks settings that contradict each other, with messages that say what to change.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(TrainError::Config(m));
        if self.model == ModelKind::Ghostnet {
            self.validate_ghostnet()?;
        }
        if self.data.as_os_str().is_empty() {
            return fail("no data folder given (--data)".into());
        }
        if self.method.needs_scales() && self.scales.is_none() {
            return fail(format!(
                "method `{}` needs a scales file (--scales), from `repopt hs` / \
                 `repopt extract-scales` or an official .pth",
                self.method_name()
            ));
        }
        if self.clip_grad_norm.is_some() && self.method != Method::Hs {
            return fail(
                "gradient clipping is allowed only for the hyper-search (`hs`): with Grad \
                 Mults it would break the equivalence with the CSLA model"
                    .into(),
            );
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return fail("epochs and batch size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return fail(format!("--lr must be a positive number, got {}", self.lr));
        }
        for (flag, value) in [("--warmup-lr", self.warmup_lr), ("--min-lr", self.min_lr)] {
            if !(value >= 0.0 && value.is_finite()) {
                return fail(format!("{flag} must be ≥ 0, got {value}"));
            }
        }
        if self.min_lr > self.lr {
            return fail(format!(
                "--min-lr {} is above --lr {}",
                self.min_lr, self.lr
            ));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return fail(format!(
                "--warmup-epochs must be ≥ 0, got {}",
                self.warmup_epochs
            ));
        }
        if let Some(norm) = self.clip_grad_norm
            && !(norm > 0.0 && norm.is_finite())
        {
            return fail(format!("--clip-grad-norm must be positive, got {norm}"));
        }
        if let Some(width) = self.width
            && let Some(bad) = width.iter().find(|w| !(w.is_finite() && **w > 0.0))
        {
            return fail(format!(
                "--width needs 4 positive multipliers, got {bad} in {width:?}"
            ));
        }
        if let Some(blocks) = self.num_blocks
            && blocks.contains(&0)
        {
            return fail(format!(
                "--num-blocks needs at least 1 block per stage, got {blocks:?}"
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return fail(format!(
                "--momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return fail(format!(
                "--weight-decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if self.image_size < 8 {
            return fail(format!(
                "--image-size must be at least 8 pixels, got {}",
                self.image_size
            ));
        }
        if self.randaugment == Some(0) {
            return fail("--randaugment needs a magnitude of at least 1 (levels 0..M)".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return fail("label smoothing must be in [0, 1)".into());
        }
        Ok(())
    }

    /// `(lr, warmup_lr, min_lr)` after the optional linear scaling rule.
    pub fn scaled_rates(&self) -> (f64, f64, f64) {
        let scale = |lr: f64| match self.linear_lr_scaling {
            true => crate::schedule::linear_scaled(lr, self.batch_size),
            false => lr,
        };
        (scale(self.lr), scale(self.warmup_lr), scale(self.min_lr))
    }

    /// The method's CLI name.
    pub fn method_name(&self) -> String {
        clap::ValueEnum::to_possible_value(&self.method)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    /// Reads a JSON config file: these settings, or a run folder's `run.json` (whose `config`
    /// holds them).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| file_error(path, format!("bad config: {e}")))?;
        let settings = match value.get("config") {
            Some(config) if value.get("architecture").is_some() => config.clone(),
            _ => value,
        };
        serde_json::from_value(settings).map_err(|e| file_error(path, format!("bad config: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_device_checkpoints_when_asked() {
        use burn::tensor::GradientCheckpointingStrategy as Strategy;
        let mut config = RunConfig::default();
        let strategy = |config: &RunConfig| {
            config
                .training_device(&Device::flex())
                .gradient_checkpointing_strategy()
        };
        assert_eq!(strategy(&config), Some(Strategy::Disabled));
        config.gradient_checkpointing = true;
        assert_eq!(strategy(&config), Some(Strategy::Balanced));
        // Run records written before the setting existed keep every activation.
        let old: RunConfig = serde_json::from_str(r#"{"device": "cpu"}"#).unwrap();
        assert!(!old.gradient_checkpointing);
    }

    #[test]
    fn convolution_follows_the_device_unless_set() {
        let mut config = RunConfig::default();
        assert_eq!(config.conv_impl(), ConvImpl::Patches);
        config.device = "wgpu".into();
        assert_eq!(config.conv_impl(), ConvImpl::Native);
        config.conv = Some(ConvImpl::Im2col);
        assert_eq!(config.conv_impl(), ConvImpl::Im2col);
        let json: RunConfig = serde_json::from_str(r#"{"conv": "native"}"#).unwrap();
        assert_eq!(json.conv_impl(), ConvImpl::Native);
        // Run records written before the setting existed still load.
        let old: RunConfig = serde_json::from_str(r#"{"device": "cpu"}"#).unwrap();
        assert_eq!(old.conv, None);
    }
}
