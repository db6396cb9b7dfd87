//! What one benchmark process measures.

use burn::tensor::Device;
use repopt_models::{BlockMode, ConvImpl, RepOptVggConfig};
use serde::{Deserialize, Serialize};

use crate::{BenchError, Result};

/// What is timed, on which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Training step of the plain `Target` model with the RepOptimizer SGD: a Grad Mult on every
    /// 3×3 kernel, from random scales through `RepOptVggHandler::grad_mults_for`.
    TrainRepopt,
    /// [`TrainRepopt`](Mode::TrainRepopt) with its Grad Mults kept dense in host memory (one
    /// `f32` per kernel weight) instead of factored: what the factored form saves.
    TrainRepoptDense,
    /// Training step of the plain `Target` model with the same SGD and no Grad Mults.
    TrainSgd,
    /// Training step of the three-branch RepVGG (`BlockMode::RepVgg`) with the same SGD.
    TrainRepvgg,
    /// Training step of the hyper-search model (`BlockMode::HyperSearch`) with the same SGD.
    TrainHs,
    /// Forward pass of the `Target` model in eval mode.
    InferTarget,
    /// Forward pass of the `Target` model deployed: each BN folded into its conv (`fuse_target`:
    /// one 3×3 conv with bias, the form a fused RepVGG has).
    InferTargetFused,
    /// Forward pass of RepVGG fused for deployment (`fuse_repvgg`: one 3×3 conv with bias).
    InferRepvggFused,
    /// Forward pass of the three-branch RepVGG in eval mode, not fused.
    InferRepvggUnfused,
}

impl Mode {
    /// Every mode, training first.
    pub const ALL: [Mode; 9] = [
        Mode::TrainRepopt,
        Mode::TrainRepoptDense,
        Mode::TrainSgd,
        Mode::TrainRepvgg,
        Mode::TrainHs,
        Mode::InferTarget,
        Mode::InferTargetFused,
        Mode::InferRepvggFused,
        Mode::InferRepvggUnfused,
    ];

    /// The name on the command line and in results (`train-repopt`, …).
    pub fn name(self) -> &'static str {
        match self {
            Mode::TrainRepopt => "train-repopt",
            Mode::TrainRepoptDense => "train-repopt-dense",
            Mode::TrainSgd => "train-sgd",
            Mode::TrainRepvgg => "train-repvgg",
            Mode::TrainHs => "train-hs",
            Mode::InferTarget => "infer-target",
            Mode::InferTargetFused => "infer-target-fused",
            Mode::InferRepvggFused => "infer-repvgg-fused",
            Mode::InferRepvggUnfused => "infer-repvgg-unfused",
        }
    }

    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::TrainRepopt => "Target + RepOpt SGD",
            Mode::TrainRepoptDense => "Target + RepOpt SGD, dense mults",
            Mode::TrainSgd => "Target + SGD",
            Mode::TrainRepvgg => "RepVGG",
            Mode::TrainHs => "HyperSearch",
            Mode::InferTarget => "Target",
            Mode::InferTargetFused => "Target fused",
            Mode::InferRepvggFused => "RepVGG fused",
            Mode::InferRepvggUnfused => "RepVGG unfused",
        }
    }

    /// Whether a step is a training step (else a forward pass).
    pub fn is_training(self) -> bool {
        matches!(
            self,
            Mode::TrainRepopt
                | Mode::TrainRepoptDense
                | Mode::TrainSgd
                | Mode::TrainRepvgg
                | Mode::TrainHs
        )
    }

    /// The block mode the model is built in (before any fusion).
    pub fn block_mode(self) -> BlockMode {
        match self {
            Mode::TrainRepopt
            | Mode::TrainRepoptDense
            | Mode::TrainSgd
            | Mode::InferTarget
            | Mode::InferTargetFused => BlockMode::Target,
            Mode::TrainRepvgg | Mode::InferRepvggFused | Mode::InferRepvggUnfused => {
                BlockMode::RepVgg
            }
            Mode::TrainHs => BlockMode::HyperSearch,
        }
    }
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mode `{s}` (expected one of {})", names.join(", "))
            })
    }
}

