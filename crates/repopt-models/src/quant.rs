//! Post-training int8 quantization of a deployed RepOpt-VGG (every block one 3×3 conv with bias,
//! then ReLU), simulated in `f32` ("fake quantization": quantize, then dequantize), which gives
//! exactly the accuracy of an int8 kernel computing with the same scales and rounding.
//!
//! **Weights**, symmetric int8 over the full range `q ∈ [−128, 127]` (Burn's `Q8F` scheme), per
//! output channel `c` or per tensor:
//!
//! ```text
//! s_c = max |W_c| / 127.5,   Ŵ_c = s_c · clamp(round(W_c / s_c), −128, 127)
//! ```
//!
//! Per tensor, the weights go through Burn's own `quantize_dynamic(Q8F)` → `dequantize`; per
//! channel (which Burn's block scales, at most 255 values a block, cannot express for a conv's
//! `in·9` values) through [`fake_quant_symmetric`], the same arithmetic (tested against Burn).
//!
//! **Activations** (each block's input and the classifier's pooled input), asymmetric uint8 over
//! a calibrated range `[lo, hi]` (always containing 0):
//!
//! ```text
//! s = (hi − lo) / 255,   z = round(−lo / s),   x̂ = s · (clamp(round(x / s) + z, 0, 255) − z)
//! ```
//!
//! The range comes from calibration images: their minimum and maximum ([`Calibration::MinMax`]),
//! or the `p`-th percentiles of the values ([`Calibration::Percentile`]). Biases stay in `f32`
//! (an int8 kernel keeps them in int32 at the product's scale, which loses nothing at this
//! precision). The first block and the classifier can be kept in `f32`.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::BlockMode;
use crate::error::{ModelError, Result};
use crate::model::RepOptVgg;

/// How weights are given their scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightGranularity {
    /// One scale per output channel.
    PerChannel,
    /// One scale for the whole tensor.
    PerTensor,
}

/// How an activation's range is calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Calibration {
    /// The smallest and largest value seen.
    MinMax,
    /// The `(100 − p)`-th and `p`-th percentiles of the values seen (e.g. `p = 99.99`).
    Percentile(f64),
}

/// Symmetric int8 quantize-dequantize of `values` as Burn's `Q8F`: scale `max |v| / 127.5`,
/// levels `[−128, 127]`; returns the scale.
pub fn fake_quant_symmetric(values: &mut [f32]) -> f32 {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let scale = max / 127.5;
    for v in values.iter_mut() {
        *v = (*v / scale).round().clamp(-128.0, 127.0) * scale;
    }
    scale
}

/// Burn's own per-tensor `Q8F` quantize → dequantize of `tensor`.
pub fn burn_q8f_round_trip<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    tensor
        .quantize_dynamic(&burn::tensor::quantization::QuantScheme::default())
        .dequantize()
}

/// Quantize-dequantizes a `[out, …]` weight tensor's values (row-major) per output channel, or
/// as one tensor; returns the scales (one per channel, or one).
pub fn fake_quant_weights(
    values: &mut [f32],
    out_channels: usize,
    granularity: WeightGranularity,
) -> Vec<f32> {
    match granularity {
        WeightGranularity::PerTensor => vec![fake_quant_symmetric(values)],
        WeightGranularity::PerChannel => {
            let per = values.len() / out_channels.max(1);
            values
                .chunks_mut(per.max(1))
                .map(fake_quant_symmetric)
                .collect()
        }
    }
}

/// The uint8 grid of an activation range: scale and zero point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationQuant {
    /// Step between two levels.
    pub scale: f32,
    /// The level that represents 0.
    pub zero_point: f32,
}

