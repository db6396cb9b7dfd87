//! Timing one [`Case`] in this process.

use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, LearningRate, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use repopt_core::{GradMults, RepOptimizerConfig, RepSgdConfig, UpdateRule};
use repopt_models::{
    RepOptVgg, RepOptVggConfig, RepOptVggHandler, SplitMix64, VggScales, decays_weight,
};
use serde::{Deserialize, Serialize};

use crate::case::{Case, Mode};
use crate::memory::resident_memory;
use crate::{BenchError, Result};

/// Learning rate of every training mode. Small enough that a few steps on random data stay
/// finite; the value does not change the work a step does.
pub const LEARNING_RATE: LearningRate = 0.01;
/// SGD momentum of every training mode.
pub const MOMENTUM: f64 = 0.9;
/// Coupled L2 weight decay of every training mode (on the parameters the official rule decays).
pub const WEIGHT_DECAY: f32 = 1e-4;

/// The SGD every training mode uses: momentum 0.9, Nesterov, dampening 0, decay 1e-4 with the
/// official decay rule (`decays_weight`). The RepOptimizer mode adds Grad Mults to it.
pub fn sgd_config() -> RepSgdConfig {
    RepSgdConfig::new()
        .with_momentum(MOMENTUM)
        .with_dampening(0.0)
        .with_nesterov(true)
        .with_weight_decay(WEIGHT_DECAY)
}

/// Median seconds of the three parts of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingPhases {
    /// Forward pass and cross-entropy loss.
    pub forward_seconds: f64,
    /// `backward` and collecting the parameters' gradients.
    pub backward_seconds: f64,
    /// `ModuleOptimizer::step` (Grad Mults, decay, momentum, update).
    pub optimizer_seconds: f64,
}

/// What one process measured for one [`Case`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured.
    pub case: Case,
    /// Trainable parameters of the model that ran (after fusion, for fused inference).
    pub params: usize,
    /// Seconds of every timed step, in order (warm-up excluded).
    pub step_seconds: Vec<f64>,
    /// Median of `step_seconds`.
    pub median_step_seconds: f64,
    /// `batch_size / median_step_seconds`.
    pub images_per_second: f64,
    /// Medians of the parts of a training step (training modes only).
    pub phases: Option<TrainingPhases>,
    /// Loss of the last training step (training modes only).
    pub final_loss: Option<f64>,
    /// Resident bytes once model, optimizer and data are built, before the first step.
    pub setup_resident_bytes: Option<u64>,
    /// Peak resident bytes (`VmHWM`) at that point: what building the model, optimizer and data
    /// took at most, transients included.
    pub setup_peak_resident_bytes: Option<u64>,
    /// Peak resident bytes of the process (`VmHWM`) after the last step.
    pub peak_resident_bytes: Option<u64>,
    /// Threads the steps computed on: rayon's pool where they ran (`--threads`, else one per
    /// core).
    pub threads: usize,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the process started its steps.
    pub load_average: Option<[f64; 3]>,
    /// Wall seconds of the whole measurement: building, warm-up and timed steps.
    pub wall_seconds: f64,
    /// The framework of a measurement taken outside this crate (the official PyTorch code's,
    /// by `benches/pytorch/bench.py`); `None` for this crate's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<Framework>,
}

/// The framework that took a measurement outside this crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Framework {
    /// `pytorch`.
    pub name: String,
    /// Its version (`torch.__version__`).
    pub version: String,
    /// Folder of the official code it ran, if any.
    #[serde(default)]
    pub official_code: Option<String>,
}

