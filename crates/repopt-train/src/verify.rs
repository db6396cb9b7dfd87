//! `repopt verify`: the equivalence the method rests on, as an experiment. A CSLA model trained
//! with Burn's SGD and the equivalent plain model trained with the RepOptimizer, on the same
//! batches, keep equivalent kernels: after every step the target's kernel equals the CSLA
//! block's equivalent kernel `s ⊙ W3 + t ⊙ pad(W1) + γ·I` up to rounding.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Param, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, DeviceConfig, Distribution, FloatDType, Int, Tensor};
use clap::Args;
use repopt_core::{RepOptimizerConfig, RepSgdConfig, UpdateRule, param_infos};
use repopt_models::{
    BlockMode, RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales, decays_weight,
};

use crate::device::parse_device;
use crate::error::{Result, TrainError};

/// Settings of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Architecture preset.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Scales file (default: random scales of both signs).
    #[arg(long)]
    pub scales: Option<PathBuf>,
    /// Training steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Input resolution. Train-mode BN needs enough values per channel in the last stage to be
    /// well conditioned: at 32×32 the last stage is 1×1 and f32 rounding grows chaotically.
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// Largest relative kernel difference accepted.
    #[arg(long, default_value_t = 1e-5)]
    pub tolerance: f64,
    /// Device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type of both models: f64 shows the equivalence to rounding level; in f32 a rounding
    /// difference occasionally flips a ReLU whose input is within 1e-7 of zero, and training
    /// then amplifies it.
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Trains both models side by side and writes to `stdout`, per block, the relative difference of the
/// target's kernel from the CSLA block's equivalent kernel; fails above the tolerance.
pub fn verify(args: &VerifyArgs, stdout: &mut dyn Write) -> Result<()> {
    let device = verify_device(args)?;
    let (config, scales) = verify_scales(args)?;
    let mut csla = csla_model(&config, &scales, &device)?;
    let mut target = csla.equivalent_target()?;
    let handler = RepOptVggHandler::new(VggScales::extract(&csla)?);
    let mults = handler.grad_mults_for(&target, UpdateRule::Sgd, &device)?;
    let mut target_optim = RepSgdConfig::new()
        .with_nesterov(true)
        .with_weight_decay(DECAY)
        .init_with_decay(&target, &mults, decays_weight)?;
    let mut csla_optim = burn_sgd(&csla);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let batches = random_batches(args, &config, &device);
    for step in 0..args.steps {
        let (x, y) = batches[step % batches.len()].clone();
        let loss = loss_fn.forward(csla.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &csla);
        csla = csla_optim.step(args.lr, csla, grads);
        let loss = loss_fn.forward(target.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &target);
        target = target_optim.step(args.lr, target, grads);
    }
    let worst = compare_kernels(&target, &csla.equivalent_target()?, stdout)?;
    writeln!(
        stdout,
        "after {} steps in {}: largest relative difference {worst:.3e} (tolerance {:.0e})",
        args.steps, args.dtype, args.tolerance
    )
    .map_err(TrainError::Output)?;
    if worst > args.tolerance {
        return Err(TrainError::Stopped(format!(
            "GR and CSLA differ by {worst:.3e} > {:.0e}",
            args.tolerance
        )));
    }
    Ok(())
}

/// L2 weight decay of both optimizers.
const DECAY: f32 = 1e-4;

/// The autodiff device, in f64 when asked, seeded.
fn verify_device(args: &VerifyArgs) -> Result<Device> {
    let mut device = parse_device(&args.device)?;
    if args.dtype == "f64" {
        device
            .configure(DeviceConfig::default().float_dtype(FloatDType::F64))
            .map_err(|e| {
                TrainError::Config(format!("{} cannot compute in f64: {e:?}", args.device))
            })?;
    }
    let device = device.autodiff();
    device.seed(args.seed);
    Ok(device)
}