impl ActivationQuant {
    /// The grid of `[lo, hi]`, widened to contain 0 (so that 0, the ReLU's floor and the zero
    /// padding, is exact).
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        Self {
            scale,
            zero_point: (-lo / scale).round(),
        }
    }

    /// `x̂ = s · (clamp(round(x / s) + z, 0, 255) − z)`, element by element.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        x.div_scalar(self.scale)
            .round()
            .add_scalar(self.zero_point)
            .clamp(0.0, 255.0)
            .sub_scalar(self.zero_point)
            .mul_scalar(self.scale)
    }
}

/// The range of `values` under `calibration`; `values` is reordered.
pub fn calibrated_range(values: &mut [f32], calibration: Calibration) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    match calibration {
        Calibration::MinMax => values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
        Calibration::Percentile(p) => {
            let n = values.len();
            let rank = |q: f64| ((q / 100.0) * (n - 1) as f64).round() as usize;
            let (lo_i, hi_i) = (rank(100.0 - p).min(n - 1), rank(p).min(n - 1));
            let lo = *values.select_nth_unstable_by(lo_i, f32::total_cmp).1;
            let hi = *values.select_nth_unstable_by(hi_i, f32::total_cmp).1;
            (lo, hi)
        }
    }
}

/// What is quantized in a deployed model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantSettings {
    /// Weight scales per channel or per tensor.
    pub weights: WeightGranularity,
    /// Quantize the first block (stage0) and the classifier too; `false` keeps both in `f32`.
    pub first_and_last: bool,
}

/// A tensor's values, row-major, as `f32`.
fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

/// Quantize-dequantizes a conv kernel `[out, in, kh, kw]` in place, per output channel or per
/// tensor.
fn quantize_kernel(weight: &mut Param<Tensor<4>>, granularity: WeightGranularity) {
    let value = weight.val();
    let device = value.device();
    let shape = value.dims();
    let mut data = values(value);
    fake_quant_weights(&mut data, shape[0], granularity);
    let tensor = Tensor::<4>::from_data(TensorData::new(data, shape), &device);
    *weight = Param::from_tensor(tensor);
}

