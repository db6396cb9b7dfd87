//! The im2col convolution, through tensor operations and as the `flex` operation of its own
//! (`ConvImpl::Patches`), computes Burn's `conv2d`: outputs and gradients on random inputs, for
//! every kernel, stride and padding the model uses (and a few it does not, batches cut into
//! several tiles among them), and whole models in every mode.

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
use repopt_models::{BlockMode, ConvImpl, RepOptVggConfig};

/// The tests draw from the flex device's one global RNG; run them one at a time so that a
/// seeded test gets the same draws whatever else runs.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn tolerance() -> Tolerance<f32> {
    Tolerance::absolute(1e-4).set_relative(1e-4)
}

fn assert_close(actual: Tensor<4>, expected: Tensor<4>, what: &str) {
    assert_close_to(actual, expected, 1e-5, what)
}

/// Every element within `of_largest` times the largest expected magnitude, plus 1e-4 of its own.
fn assert_close_to(actual: Tensor<4>, expected: Tensor<4>, of_largest: f32, what: &str) {
    let (actual, expected) = (actual.into_data(), expected.into_data());
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    let actual: Vec<f32> = actual.try_to_vec().unwrap();
    let expected: Vec<f32> = expected.try_to_vec().unwrap();
    let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= of_largest * scale + 1e-4 * e.abs(),
            "{what}: element {i}: {a} against {e}"
        );
    }
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: [usize; 4],
    bias: bool,
    device: &Device,
) -> Conv2d {
    let [top, left, bottom, right] = padding;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .with_bias(bias)
        .init(device)
}

/// The ways checked against Burn's `conv2d`.
const FAST: [ConvImpl; 2] = [ConvImpl::Im2col, ConvImpl::Patches];

/// Output, input gradient and parameter gradients of `conv` on `x` under a random linear loss,
/// computed by Burn's `conv2d` and by each of [`FAST`].
fn check(conv: &Conv2d, x_shape: [usize; 4], what: &str) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), &device);
    let mut outputs = Vec::new();
    for conv_impl in [ConvImpl::Native, ConvImpl::Im2col, ConvImpl::Patches] {
        let x = x.clone().detach().require_grad();
        let y = conv_impl.forward(conv, x.clone());
        // The same random weights of the loss for both: seeded by the output shape.
        let weights = Tensor::<4>::from_data(
            TensorData::new(
                (0..y.shape().num_elements())
                    .map(|i| ((i * 7919 % 113) as f32 - 56.0) / 56.0)
                    .collect::<Vec<_>>(),
                y.shape(),
            ),
            &device,
        );
        let grads = (y.clone() * weights).sum().backward();
        let x_grad = x.grad(&grads).unwrap();
        let w_grad = conv.weight.val().grad(&grads).unwrap();
        let b_grad = conv.bias.as_ref().map(|b| b.val().grad(&grads).unwrap());
        outputs.push((y.inner(), x_grad, w_grad, b_grad));
    }
    let native = &outputs[0];
    for (fast, conv_impl) in outputs[1..].iter().zip(FAST) {
        let what = format!("{what} ({conv_impl})");
        assert_close(fast.0.clone(), native.0.clone(), &format!("{what}: output"));
        assert_close(fast.1.clone(), native.1.clone(), &format!("{what}: ∂x"));
        assert_close(fast.2.clone(), native.2.clone(), &format!("{what}: ∂w"));
        if let (Some(a), Some(b)) = (&fast.3, &native.3) {
            a.clone()
                .into_data()
                .assert_approx_eq::<f32>(&b.clone().into_data(), tolerance());
        }
    }
}

