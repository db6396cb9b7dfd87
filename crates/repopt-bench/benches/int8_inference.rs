//! Inference of a deployed RepOpt-VGG with its conv weights stored as Burn int8 tensors, against
//! the same model in `f32`, on the flex CPU backend.
//!
//! The deployed model (every block one 3×3 conv with bias, BN folded) of the CIFAR recipe's A0
//! at widths 0.25/0.25/0.25/0.5, batch 32, 3×32×32, with both conv implementations. Its conv
//! kernels and classifier weight go through Burn's `Quantizer` (min-max calibration, the default
//! `QuantScheme`: `Q8F`, symmetric int8 per tensor); biases stay `f32`. Burn 0.22's flex backend has no
//! int8 convolution: a quantized kernel is dequantized when the conv reads it, so this measures
//! what Burn executes today, not what an int8 kernel could do. The two variants alternate
//! round by round; the summary gives medians and their ratio. Run with
//! `cargo bench -p repopt-bench --bench int8_inference`.

use std::time::{Duration, Instant};

use burn::module::{Module, ParamGroup, Quantizer};
use burn::tensor::quantization::{Calibration, QuantScheme};
use burn::tensor::{Device, Distribution, Tensor};
use repopt_models::{ConvImpl, RepOptVgg, RepOptVggConfig};

const BATCH_SIZE: usize = 32;
const ROUNDS: usize = 15;
const WARMUP: usize = 3;

fn deployed(conv: ConvImpl, device: &Device) -> RepOptVgg {
    RepOptVggConfig::new([2, 4, 14, 1], [0.25, 0.25, 0.25, 0.5])
        .with_num_classes(10)
        .init(device)
        .fuse_target()
        .expect("a target model folds its BNs")
        .with_conv_impl(conv)
}

fn quantized(model: RepOptVgg) -> RepOptVgg {
    let mut quantizer = Quantizer::new(Calibration::MinMax, QuantScheme::default());
    let mut weights: Vec<_> = model
        .blocks()
        .iter()
        .map(|block| {
            block
                .conv
                .as_ref()
                .expect("a deployed block has conv")
                .weight
                .id
        })
        .collect();
    weights.push(model.linear.weight.id);
    quantizer.set_param_group(ParamGroup::from_ids(weights));
    model.quantize_weights(&mut quantizer)
}

fn time(model: &RepOptVgg, x: &Tensor<4>) -> Duration {
    let start = Instant::now();
    let logits = model.forward(x.clone());
    let _ = logits.into_data();
    start.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let device = Device::flex();
    device.seed(0);
    let x = Tensor::<4>::random([BATCH_SIZE, 3, 32, 32], Distribution::Default, &device);
    println!(
        "deployed A0 ×(0.25, 0.25, 0.25, 0.5), batch {BATCH_SIZE}, 3×32×32, flex, {ROUNDS} rounds"
    );
    for conv in [ConvImpl::Im2col, ConvImpl::Native] {
        let f32_model = deployed(conv, &device);
        let int8_model = quantized(f32_model.clone());
        // The first stage's output: deeper ones of an untrained model are tiny.
        let reference = f32_model.forward_stages(x.clone()).remove(0);
        let approx = int8_model.forward_stages(x.clone()).remove(0);
        let error = (reference.clone() - approx)
            .abs()
            .max()
            .into_scalar::<f32>();
        let scale = reference.abs().max().into_scalar::<f32>();
        let (mut fp, mut q) = (Vec::new(), Vec::new());
        for round in 0..WARMUP + ROUNDS {
            let (a, b) = (time(&f32_model, &x), time(&int8_model, &x));
            if round >= WARMUP {
                fp.push(a);
                q.push(b);
            }
        }
        let (fp, q) = (median(fp), median(q));
        println!(
            "{conv:?}: f32 {:.2} ms/batch, int8 weights {:.2} ms/batch, int8 / f32 = {:.2}× time \
             (stage 0 output: max |Δ| {error:.2e} of max {scale:.2e})",
            fp.as_secs_f64() * 1e3,
            q.as_secs_f64() * 1e3,
            q.as_secs_f64() / fp.as_secs_f64()
        );
    }
}