impl RepOptVgg {
    /// The inputs of every block in forward order, then the classifier's pooled input
    /// (`[N, C, 1, 1]`): the points where a quantized model quantizes activations.
    pub fn quantization_points(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let blocks = self.blocks();
        let mut points = Vec::with_capacity(blocks.len() + 1);
        let mut x = x;
        for block in blocks {
            points.push(x.clone());
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        points.push(x.mean_dim(3).mean_dim(2).reshape([n, c, 1, 1]));
        points
    }

    /// This deployed model with int8 quantize-dequantized weights (biases kept): every layer,
    /// or all but the first block and the classifier. Fails unless every block is in `Deploy`
    /// mode ([`fuse_target`](Self::fuse_target) / [`fuse_repvgg`](Self::fuse_repvgg) first).
    pub fn with_quantized_weights(self, settings: QuantSettings) -> Result<Self> {
        self.ensure_deployed()?;
        let layers = self.blocks().len() + 1;
        let kept = usize::from(!settings.first_and_last);
        (kept..layers - kept).try_fold(self, |model, layer| {
            model.with_quantized_layer(layer, settings.weights)
        })
    }

    /// The names of the layers that carry weights, in forward order: every block, then
    /// `linear` (the classifier). Layer `i` of [`with_quantized_layer`](Self::with_quantized_layer)
    /// is the `i`-th name.
    pub fn weight_layers(&self) -> Vec<String> {
        let blocks = self.blocks().into_iter().map(|b| b.spec.name.clone());
        blocks
            .chain(std::iter::once("linear".to_string()))
            .collect()
    }

    /// This deployed model with the weights of layer `layer` alone int8 quantize-dequantized
    /// (forward order, see [`weight_layers`](Self::weight_layers)); every other layer and all
    /// biases stay as they are. Fails unless every block is in `Deploy` mode, or when there is no
    /// such layer.
    pub fn with_quantized_layer(
        mut self,
        layer: usize,
        granularity: WeightGranularity,
    ) -> Result<Self> {
        self.ensure_deployed()?;
        let blocks = self.blocks().len();
        if layer > blocks {
            return Err(ModelError::Config {
                message: format!(
                    "no weight layer {layer}: the model has {} (blocks, then the classifier)",
                    blocks + 1
                ),
            });
        }
        if layer == blocks {
            self.quantize_classifier(granularity);
            return Ok(self);
        }
        let mut index = 0;
        self.try_map_blocks(|mut block| {
            if index == layer {
                let conv = block.conv.as_mut().expect("Deploy block has conv");
                quantize_kernel(&mut conv.weight, granularity);
            }
            index += 1;
            Ok(block)
        })
    }

    fn ensure_deployed(&self) -> Result<()> {
        match self.mode() {
            BlockMode::Deploy => Ok(()),
            found => Err(ModelError::WrongMode {
                operation: "quantizing the weights of a deployed model".into(),
                expected: "Deploy (fuse_target / fuse_repvgg first)".into(),
                found: found.to_string(),
            }),
        }
    }

    /// The classifier's weight one output per row (Burn stores it `[in, out]`), and its
    /// `[outputs, inputs]`.
    fn classifier_rows(&self) -> (Vec<f32>, [usize; 2]) {
        let [inputs, outputs] = self.linear.weight.val().dims();
        (
            values(self.linear.weight.val().transpose()),
            [outputs, inputs],
        )
    }

    /// Quantize-dequantizes the classifier's weight per output.
    fn quantize_classifier(&mut self, granularity: WeightGranularity) {
        let device = self.linear.weight.val().device();
        let (mut data, shape) = self.classifier_rows();
        fake_quant_weights(&mut data, shape[0], granularity);
        let tensor = Tensor::<2>::from_data(TensorData::new(data, shape), &device);
        self.linear.weight = Param::from_tensor(tensor.transpose());
    }

    /// The signal-to-quantization-noise ratio `10·log10(‖W‖² / ‖W − Ŵ‖²)` (dB) of every block's
    /// kernel and of the classifier under `granularity`, in forward order (`∞` when exact).
    pub fn weight_sqnr(&self, granularity: WeightGranularity) -> Vec<(String, f64)> {
        let sqnr = |values: Vec<f32>, out: usize| {
            let mut quantized = values.clone();
            fake_quant_weights(&mut quantized, out, granularity);
            let signal: f64 = values.iter().map(|v| f64::from(*v).powi(2)).sum();
            let noise: f64 = values
                .iter()
                .zip(&quantized)
                .map(|(v, q)| f64::from(v - q).powi(2))
                .sum();
            10.0 * (signal / noise).log10()
        };
        let mut out: Vec<(String, f64)> = self
            .blocks()
            .into_iter()
            .filter_map(|block| {
                let kernel = block
                    .conv
                    .as_ref()
                    .or(block.conv_3x3.as_ref())?
                    .weight
                    .val();
                let channels = kernel.dims()[0];
                Some((block.spec.name.clone(), sqnr(values(kernel), channels)))
            })
            .collect();
        let (linear, [outputs, _]) = self.classifier_rows();
        out.push(("linear".into(), sqnr(linear, outputs)));
        out
    }

    /// Logits with activations quantized at every point of
    /// [`quantization_points`](Self::quantization_points) that `grids` covers (`None` keeps a
    /// point in `f32`).
    pub fn forward_quantized(&self, x: Tensor<4>, grids: &[Option<ActivationQuant>]) -> Tensor<2> {
        let blocks = self.blocks();
        assert_eq!(
            grids.len(),
            blocks.len() + 1,
            "one grid per block input and one for the classifier"
        );
        let quant = |x: Tensor<4>, grid: &Option<ActivationQuant>| match grid {
            Some(q) => q.apply(x),
            None => x,
        };
        let mut x = x;
        for (block, grid) in blocks.into_iter().zip(grids) {
            x = block.forward(quant(x, grid));
        }
        let [n, c, _, _] = x.dims();
        let pooled = quant(
            x.mean_dim(3).mean_dim(2).reshape([n, c, 1, 1]),
            &grids[grids.len() - 1],
        );
        self.linear.forward(pooled.reshape([n, c]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand example: channel 0 spans ±1.275 (scale 0.01), channel 1 ±0.255 (scale 0.002).
    #[test]
    fn per_channel_scales_by_hand() {
        let mut w = vec![1.275, -0.5, 0.004, 0.255, -0.1, 0.0011];
        let scales = fake_quant_weights(&mut w, 2, WeightGranularity::PerChannel);
        assert!((scales[0] - 0.01).abs() < 1e-7 && (scales[1] - 0.002).abs() < 1e-8);
        // 127.5 → 127 levels (clamped), −50, 0.4 → 0; 127.5 → 127, −50, 0.55 → 1.
        let want = [1.27, -0.5, 0.0, 0.254, -0.1, 0.002];
        for (g, w) in w.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Per tensor, the small channel loses its detail: one scale of 0.01.
        let mut t = vec![1.275, -0.5, 0.004, 0.255, -0.1, 0.0011];
        let scales = fake_quant_weights(&mut t, 2, WeightGranularity::PerTensor);
        assert_eq!(scales.len(), 1);
        assert!((t[5] - 0.0).abs() < 1e-7 && (t[3] - 0.26).abs() < 1e-6);
    }

    /// Quantize → dequantize moves no value by more than half a step.
    #[test]
    fn round_trip_within_half_a_step() {
        let mut values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 2001) as f32 / 997.0 - 1.0)
            .collect();
        let original = values.clone();
        let scale = fake_quant_symmetric(&mut values);
        for (q, v) in values.iter().zip(&original) {
            assert!((q - v).abs() <= scale / 2.0 + 1e-7, "{v} -> {q}");
        }
        let device = burn::tensor::Device::flex();
        let x = Tensor::<1>::from_floats(original.as_slice(), &device).reshape([1, 1, 1, 1000]);
        let grid = ActivationQuant::from_range(-1.0, 1.0);
        let back: Vec<f32> = grid.apply(x).into_data().try_into_vec::<f32>().unwrap();
        for (q, v) in back.iter().zip(&original) {
            assert!((q - v).abs() <= grid.scale / 2.0 + 1e-6, "{v} -> {q}");
        }
    }

    /// Calibration on a known range: min-max finds it, a percentile clips the outliers.
    #[test]
    fn calibration_on_a_known_range() {
        let mut values: Vec<f32> = (0..=10_000).map(|i| i as f32 / 10_000.0 * 6.0).collect();
        assert_eq!(
            calibrated_range(&mut values, Calibration::MinMax),
            (0.0, 6.0)
        );
        values.push(1000.0); // one outlier
        let (lo, hi) = calibrated_range(&mut values, Calibration::Percentile(99.9));
        assert!(lo < 0.01 && (hi - 5.994).abs() < 0.01, "{lo} {hi}");
        let grid = ActivationQuant::from_range(0.0, 6.0);
        assert_eq!(grid.zero_point, 0.0);
        assert!((grid.scale - 6.0 / 255.0).abs() < 1e-7);
    }

    /// Our per-tensor weight quantization is Burn's own `Q8F` symmetric per-tensor scheme.
    #[test]
    fn per_tensor_weights_match_burn_q8f() {
        let device = burn::tensor::Device::flex();
        let values: Vec<f32> = (0..64)
            .map(|i| ((i * 37) % 64) as f32 / 21.0 - 1.4)
            .collect();
        let burn: Vec<f32> =
            burn_q8f_round_trip(Tensor::<1>::from_floats(values.as_slice(), &device))
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
        let mut ours = values.clone();
        fake_quant_symmetric(&mut ours);
        for (a, b) in ours.iter().zip(&burn) {
            assert!((a - b).abs() < 1e-6, "{a} vs Burn's {b}");
        }
    }

    /// A deployed model quantized with 8 bits per weight and activation stays close to its
    /// float logits; a model that is not deployed is refused.
    #[test]
    fn quantized_model_stays_close_to_float() {
        use burn::tensor::Distribution;
        let _rng = crate::rng_lock();
        let model = tiny_model(11);
        let device = burn::tensor::Device::flex();
        assert!(
            model
                .clone()
                .with_quantized_weights(settings(true))
                .is_err()
        );
        let deployed = model.fuse_target().unwrap();
        let x = Tensor::<4>::random([8, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let float = deployed.forward(x.clone());
        let grids: Vec<Option<ActivationQuant>> = deployed
            .quantization_points(x.clone())
            .into_iter()
            .map(|p| {
                let mut v: Vec<f32> = p.into_data().try_into_vec::<f32>().unwrap();
                let (lo, hi) = calibrated_range(&mut v, Calibration::MinMax);
                Some(ActivationQuant::from_range(lo, hi))
            })
            .collect();
        for first_and_last in [true, false] {
            let quantized = deployed
                .clone()
                .with_quantized_weights(settings(first_and_last))
                .unwrap();
            let logits = quantized.forward_quantized(x.clone(), &grids);
            let error = (logits - float.clone()).abs().max().into_scalar::<f32>();
            let size = float.clone().abs().max().into_scalar::<f32>();
            assert!(
                error < 0.1 * size,
                "error {error} against logits up to {size}"
            );
        }
    }

    /// The tiny preset at width 0.25 with 10 classes, initialised from `seed` on flex (the
    /// caller holds the RNG lock).
    fn tiny_model(seed: u64) -> RepOptVgg {
        use crate::config::RepOptVggConfig;
        let device = burn::tensor::Device::flex();
        device.seed(seed);
        let mut config = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10);
        config.width_multiplier = [0.25; 4];
        config.init(&device)
    }

    /// Every layer's weights (block kernels, then the classifier), as values.
    fn layer_weights(model: &RepOptVgg) -> Vec<Vec<f32>> {
        let mut out: Vec<Vec<f32>> = model
            .blocks()
            .into_iter()
            .map(|b| values(b.conv.as_ref().unwrap().weight.val()))
            .collect();
        out.push(values(model.linear.weight.val()));
        out
    }

    /// Quantizing one layer changes that layer's weights and no other's; all layers one by one
    /// give exactly the whole model's quantization; a layer past the classifier is refused.
    #[test]
    fn one_layer_at_a_time_composes_to_the_whole_model() {
        let _rng = crate::rng_lock();
        let deployed = tiny_model(12).fuse_target().unwrap();
        let names = deployed.weight_layers();
        assert_eq!(names.len(), deployed.blocks().len() + 1);
        assert_eq!(names.last().unwrap(), "linear");
        let original = layer_weights(&deployed);
        for granularity in [WeightGranularity::PerChannel, WeightGranularity::PerTensor] {
            let mut all = deployed.clone();
            for layer in 0..names.len() {
                let one = deployed
                    .clone()
                    .with_quantized_layer(layer, granularity)
                    .unwrap();
                for (i, (q, w)) in layer_weights(&one).iter().zip(&original).enumerate() {
                    assert_eq!(
                        q != w,
                        i == layer,
                        "{granularity:?}: quantizing {layer} touched {i}"
                    );
                }
                all = all.with_quantized_layer(layer, granularity).unwrap();
            }
            let whole = deployed
                .clone()
                .with_quantized_weights(QuantSettings {
                    weights: granularity,
                    first_and_last: true,
                })
                .unwrap();
            assert_eq!(layer_weights(&all), layer_weights(&whole));
        }
        let past = deployed.with_quantized_layer(names.len(), WeightGranularity::PerChannel);
        assert!(past.unwrap_err().to_string().contains("no weight layer"));
    }

    fn settings(first_and_last: bool) -> QuantSettings {
        QuantSettings {
            weights: WeightGranularity::PerChannel,
            first_and_last,
        }
    }
}
