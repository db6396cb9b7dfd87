//! BatchNorm with PyTorch's `BatchNorm2d` semantics.

use burn::module::{Flag, Module, Param, ParamId, RunningState};
use burn::tensor::{Device, Tensor};

use crate::conv::Layout;

/// Batch normalisation over `[N, C, H, W]` as PyTorch's `BatchNorm2d` computes it: training
/// normalises with the biased batch variance but moves `running_var` towards the **unbiased**
/// one (`n/(n−1)`), which Burn's own `BatchNorm` does not. Parameter names are PyTorch's
/// (`weight`, `bias`, `running_mean`, `running_var`).
///
/// Training statistics are used when the input is on an autodiff device and the layer is not
/// frozen (as Burn's `BatchNorm` decides); otherwise the running statistics.
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Scale γ.
    pub weight: Param<Tensor<1>>,
    /// Shift β.
    pub bias: Param<Tensor<1>>,
    /// Whether the layer trains (Burn's freeze flag).
    pub training: Param<Flag>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the new batch statistic in the running ones.
    #[module(skip)]
    pub momentum: f64,
    /// Added to the variance.
    #[module(skip)]
    pub epsilon: f64,
}

impl BatchNorm2d {
    /// γ = 1, β = 0, running mean 0 and variance 1; momentum 0.1, ε = 1e-5.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// Normalises `x` `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.normalise(x)
    }

    /// Normalises `x` given in `layout`. Channel-major activations `[C, N, H, W]` are
    /// normalised as `[1, C, N·H·W]`, a view of the same memory, with the same statistics.
    pub fn forward_laid_out(&self, x: Tensor<4>, layout: Layout) -> Tensor<4> {
        match layout {
            Layout::ChannelsFirst => self.normalise(x),
            Layout::ChannelsMajor => {
                let dims = x.dims();
                let [c, n, h, w] = dims;
                self.normalise(x.reshape([1, c, n * h * w])).reshape(dims)
            }
        }
    }

    /// Normalises `x` `[N, C, …]` over every axis but the channels' (axis 1).
    fn normalise<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if x.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(x)
        } else {
            let device = x.device();
            burn::tensor::module::batch_norm(
                x,
                self.weight.val(),
                self.bias.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    fn forward_train<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let count = (x.shape().num_elements() / x.dims()[1]) as f64;
        let unbiased = if count > 1.0 {
            count / (count - 1.0)
        } else {
            1.0
        };
        let device = x.device();
        let result = batch_norm_train(x, self.weight.val(), self.bias.val(), self.epsilon);
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.variance.detach().mul_scalar(m * unbiased));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        result.output
    }

    /// An independent copy: new parameter ids and running statistics that are not shared with
    /// `self` (a plain `clone` shares them).
    pub fn duplicate(&self) -> Self {
        let (mean, var) = self.running_stats();
        let fresh = |p: &Param<Tensor<1>>| {
            Param::initialized(
                ParamId::new(),
                p.val().set_require_grad(p.is_require_grad()),
            )
        };
        Self {
            weight: fresh(&self.weight),
            bias: fresh(&self.bias),
            training: Param::from_bool(self.training.is_enabled()),
            running_mean: RunningState::new(mean),
            running_var: RunningState::new(var),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }

    /// The running statistics (synchronised).
    pub fn running_stats(&self) -> (Tensor<1>, Tensor<1>) {
        (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
        )
    }
}

/// Burn's `batch_norm_train`, by the operation of its own on `flex` (`f32`, feature
/// `flex-kernels`, see [`crate::fused_norm`]) and by Burn elsewhere.
#[cfg(feature = "flex-kernels")]
fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> burn::tensor::module::BatchNormTrainOutput<D> {
    crate::fused_norm::batch_norm_train(x, gamma, beta, epsilon)
}

#[cfg(not(feature = "flex-kernels"))]
fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> burn::tensor::module::BatchNormTrainOutput<D> {
    burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon)
}