/// Measures `case` in this process: builds the model (and optimizer), takes the warm-up steps,
/// then times the measured ones.
pub fn run(case: &Case) -> Result<Measurement> {
    case.validate()?;
    let started = Instant::now();
    let device = case.backend.device()?;
    let config = case.config()?;
    let timed = if case.mode.is_training() {
        let device = match case.gradient_checkpointing {
            true => device.autodiff().gradient_checkpointing(),
            false => device.autodiff(),
        };
        train(case, &config, &device)?
    } else {
        infer(case, &config, &device)?
    };
    let peak_resident_bytes = resident_memory().map(|m| m.peak_bytes);
    let median_step_seconds = median(&timed.step_seconds);
    Ok(Measurement {
        case: case.clone(),
        params: timed.params,
        median_step_seconds,
        images_per_second: case.batch_size as f64 / median_step_seconds,
        step_seconds: timed.step_seconds,
        phases: timed.phases,
        final_loss: timed.final_loss,
        setup_resident_bytes: timed.setup_resident_bytes,
        setup_peak_resident_bytes: timed.setup_peak_resident_bytes,
        peak_resident_bytes,
        threads: rayon::current_num_threads(),
        load_average: timed.load_average,
        wall_seconds: started.elapsed().as_secs_f64(),
        framework: None,
    })
}

/// What the training or inference loop measured.
struct Timed {
    params: usize,
    setup_resident_bytes: Option<u64>,
    setup_peak_resident_bytes: Option<u64>,
    load_average: Option<[f64; 3]>,
    step_seconds: Vec<f64>,
    phases: Option<TrainingPhases>,
    final_loss: Option<f64>,
}

impl Timed {
    /// Starts the record once everything is built: notes the resident memory and the load.
    fn new(params: usize) -> Self {
        let memory = resident_memory();
        Self {
            params,
            setup_resident_bytes: memory.map(|m| m.current_bytes),
            setup_peak_resident_bytes: memory.map(|m| m.peak_bytes),
            load_average: load_average(),
            step_seconds: Vec::new(),
            phases: None,
            final_loss: None,
        }
    }
}

/// Median of a non-empty slice (the upper middle value for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// One batch of images uniform in `[-1, 1)` and uniformly drawn labels, from `seed`.
fn random_batch(case: &Case, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mut rng = SplitMix64(case.seed);
    let shape = [case.batch_size, 3, case.image_size, case.image_size];
    let pixels: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let labels: Vec<i64> = (0..case.batch_size)
        .map(|_| (rng.next_u64() % case.classes as u64) as i64)
        .collect();
    (
        Tensor::from_data(TensorData::new(pixels, shape), device),
        Tensor::from_data(TensorData::new(labels, [case.batch_size]), device),
    )
}

/// The model and optimizer of a training mode, on the autodiff `device`.
fn training_setup(
    case: &Case,
    config: &RepOptVggConfig,
    device: &Device,
) -> Result<(RepOptVgg, ModuleOptimizer)> {
    device.seed(case.seed);
    let model = config.init(device).with_conv_impl(case.conv);
    let sgd = sgd_config();
    Ok(match case.mode {
        Mode::TrainRepopt | Mode::TrainRepoptDense => {
            let handler = RepOptVggHandler::new(VggScales::random(
                config,
                case.seed,
                (-1.0, 1.0),
                (-1.0, 1.0),
            ));
            let model = handler.reinitialize_model(model)?;
            let mults = handler.grad_mults_for(&model, UpdateRule::Sgd, device)?;
            let mults = match case.mode {
                Mode::TrainRepoptDense => mults.densified(),
                _ => mults,
            };
            let optim = sgd.init_with_decay(&model, &mults, decays_weight)?;
            (model, optim)
        }
        Mode::TrainSgd | Mode::TrainRepvgg | Mode::TrainHs => {
            let optim = sgd.init_with_decay(&model, &GradMults::new(), decays_weight)?;
            (model, optim)
        }
        other => {
            return Err(BenchError::Invalid(format!(
                "{other} is not a training mode"
            )));
        }
    })
}

/// Reads every parameter once: Burn initialises parameters lazily, on first use, and a model
/// whose weights are not yet allocated would make the resident memory before the first step
/// depend on the mode rather than on the model.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

fn materialize(model: &RepOptVgg) {
    model.visit(&mut Materialize);
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| BenchError::Invalid(format!("device sync failed: {e}")))
}

