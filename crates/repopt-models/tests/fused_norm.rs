//! Batch normalisation's training pass as the `flex` operation of its own
//! (`repopt_models::fused_norm`) computes Burn's `batch_norm_train`: output, batch statistics and
//! the gradients of input, γ and β, on random inputs of every layout the models use (channel-major
//! `[1, C, N·H·W]`, `[N, C, H, W]`, `[N, C]`) and of odd sizes; with and without autodiff.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use repopt_models::fused_norm::batch_norm_train;

static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every element within `of_largest` times the largest expected magnitude.
fn assert_close<const D: usize>(actual: Tensor<D>, expected: Tensor<D>, what: &str) {
    let (actual, expected) = (actual.into_data(), expected.into_data());
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    let actual: Vec<f32> = actual.try_to_vec().unwrap();
    let expected: Vec<f32> = expected.try_to_vec().unwrap();
    let scale = expected.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= 2e-5 * scale,
            "{what}: element {i}: {a} against {e} (largest {scale})"
        );
    }
}

struct Inputs<const D: usize> {
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    /// The gradient flowing into the output (the loss is `Σ y·upstream`).
    upstream: Tensor<D>,
}

fn inputs<const D: usize>(dims: [usize; D], mean: f64, device: &Device) -> Inputs<D> {
    let c = dims[1];
    Inputs {
        x: Tensor::random(dims, Distribution::Normal(mean, 2.0), device),
        gamma: Tensor::random([c], Distribution::Uniform(0.5, 1.5), device),
        beta: Tensor::random([c], Distribution::Uniform(-0.5, 0.5), device),
        upstream: Tensor::random(dims, Distribution::Normal(0.0, 1.0), device),
    }
}

/// Output, mean, variance, ∂x, ∂γ, ∂β of one way of computing the training pass.
type Results<const D: usize> = (
    Tensor<D>,
    Tensor<1>,
    Tensor<1>,
    Tensor<D>,
    Tensor<1>,
    Tensor<1>,
);

fn run<const D: usize>(inputs: &Inputs<D>, fused: bool) -> Results<D> {
    let device = Device::flex().autodiff();
    let tracked = |t: Tensor<D>| Tensor::<D>::from_data(t.into_data(), &device).require_grad();
    let tracked1 = |t: Tensor<1>| Tensor::<1>::from_data(t.into_data(), &device).require_grad();
    let (x, gamma, beta) = (
        tracked(inputs.x.clone()),
        tracked1(inputs.gamma.clone()),
        tracked1(inputs.beta.clone()),
    );
    let result = match fused {
        true => batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5),
        false => {
            burn::tensor::module::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
        }
    };
    let upstream = Tensor::<D>::from_data(inputs.upstream.clone().into_data(), &device);
    let grads = (result.output.clone() * upstream).sum().backward();
    let grad = |t: &Tensor<D>| {
        Tensor::<D>::from_data(t.grad(&grads).unwrap().into_data(), &Device::flex())
    };
    let grad1 = |t: &Tensor<1>| {
        Tensor::<1>::from_data(t.grad(&grads).unwrap().into_data(), &Device::flex())
    };
    let plain = |t: Tensor<D>| Tensor::<D>::from_data(t.into_data(), &Device::flex());
    let plain1 = |t: Tensor<1>| Tensor::<1>::from_data(t.into_data(), &Device::flex());
    (
        plain(result.output),
        plain1(result.mean),
        plain1(result.variance),
        grad(&x),
        grad1(&gamma),
        grad1(&beta),
    )
}

fn check<const D: usize>(dims: [usize; D], mean: f64) {
    let _rng = rng_lock();
    Device::flex().seed(7);
    let inputs = inputs(dims, mean, &Device::flex());
    let fused = run(&inputs, true);
    let burn = run(&inputs, false);
    let at = format!("{dims:?}");
    assert_close(fused.0, burn.0, &format!("{at}: output"));
    assert_close(fused.1, burn.1, &format!("{at}: mean"));
    assert_close(fused.2, burn.2, &format!("{at}: variance"));
    assert_close(fused.3, burn.3, &format!("{at}: ∂x"));
    assert_close(fused.4, burn.4, &format!("{at}: ∂γ"));
    assert_close(fused.5, burn.5, &format!("{at}: ∂β"));
}

#[test]
fn channel_major_activations_as_the_blocks_normalise_them() {
    check([1, 16, 2 * 32 * 32], 0.0);
    check([1, 40, 3 * 2 * 2], 1.0);
}

#[test]
fn batch_first_activations_of_odd_sizes() {
    check([3, 5, 7, 9], 0.5);
    check([2, 3, 1, 1], 0.0);
    check([4, 6], -1.0);
}

#[test]
fn channels_longer_than_a_summing_block() {
    // 2·4100 values per channel: more than one block of 4096, and a tail of odd length.
    check([2, 3, 4100], 0.0);
}

#[test]
fn a_mean_far_from_zero_against_its_spread() {
    check([2, 4, 6, 6], 50.0);
}

#[test]
fn without_autodiff_the_output_is_burns() {
    let _rng = rng_lock();
    let device = Device::flex();
    device.seed(3);
    let inputs = inputs([2, 3, 4, 5], 0.0, &device);
    let fused = batch_norm_train(
        inputs.x.clone(),
        inputs.gamma.clone(),
        inputs.beta.clone(),
        1e-5,
    );
    let burn = burn::tensor::module::batch_norm_train(inputs.x, inputs.gamma, inputs.beta, 1e-5);
    assert_close(fused.output, burn.output, "output");
    assert_close(fused.mean, burn.mean, "mean");
    assert_close(fused.variance, burn.variance, "variance");
}

#[test]
fn the_statistics_are_the_formulas() {
    // x per channel: channel 0 holds 1, 2, 3, 4 and channel 1 holds 10, 10, 10, 14.
    let device = Device::flex();
    let x = Tensor::<3>::from_data(
        TensorData::new(
            vec![1.0f32, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 14.0],
            [2, 2, 2],
        ),
        &device,
    );
    let ones = Tensor::<1>::ones([2], &device);
    let zeros = Tensor::<1>::zeros([2], &device);
    let result = batch_norm_train(x, ones, zeros, 0.0);
    let mean: Vec<f32> = result.mean.into_data().try_to_vec::<f32>().unwrap();
    let variance: Vec<f32> = result.variance.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(mean, [2.5, 11.0]);
    assert_eq!(variance, [1.25, 3.0]);
    let y: Vec<f32> = result.output.into_data().try_to_vec::<f32>().unwrap();
    let expected = [
        -1.5 / 1.25f32.sqrt(),
        -0.5 / 1.25f32.sqrt(),
        -1.0 / 3.0f32.sqrt(),
        -1.0 / 3.0f32.sqrt(),
        0.5 / 1.25f32.sqrt(),
        1.5 / 1.25f32.sqrt(),
        -1.0 / 3.0f32.sqrt(),
        3.0 / 3.0f32.sqrt(),
    ];
    for (a, e) in y.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{y:?} against {expected:?}");
    }
}