#[test]
fn im2col_equals_burn_conv_outputs_and_gradients() {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(11);
    /// Name, `[C_in, C_out]`, kernel, stride, padding, bias, input shape.
    struct Case(
        &'static str,
        [usize; 2],
        usize,
        usize,
        [usize; 4],
        bool,
        [usize; 4],
    );
    let cases = [
        Case("3x3 s1 p1", [6, 5], 3, 1, [1; 4], false, [3, 6, 7, 9]),
        Case("3x3 s2 p1 (odd)", [4, 8], 3, 2, [1; 4], false, [2, 4, 9, 7]),
        Case(
            "3x3 s2 p1 (even)",
            [3, 4],
            3,
            2,
            [1; 4],
            false,
            [2, 3, 8, 8],
        ),
        Case("1x1 s1", [5, 6], 1, 1, [0; 4], false, [2, 5, 4, 5]),
        Case("1x1 s2", [5, 6], 1, 2, [0; 4], false, [2, 5, 5, 4]),
        Case("3x3 s1 p1 bias", [4, 4], 3, 1, [1; 4], true, [2, 4, 5, 5]),
        Case("3x3 valid", [2, 3], 3, 1, [0; 4], true, [1, 2, 5, 6]),
        Case("3x3 on 1x1", [8, 8], 3, 1, [1; 4], false, [4, 8, 1, 1]),
        // Batches of several tiles of whole images (at least four tiles a thread).
        Case(
            "3x3 s1 p1, batch 37",
            [3, 16],
            3,
            1,
            [1; 4],
            false,
            [37, 3, 6, 5],
        ),
        Case(
            "3x3 s2 p1, batch 29",
            [5, 4],
            3,
            2,
            [1; 4],
            true,
            [29, 5, 7, 6],
        ),
        Case(
            "1x1 s2, batch 19",
            [4, 3],
            1,
            2,
            [0; 4],
            false,
            [19, 4, 3, 5],
        ),
        Case("5x5 s3 p2", [2, 3], 5, 3, [2; 4], false, [3, 2, 11, 8]),
        // Strided convolutions whose sides are multiples of the stride, and an even kernel.
        Case(
            "3x3 s2 p1 (even), batch 29",
            [5, 4],
            3,
            2,
            [1; 4],
            true,
            [29, 5, 8, 6],
        ),
        Case("1x1 s2 (even)", [5, 6], 1, 2, [0; 4], false, [3, 5, 6, 4]),
        Case(
            "5x5 s2 p2 (even)",
            [3, 4],
            5,
            2,
            [2; 4],
            false,
            [2, 3, 8, 8],
        ),
        Case(
            "3x3 s3 p1 on 9x6",
            [2, 3],
            3,
            3,
            [1; 4],
            false,
            [3, 2, 9, 6],
        ),
        Case("2x2 s2 (even)", [3, 2], 2, 2, [0; 4], false, [2, 3, 6, 4]),
        // Maps of at most four output pixels (sums over the taps that read the input).
        Case("3x3 s1 p1 on 2x2", [6, 5], 3, 1, [1; 4], true, [3, 6, 2, 2]),
        Case(
            "3x3 s2 p1, 2x2 to 1x1",
            [4, 7],
            3,
            2,
            [1; 4],
            false,
            [5, 4, 2, 2],
        ),
        Case(
            "3x3 s1 p1 on 2x1",
            [3, 4],
            3,
            1,
            [1; 4],
            false,
            [2, 3, 2, 1],
        ),
        Case(
            "3x3 s2 p1, 3x4 to 2x2",
            [3, 4],
            3,
            2,
            [1; 4],
            false,
            [3, 3, 3, 4],
        ),
        Case(
            "5x5 s1 p2 on 2x2",
            [3, 2],
            5,
            1,
            [2; 4],
            false,
            [2, 3, 2, 2],
        ),
        Case(
            "3x3 s1 p1 on 2x2, 64 channels, batch 37",
            [64, 48],
            3,
            1,
            [1; 4],
            false,
            [37, 64, 2, 2],
        ),
        Case(
            "3x3 s2 p1, 2x2 to 1x1, 200 channels",
            [200, 256],
            3,
            2,
            [1; 4],
            false,
            [8, 200, 2, 2],
        ),
        // One tile whose products use every thread.
        Case(
            "3x3 s1 p1, 64 channels",
            [64, 64],
            3,
            1,
            [1; 4],
            false,
            [4, 64, 8, 8],
        ),
    ];
    for Case(what, channels, kernel, stride, padding, bias, x_shape) in cases {
        let conv = conv(channels, kernel, stride, padding, bias, &device);
        check(&conv, x_shape, what);
    }
    // Asymmetric padding, with a tap row and column that read only padding.
    let mut conv = conv([3, 2], 3, 1, [1; 4], false, &device);
    conv.padding = PaddingConfig2d::Explicit(0, 2, 1, 0);
    check(&conv, [2, 3, 6, 5], "3x3 padding (0, 2, 1, 0)");
    conv.padding = PaddingConfig2d::Explicit(3, 3, 3, 1);
    check(&conv, [2, 3, 2, 2], "3x3 padding (3, 3, 3, 1)");
    conv.padding = PaddingConfig2d::Explicit(0, 2, 1, 0);
    check(&conv, [3, 3, 2, 1], "3x3 padding (0, 2, 1, 0) on 2x1");
    conv.stride = [2, 2];
    check(&conv, [3, 3, 8, 6], "3x3 stride 2 padding (0, 2, 1, 0)");
    conv.padding = PaddingConfig2d::Explicit(3, 3, 3, 1);
    conv.stride = [2, 3];
    check(
        &conv,
        [5, 3, 4, 7],
        "3x3 stride (2, 3) padding (3, 3, 3, 1)",
    );
}

/// The gradient of the kernel alone (an input that needs none, as a model's images) and of the
/// input alone (a frozen kernel) equal Burn's, as the backward pass computes only those wanted.
#[test]
fn either_gradient_alone_equals_burn_conv() {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    device.seed(12);
    let conv = conv([3, 5], 3, 1, [1; 4], false, &device);
    let x = Tensor::<4>::random([6, 3, 5, 4], Distribution::Normal(0.0, 1.0), &device);
    let loss = |y: Tensor<4>| (y.clone() * y.sin()).sum();
    let native = |x: Tensor<4>, conv: &Conv2d| loss(ConvImpl::Native.forward(conv, x)).backward();
    // ∂W only.
    let expected = conv.weight.val().grad(&native(x.clone(), &conv)).unwrap();
    let grads = loss(ConvImpl::Patches.forward(&conv, x.clone())).backward();
    assert_close(
        conv.weight.val().grad(&grads).unwrap(),
        expected,
        "∂w without ∂x",
    );
    // ∂X only.
    let frozen = conv.clone().no_grad();
    let x = x.require_grad();
    let expected = x.grad(&native(x.clone(), &frozen)).unwrap();
    let grads = loss(ConvImpl::Patches.forward(&frozen, x.clone())).backward();
    assert!(frozen.weight.val().grad(&grads).is_none());
    assert_close(x.grad(&grads).unwrap(), expected, "∂x without ∂w");
}