/// The target architecture and the scales: from the file (ours record their architecture;
/// official .pth files take the preset), or random ones of both signs.
fn verify_scales(args: &VerifyArgs) -> Result<(RepOptVggConfig, VggScales)> {
    let preset = RepOptVggConfig::preset(&args.preset)
        .ok_or_else(|| TrainError::Config(format!("unknown preset `{}`", args.preset)))?
        .with_num_classes(10);
    let scales = match &args.scales {
        Some(path) if is_pth(path) => VggScales::load(path, Some(&preset))?,
        Some(path) => VggScales::load(path, None)?,
        None => VggScales::random(&preset, args.seed, (-0.5, 1.5), (0.5, 1.5)),
    };
    let config = scales
        .architecture
        .clone()
        .unwrap_or(preset)
        .with_mode(BlockMode::Target);
    scales.validate_for(&config)?;
    Ok((config, scales))
}

/// The CSLA model of `config` with `scales` as its constant `s`, `t` and trainable `γ`.
fn csla_model(config: &RepOptVggConfig, scales: &VggScales, device: &Device) -> Result<RepOptVgg> {
    let csla = config.clone().with_mode(BlockMode::Csla).init(device);
    let constant = |values: &[f32], train: bool| {
        Param::from_tensor(Tensor::<1>::from_floats(values, device)).set_require_grad(train)
    };
    Ok(csla.try_map_blocks(|mut block| {
        let s = scales.block(&block.spec.name).expect("validated");
        if let Some(layer) = &mut block.scale_conv {
            layer.weight = constant(&s.conv, false);
        }
        if let Some(layer) = &mut block.scale_1x1 {
            layer.weight = constant(&s.conv_1x1, false);
        }
        if let (Some(layer), Some(values)) = (&mut block.scale_identity, &s.identity) {
            layer.weight = constant(values, true);
        }
        Ok(block)
    })?)
}

/// Burn's own SGD (momentum 0.9, Nesterov, dampening 0) on the CSLA model, with the official
/// decay grouping.
fn burn_sgd(csla: &RepOptVgg) -> ModuleOptimizer {
    let undecayed: Vec<String> = param_infos(csla)
        .into_iter()
        .filter(|p| !decays_weight(p))
        .map(|p| p.path)
        .collect();
    let momentum = Some(MomentumConfig {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
    });
    SgdConfig::new()
        .with_momentum(momentum.clone())
        .with_weight_decay(Some(WeightDecayConfig { penalty: DECAY }))
        .init()
        .with_group(
            ParamGroup::from_paths(undecayed),
            SgdConfig::new().with_momentum(momentum).build(),
            None,
        )
}

/// Two random batches the steps alternate over.
fn random_batches(
    args: &VerifyArgs,
    config: &RepOptVggConfig,
    device: &Device,
) -> Vec<(Tensor<4>, Tensor<1, Int>)> {
    let shape = [
        args.batch_size,
        config.in_channels,
        args.image_size,
        args.image_size,
    ];
    let classes = config.num_classes as f64;
    (0..2)
        .map(|_| {
            (
                Tensor::<4>::random(shape, Distribution::Default, device),
                Tensor::<1, Int>::random(
                    [args.batch_size],
                    Distribution::Uniform(0.0, classes),
                    device,
                ),
            )
        })
        .collect()
}

/// Writes each block's relative kernel difference `Σ|Ka − Kb| / Σ|Kb|` and returns the largest.
fn compare_kernels(
    target: &RepOptVgg,
    equivalent: &RepOptVgg,
    stdout: &mut dyn Write,
) -> Result<f64> {
    writeln!(stdout, "{:<10} {:>14}", "block", "relative diff").map_err(TrainError::Output)?;
    let mut worst = 0.0f64;
    for (a, b) in target.blocks().iter().zip(equivalent.blocks()) {
        let ka = a.conv.as_ref().expect("target block").weight.val();
        let kb = b.conv.as_ref().expect("target block").weight.val();
        let rel = (ka - kb.clone()).abs().sum().into_scalar::<f64>()
            / kb.abs().sum().into_scalar::<f64>();
        worst = worst.max(rel);
        writeln!(stdout, "{:<10} {:>14.3e}", a.spec.name, rel).map_err(TrainError::Output)?;
    }
    Ok(worst)
}

/// Whether `path` names an official PyTorch file.
fn is_pth(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt")
    )
}