fn train(case: &Case, config: &RepOptVggConfig, device: &Device) -> Result<Timed> {
    let (model, mut optim) = training_setup(case, config, device)?;
    materialize(&model);
    let (images, labels) = random_batch(case, device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let params = config.num_params(config.mode);
    let mut timed = Timed::new(params);

    let mut model = Some(model);
    let mut phases: [Vec<f64>; 3] = Default::default();
    let mut final_loss = None;
    for step in 0..case.warmup_steps + case.measured_steps {
        let current = model.take().expect("the model is back after every step");
        let start = Instant::now();
        let logits = current.forward(images.clone());
        let loss = loss_fn.forward(logits, labels.clone());
        sync(device)?;
        let forward = start.elapsed();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        sync(device)?;
        let backward = start.elapsed();
        let updated = optim.step(LEARNING_RATE, current, grads);
        sync(device)?;
        let total = start.elapsed();
        model = Some(updated);

        let loss = loss.into_scalar::<f32>() as f64;
        if !loss.is_finite() {
            return Err(BenchError::Invalid(format!(
                "the loss is {loss} at step {step}: the timing would not be meaningful"
            )));
        }
        final_loss = Some(loss);
        if step >= case.warmup_steps {
            timed.step_seconds.push(total.as_secs_f64());
            let parts = [forward, backward - forward, total - backward];
            for (record, part) in phases.iter_mut().zip(parts) {
                record.push(part.as_secs_f64());
            }
        }
    }
    let [forward, backward, optimizer] = phases.map(|p| median(&p));
    timed.phases = Some(TrainingPhases {
        forward_seconds: forward,
        backward_seconds: backward,
        optimizer_seconds: optimizer,
    });
    timed.final_loss = final_loss;
    Ok(timed)
}

/// The eval-mode model of an inference mode on the plain (non-autodiff) `device`.
fn inference_model(case: &Case, config: &RepOptVggConfig, device: &Device) -> Result<RepOptVgg> {
    device.seed(case.seed);
    let model = config.init(device).with_conv_impl(case.conv).valid();
    match case.mode {
        Mode::InferTarget | Mode::InferRepvggUnfused => Ok(model),
        Mode::InferRepvggFused => Ok(model.fuse_repvgg()?),
        Mode::InferTargetFused => Ok(model.fuse_target()?),
        other => Err(BenchError::Invalid(format!(
            "{other} is not an inference mode"
        ))),
    }
}

fn infer(case: &Case, config: &RepOptVggConfig, device: &Device) -> Result<Timed> {
    let model = inference_model(case, config, device)?;
    materialize(&model);
    let (images, _) = random_batch(case, device);
    let params = config.num_params(model.mode());
    let mut timed = Timed::new(params);
    for step in 0..case.warmup_steps + case.measured_steps {
        let start = Instant::now();
        let logits = model.forward(images.clone());
        sync(device)?;
        let elapsed: Duration = start.elapsed();
        drop(logits);
        if step >= case.warmup_steps {
            timed.step_seconds.push(elapsed.as_secs_f64());
        }
    }
    Ok(timed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use repopt_models::ConvImpl;

    fn tiny(mode: Mode) -> Case {
        Case {
            preset: "tiny".into(),
            width: None,
            image_size: 16,
            batch_size: 4,
            classes: 10,
            mode,
            backend: Backend::Flex,
            conv: ConvImpl::Native,
            gradient_checkpointing: false,
            warmup_steps: 1,
            measured_steps: 2,
            seed: 7,
        }
    }

    #[test]
    fn every_mode_measures() {
        for mode in Mode::ALL {
            let measurement = run(&tiny(mode)).unwrap();
            assert_eq!(measurement.step_seconds.len(), 2, "{mode}");
            assert!(measurement.images_per_second > 0.0, "{mode}");
            assert_eq!(measurement.phases.is_some(), mode.is_training(), "{mode}");
            if let Some(loss) = measurement.final_loss {
                assert!(loss.is_finite(), "{mode}");
            }
        }
    }

    #[test]
    fn the_batch_depends_on_the_seed_only() {
        let device = Device::flex();
        let (a, la) = random_batch(&tiny(Mode::TrainSgd), &device);
        let (b, lb) = random_batch(&tiny(Mode::InferRepvggFused), &device);
        a.into_data().assert_eq(&b.into_data(), true);
        la.into_data().assert_eq(&lb.into_data(), true);
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
    }
}
