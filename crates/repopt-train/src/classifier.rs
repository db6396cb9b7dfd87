//! The model as Burn's Learner sees it: loss, train and inference steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::{Module, ModuleDisplay};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::train::{ClassificationOutput, InferenceStep, Interrupter, TrainOutput, TrainStep};
use repopt_models::RepOptVgg;
use repopt_models::ghostnet::RepOptGhostNet;

use crate::data::ImageBatch;

/// Stops training at the first non-finite loss, before the bad gradients reach the model.
#[derive(Clone)]
pub struct NonFiniteGuard {
    interrupter: Interrupter,
    iteration: Arc<AtomicUsize>,
}

impl core::fmt::Debug for NonFiniteGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NonFiniteGuard")
    }
}

impl NonFiniteGuard {
    /// A guard that stops training through `interrupter`.
    pub fn new(interrupter: Interrupter) -> Self {
        Self {
            interrupter,
            iteration: Arc::default(),
        }
    }
}

/// A network the trainer can train: images `[N, C, H, W]` to logits `[N, classes]`.
pub trait Network: Module + ModuleDisplay + 'static {
    /// Logits of a batch of images.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;
}

impl Network for RepOptVgg {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl Network for RepOptGhostNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

/// The module path of [`Classifier::model`] inside the classifier: the prefix that turns a
/// model's parameter paths (and so its Grad Mults) into the classifier's.
pub const MODEL_PATH: &str = "model";

/// A network (RepOpt-VGG unless said otherwise) with its classification loss (cross entropy
/// with optional label smoothing).
///
/// Parameter paths are those of the model prefixed by `model.` (for RepOpt-VGG
/// `model.stage1.0.conv.weight`, as before the classifier became generic).
#[derive(Module, Debug)]
pub struct Classifier<M: Network = RepOptVgg> {
    /// The network.
    pub model: M,
    /// Label smoothing of the training loss (0 = none).
    #[module(skip)]
    pub label_smoothing: f32,
    /// Optional guard against non-finite losses.
    #[module(skip)]
    pub guard: Option<NonFiniteGuard>,
    /// Clip the gradients to this global norm ([`repopt_core::clip_global_norm`]).
    #[module(skip)]
    pub clip_global_norm: Option<f32>,
}

impl<M: Network> Classifier<M> {
    /// The module path of [`model`](Self::model) inside the classifier: the prefix that turns a
    /// model's parameter paths (and so its Grad Mults) into the classifier's.
    pub const MODEL_PATH: &'static str = MODEL_PATH;

    /// Wraps `model`.
    pub fn new(model: M, label_smoothing: f32) -> Self {
        Self {
            model,
            label_smoothing,
            guard: None,
            clip_global_norm: None,
        }
    }

    /// Clips every training step's gradients to a global norm of `max_norm`, as the official
    /// hyper-search (`clip_grad_norm_` over all parameters); `None` leaves them alone.
    pub fn with_clip_global_norm(mut self, max_norm: Option<f32>) -> Self {
        self.clip_global_norm = max_norm;
        self
    }

    /// Stops training through `interrupter` at the first non-finite loss.
    pub fn with_guard(mut self, interrupter: Interrupter) -> Self {
        self.guard = Some(NonFiniteGuard::new(interrupter));
        self
    }

    fn classify(&self, batch: ImageBatch, smoothing: f32) -> ClassificationOutput {
        let device = batch.images.device();
        let output = self.model.logits(batch.images);
        let mut loss = CrossEntropyLossConfig::new();
        if smoothing > 0.0 {
            loss = loss.with_smoothing(Some(smoothing));
        }
        let loss = loss
            .init(&device)
            .forward(output.clone(), batch.targets.clone());
        ClassificationOutput {
            loss,
            output,
            targets: batch.targets,
        }
    }
}

impl<M: Network> TrainStep for Classifier<M> {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classify(batch, self.label_smoothing);
        if let Some(guard) = &self.guard {
            let iteration = guard.iteration.fetch_add(1, Ordering::Relaxed) + 1;
            let value = item.loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                guard.interrupter.stop(Some(&format!(
                    "the training loss became {value} at iteration {iteration} of this run; \
                     the model was not updated with it and the last checkpoint is kept"
                )));
                return TrainOutput {
                    grads: GradientsParams::new(),
                    item,
                };
            }
        }
        let grads = item.loss.backward();
        let mut output = TrainOutput::new(self, grads, item);
        if let Some(max_norm) = self.clip_global_norm {
            repopt_core::clip_global_norm(self, &mut output.grads, f64::from(max_norm))
                .expect("the clipping norm is validated with the run's settings");
        }
        output
    }
}

impl<M: Network> InferenceStep for Classifier<M> {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.classify(batch, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repopt_models::RepOptVggConfig;

    /// The model's parameters sit under [`Classifier::MODEL_PATH`]: Grad Mults keyed by model
    /// path find them there.
    #[test]
    fn model_parameters_sit_under_the_model_path() {
        let device = burn::tensor::Device::flex();
        let model = RepOptVggConfig::preset("tiny").unwrap().init(&device);
        let inner: Vec<String> = repopt_core::param_infos(&model)
            .into_iter()
            .map(|p| p.path)
            .collect();
        let outer: Vec<String> = repopt_core::param_infos(&Classifier::new(model, 0.0))
            .into_iter()
            .map(|p| p.path)
            .collect();
        let prefixed: Vec<String> = inner.iter().map(|p| format!("{MODEL_PATH}.{p}")).collect();
        assert_eq!(outer, prefixed);
        // The paths of checkpoints made before the classifier became generic.
        for path in ["model.stage0.conv.weight", "model.stage1.0.conv.weight"] {
            assert!(outer.iter().any(|p| p == path), "{path} not in {outer:?}");
        }
    }

    /// A RepOpt-GhostNet sits under the same prefix, with its official names.
    #[test]
    fn ghostnet_parameters_sit_under_the_model_path() {
        let device = burn::tensor::Device::flex();
        let model = repopt_models::ghostnet::RepOptGhostNetConfig::small()
            .init(&device)
            .unwrap();
        let outer: Vec<String> = repopt_core::param_infos(&Classifier::new(model, 0.0))
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert!(outer.iter().all(|p| p.starts_with("model.")), "{outer:?}");
        let cheap = "model.blocks.0.0.ghost1.cheap_operation.0.weight";
        assert!(outer.iter().any(|p| p == cheap), "{outer:?}");
    }
}