/// The Burn backend a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Burn's `flex` CPU backend (the project's CPU backend).
    Flex,
    /// Burn's deprecated `ndarray` CPU backend (needs this crate's `ndarray` feature).
    Ndarray,
    /// The official PyTorch code, measured by `benches/pytorch/bench.py` (not by this crate):
    /// its results share the format, so that one report compares both.
    Pytorch,
}

impl Backend {
    /// The name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Pytorch => "pytorch",
        }
    }

    /// The backend's device, without autodiff.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            Backend::Ndarray => ndarray_device(),
            Backend::Pytorch => Err(BenchError::Invalid(
                "PyTorch is measured by benches/pytorch/bench.py, not by repopt-bench".into(),
            )),
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // Burn's ndarray backend is deprecated; it is only measured for comparison.
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    Err(BenchError::Invalid(
        "the ndarray backend is not compiled in: build repopt-bench with `--features ndarray`"
            .into(),
    ))
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        match s {
            "flex" => Ok(Backend::Flex),
            "ndarray" => Ok(Backend::Ndarray),
            "pytorch" => Ok(Backend::Pytorch),
            other => Err(format!(
                "unknown backend `{other}` (expected flex, ndarray or pytorch)"
            )),
        }
    }
}

/// One measurement: a model, an input, a mode, and how many steps to take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// RepOpt-VGG preset (`RepOptVggConfig::preset`).
    pub preset: String,
    /// Width multipliers of stages 1–4 replacing the preset's, if given.
    pub width: Option<[f32; 4]>,
    /// Height and width of the square 3-channel input.
    pub image_size: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Classifier outputs.
    pub classes: usize,
    /// What is timed.
    pub mode: Mode,
    /// Backend.
    pub backend: Backend,
    /// How the model's convolutions are computed (results written before this field existed
    /// used Burn's `conv2d`).
    #[serde(default)]
    pub conv: ConvImpl,
    /// Whether training recomputes the activations of memory-bound operations in the backward
    /// pass instead of keeping them (Burn's balanced gradient checkpointing,
    /// `Device::gradient_checkpointing`). Results written before this field existed kept them.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Untimed steps before the timed ones.
    pub warmup_steps: usize,
    /// Timed steps; the median is reported.
    pub measured_steps: usize,
    /// Seed of the images, labels, scales and model initialisation.
    pub seed: u64,
}

impl Case {
    /// The architecture, in the mode's block mode.
    pub fn config(&self) -> Result<RepOptVggConfig> {
        let config = RepOptVggConfig::preset(&self.preset)
            .ok_or_else(|| BenchError::Invalid(format!("unknown preset `{}`", self.preset)))?;
        let config = match self.width {
            Some(width) => RepOptVggConfig {
                width_multiplier: width,
                ..config
            },
            None => config,
        };
        Ok(config
            .with_num_classes(self.classes)
            .with_mode(self.mode.block_mode()))
    }

    /// The preset's name, followed by the width multipliers when they replace the preset's
    /// (`tiny@w0.25,0.25,0.25,0.25`), and by `, checkpointed` for gradient checkpointing: the
    /// name of the setting a measurement is compared within.
    pub fn model_name(&self) -> String {
        let name = match self.width {
            Some(w) => format!("{}@w{},{},{},{}", self.preset, w[0], w[1], w[2], w[3]),
            None => self.preset.clone(),
        };
        match self.gradient_checkpointing {
            true => format!("{name}, checkpointed"),
            false => name,
        }
    }

    /// Checks the step counts and sizes.
    pub fn validate(&self) -> Result<()> {
        let fail = |what: &str| Err(BenchError::Invalid(format!("{what} ({self:?})")));
        if self.measured_steps == 0 {
            return fail("at least one measured step is needed");
        }
        if self.batch_size == 0 || self.image_size == 0 || self.classes == 0 {
            return fail("batch size, image size and classes must be positive");
        }
        if self
            .width
            .is_some_and(|w| w.iter().any(|&m| !(m > 0.0 && m.is_finite())))
        {
            return fail("width multipliers must be positive");
        }
        self.config().map(|_| ())
    }
}
