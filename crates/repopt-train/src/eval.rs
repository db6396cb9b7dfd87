//! Evaluation: top-1 / top-5 accuracy and loss over a data loader.

use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Tensor;
use repopt_models::ghostnet::{GhostMode, RepOptGhostNet};
use repopt_models::{BlockMode, RepOptVgg};
use serde::{Deserialize, Serialize};

use crate::data::ImageBatch;
use crate::error::{Result, TrainError};

/// What an evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub samples: usize,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
}

impl core::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "top-1 {:.2} %, top-5 {:.2} %, loss {:.4} on {} images",
            self.top1, self.top5, self.loss, self.samples
        )
    }
}

/// Evaluates `model` in eval mode (running BN statistics; a RepVGG model is fused first, as it
/// would be deployed) on every batch of `loader`.
pub fn evaluate(model: &RepOptVgg, loader: Arc<dyn DataLoader<ImageBatch>>) -> Result<EvalReport> {
    let mut model = model.valid();
    if model.mode() == BlockMode::RepVgg {
        model = model.fuse_repvgg()?;
    }
    evaluate_with(loader, |images| model.forward(images))
}

/// Evaluates a RepOpt-GhostNet in eval mode (running BN statistics, no dropout; a RepGhost
/// model is fused into its deploy form first) on every batch of `loader`.
pub fn evaluate_ghostnet(
    model: &RepOptGhostNet,
    loader: Arc<dyn DataLoader<ImageBatch>>,
) -> Result<EvalReport> {
    let mut model = model.valid();
    if model.mode() == GhostMode::Rep {
        model = model.fuse_rep()?;
    }
    evaluate_with(loader, |images| model.forward(images))
}

/// Top-1 / top-5 accuracy and loss of the logits `forward` gives for every batch of `loader`.
pub fn evaluate_with(
    loader: Arc<dyn DataLoader<ImageBatch>>,
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
) -> Result<EvalReport> {
    let (mut samples, mut top1, mut top5, mut loss_sum) = (0usize, 0usize, 0usize, 0f64);
    for batch in loader.iter() {
        let batch = batch.map_err(|e| TrainError::Stopped(format!("evaluation data: {e}")))?;
        let device = batch.images.device();
        let n = batch.targets.dims()[0];
        let logits = forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), batch.targets.clone());
        loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
        let k = logits.dims()[1].min(5);
        let ranked = logits.argsort_descending(1).narrow(1, 0, k);
        let targets = batch.targets.reshape([n as i32, 1]);
        let hits = ranked.equal(targets.expand([n, k])).int();
        top1 += hits.clone().narrow(1, 0, 1).sum().into_scalar::<i64>() as usize;
        top5 += hits.sum().into_scalar::<i64>() as usize;
        samples += n;
    }
    if samples == 0 {
        return Err(TrainError::Config("the evaluation set is empty".into()));
    }
    let pct = |hits: usize| 100.0 * hits as f64 / samples as f64;
    Ok(EvalReport {
        samples,
        top1: pct(top1),
        top5: pct(top5),
        loss: loss_sum / samples as f64,
    })
}