/// Forward and a backward pass of whole models agree, in every mode (the RepVGG branches use
/// the 1×1 convolution too), and in eval mode after RepVGG fusion (a convolution with bias).
#[test]
fn im2col_models_equal_native_models() {
    let _rng = rng_lock();
    let device = Device::flex().autodiff();
    for mode in [
        BlockMode::Target,
        BlockMode::HyperSearch,
        BlockMode::Csla,
        BlockMode::RepVgg,
    ] {
        device.seed(5);
        let config = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10)
            .with_mode(mode);
        let native = config.init(&device);
        for conv_impl in FAST {
            check_model(&native, conv_impl, mode, &device);
        }
    }
}

/// [`im2col_models_equal_native_models`] for one way of convolving.
fn check_model(
    native: &repopt_models::RepOptVgg,
    conv_impl: ConvImpl,
    mode: BlockMode,
    device: &Device,
) {
    let im2col = native.clone().with_conv_impl(conv_impl);
    assert_eq!(im2col.conv_impl(), conv_impl);
    let mode = format!("{mode} ({conv_impl})");
    let x = Tensor::<4>::random([4, 3, 16, 16], Distribution::Normal(0.0, 1.0), device);
    let (a, b) = (native.forward(x.clone()), im2col.forward(x.clone()));
    a.clone()
        .into_data()
        .assert_approx_eq::<f32>(&b.clone().into_data(), tolerance());
    // Channels-last BN keeps the same running statistics.
    let running = |model: &repopt_models::RepOptVgg| {
        let block = &model.stage3[0];
        let (mean, var) = block
            .bn
            .as_ref()
            .or(block.bn_3x3.as_ref())
            .unwrap()
            .running_stats();
        Tensor::cat(vec![mean, var], 0).into_data()
    };
    running(&im2col).assert_approx_eq::<f32>(&running(native), tolerance());
    // Every stage's output comes back as [N, C, H, W].
    for (stage, (a, b)) in native
        .forward_stages(x.clone())
        .into_iter()
        .zip(im2col.forward_stages(x.clone()))
        .enumerate()
    {
        assert_close(b, a, &format!("{mode}: stage {stage} output"));
    }
    let (ga, gb) = (a.sum().backward(), b.sum().backward());
    let first_kernel = |model: &repopt_models::RepOptVgg| -> Param<Tensor<4>> {
        let block = &model.stage1[1];
        block
            .conv
            .clone()
            .or_else(|| block.conv_3x3.clone())
            .unwrap()
            .weight
    };
    // Through the batch norms this gradient is a difference of large terms: the ways of
    // convolving sum in different orders, and differ by up to 8e-6 of its largest entry
    // (RepVGG, Burn's conv2d against im2col).
    assert_close_to(
        first_kernel(&im2col).val().grad(&gb).unwrap(),
        first_kernel(native).val().grad(&ga).unwrap(),
        2e-5,
        &format!("{mode}: ∂ stage1.1 kernel"),
    );
    if native.mode() == BlockMode::RepVgg {
        let fused = native.clone().valid().fuse_repvgg().unwrap();
        let fused_im2col = fused.clone().with_conv_impl(conv_impl);
        let x = x.inner();
        fused
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&fused_im2col.forward(x).into_data(), tolerance());
    }
}

#[test]
fn conv_impl_names_parse() {
    let _rng = rng_lock();
    for conv_impl in [ConvImpl::Native, ConvImpl::Im2col, ConvImpl::Patches] {
        assert_eq!(conv_impl.to_string().parse::<ConvImpl>(), Ok(conv_impl));
    }
    assert!("winograd".parse::<ConvImpl>().is_err());
    let _unused = Module::num_params(&conv([1, 1], 1, 1, [0; 4], false, &Device::flex()));
}

#[test]
fn fusion_keeps_the_convolution_implementation() {
    let _rng = rng_lock();
    let device = Device::flex();
    for mode in [BlockMode::Target, BlockMode::RepVgg] {
        let model = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10)
            .with_mode(mode)
            .init(&device)
            .with_conv_impl(ConvImpl::Im2col);
        let fused = match mode {
            BlockMode::Target => model.fuse_target(),
            _ => model.fuse_repvgg(),
        }
        .unwrap();
        assert_eq!(fused.mode(), BlockMode::Deploy);
        assert!(
            fused
                .blocks()
                .iter()
                .all(|b| b.conv_impl == ConvImpl::Im2col),
            "{mode}: a fused block lost its convolution implementation"
        );
    }
}
