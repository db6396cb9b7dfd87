//! RepOpt-VGG image classification that runs the same way natively and in the browser.
//!
//! A trained RepOpt-VGG *target* model is already a plain conv-BN-ReLU stack, so the burnpack a
//! training run writes (`model.bpk`) is served as it is: no structural conversion. A
//! [`ModelCard`] (`model.json`) says how to rebuild the architecture and how inputs are
//! normalised. [`ImageClassifier`] turns RGBA pixels into top-k class probabilities on any Burn
//! device: Burn's `flex` CPU backend natively and as the browser fallback, WebGPU through Burn's
//! `wgpu` backend in the browser (see the `web` module, compiled for wasm only).

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::activation::softmax;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use repopt_models::{BlockMode, RepOptVgg, RepOptVggConfig};
use serde::{Deserialize, Serialize};

#[cfg(target_family = "wasm")]
mod web;

/// What the page needs to know about a trained model, stored beside it as `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// A short human-readable name.
    pub name: String,
    /// The architecture the burnpack was saved from (mode `Target`).
    pub architecture: RepOptVggConfig,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Side of the square input in pixels.
    pub image_size: usize,
    /// Per-channel mean subtracted from `[0, 1]` pixel values.
    pub mean: [f32; 3],
    /// Per-channel standard deviation the centred values are divided by.
    pub std: [f32; 3],
    /// How the model scored on its test split, and how it was trained.
    pub provenance: Provenance,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Data set the model was trained and tested on.
    pub dataset: String,
    /// Top-1 accuracy on the test split, percent.
    pub test_top1: f64,
    /// Top-5 accuracy on the test split, percent.
    pub test_top5: f64,
    /// Images in the test split.
    pub test_images: usize,
    /// The commands that trained it.
    pub commands: Vec<String>,
}

/// An error with a message meant for the person using the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoError(pub String);

impl core::fmt::Display for DemoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DemoError {}

fn error(message: impl Into<String>) -> DemoError {
    DemoError(message.into())
}

/// One ranked class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Label index.
    pub index: usize,
    /// Class name.
    pub class: String,
    /// Softmax probability.
    pub probability: f32,
}

/// A trained RepOpt-VGG ready for inference on one device, in its deployed form (BNs folded into
/// the convs).
#[derive(Debug)]
pub struct ImageClassifier {
    model: RepOptVgg,
    card: ModelCard,
    device: Device,
}

impl ImageClassifier {
    /// Rebuilds the card's architecture on `device` and loads the burnpack `model` into it.
    pub fn new(card: ModelCard, model: Vec<u8>, device: &Device) -> Result<Self, DemoError> {
        if card.architecture.mode != BlockMode::Target {
            return Err(error(format!(
                "model.json describes a {:?} model; the demo serves plain Target models",
                card.architecture.mode
            )));
        }
        if card.classes.len() != card.architecture.num_classes {
            return Err(error(format!(
                "model.json lists {} class names for a model with {} outputs",
                card.classes.len(),
                card.architecture.num_classes
            )));
        }
        if card.architecture.in_channels != 3 {
            return Err(error(format!(
                "model.json describes a model with {} input channels; the demo feeds RGB",
                card.architecture.in_channels
            )));
        }
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model))
            .map_err(|e| error(format!("the model file is not a readable burnpack: {e}")))?;
        let model = card
            .architecture
            .init(device)
            .try_load_record(record)
            .map_err(|e| error(format!("the model file does not fit model.json: {e}")))?
            // Deployed form: each BN folded into its conv (conv with bias, then ReLU).
            .fuse_target()
            .map_err(|e| error(format!("folding the BNs: {e}")))?;
        Ok(Self {
            model,
            card,
            device: device.clone(),
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The device inference runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The normalised `[1, 3, S, S]` input for RGBA pixels of an `S × S` image (row-major,
    /// 4 bytes a pixel; alpha is ignored): `x = (p / 255 − mean) / std` per channel.
    pub fn input(&self, rgba: &[u8], width: usize, height: usize) -> Result<Tensor<4>, DemoError> {
        let size = self.card.image_size;
        if width != size || height != size {
            return Err(error(format!(
                "the image is {width}×{height}; the model takes {size}×{size} (resize it first)"
            )));
        }
        if rgba.len() != width * height * 4 {
            return Err(error(format!(
                "{} RGBA bytes for a {width}×{height} image; expected {}",
                rgba.len(),
                width * height * 4
            )));
        }
        let plane = width * height;
        let mut chw = vec![0f32; 3 * plane];
        for (pixel, rgba) in rgba.chunks_exact(4).enumerate() {
            for c in 0..3 {
                let value = rgba[c] as f32 / 255.0;
                chw[c * plane + pixel] = (value - self.card.mean[c]) / self.card.std[c];
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(chw, [1, 3, height, width]),
            &self.device,
        ))
    }

    /// Class probabilities `[1, classes]` for an input made by [`input`](Self::input).
    pub fn probabilities(&self, input: Tensor<4>) -> Tensor<2> {
        softmax(self.model.forward(input), 1)
    }

    /// The `k` most probable classes, given the probabilities read back from the device.
    pub fn top_k(&self, probabilities: TensorData, k: usize) -> Result<Vec<ClassScore>, DemoError> {
        let values: Vec<f32> = probabilities
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| error(format!("unreadable probabilities: {e:?}")))?;
        Ok(rank(&values, &self.card.classes, k))
    }

    /// Classifies an `S × S` RGBA image, reading the result back synchronously (native targets).
    #[cfg(not(target_family = "wasm"))]
    pub fn classify(
        &self,
        rgba: &[u8],
        width: usize,
        height: usize,
        k: usize,
    ) -> Result<Vec<ClassScore>, DemoError> {
        let probabilities = self.probabilities(self.input(rgba, width, height)?);
        let data = probabilities
            .try_into_data()
            .map_err(|e| error(format!("reading the result: {e:?}")))?;
        self.top_k(data, k)
    }
}

/// The `k` highest `probabilities`, best first; ties keep label order.
pub fn rank(probabilities: &[f32], classes: &[String], k: usize) -> Vec<ClassScore> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|index| ClassScore {
            index,
            class: classes
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            probability: probabilities[index],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn rank_orders_by_probability_then_label() {
        let ranked = rank(&[0.1, 0.4, 0.1, 0.4], &names(4), 3);
        let order: Vec<usize> = ranked.iter().map(|s| s.index).collect();
        assert_eq!(order, [1, 3, 0]);
        assert_eq!(ranked[0].class, "c1");
    }
}
