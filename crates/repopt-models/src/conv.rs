//! How the blocks' convolutions are computed: Burn's `conv2d`, or im2col and one matrix product
//! (through tensor operations, or as an operation of its own on `flex`).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::ConvGeometry;

/// How a [`Conv2d`] of the model is evaluated. Both compute the same function of the same
/// parameters (PyTorch's cross-correlation with zero padding); they differ in speed only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConvImpl {
    /// Burn's `conv2d` (`Conv2d::forward`) and its backward pass: each backend's own kernels.
    /// The choice for GPU backends.
    #[default]
    #[serde(rename = "native", alias = "Native")]
    Native,
    /// im2col through tensor operations and one matrix product for the whole batch; see
    /// [`conv2d_im2col`]. Faster than `Native` on the `flex` CPU backend, whose own convolution
    /// runs one narrow matrix product per image; [`ConvImpl::Patches`] is faster still.
    #[serde(rename = "im2col", alias = "Im2col")]
    Im2col,
    /// The im2col product as an operation of its own with its own backward pass on the `flex`
    /// backend (`f32`): patches gathered in tiles of whole images and never kept, each product
    /// oriented for its shape; see [`conv2d_patches_cnhw`]. Elsewhere the same as
    /// [`ConvImpl::Im2col`].
    #[serde(rename = "patches", alias = "Patches")]
    Patches,
}

impl core::fmt::Display for ConvImpl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConvImpl::Native => "native",
            ConvImpl::Im2col => "im2col",
            ConvImpl::Patches => "patches",
        })
    }
}

impl core::str::FromStr for ConvImpl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "native" => Ok(ConvImpl::Native),
            "im2col" => Ok(ConvImpl::Im2col),
            "patches" => Ok(ConvImpl::Patches),
            other => Err(format!(
                "unknown convolution `{other}` (expected native, im2col or patches)"
            )),
        }
    }
}

/// The memory order of a model's activations between its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[N, C, H, W]`: Burn's and PyTorch's order.
    ChannelsFirst,
    /// `[C, N, H, W]`: each channel's values for the whole batch side by side, the rows of the
    /// im2col product `Y = W · P` (see [`conv2d_im2col_cnhw`]), so no copy reorders activations
    /// around a convolution or a batch norm, nor a kernel or its gradient.
    ChannelsMajor,
}

impl Layout {
    /// `x` `[N, C, H, W]` in this layout.
    pub fn from_nchw(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layout::ChannelsFirst => x,
            Layout::ChannelsMajor => x.swap_dims(0, 1),
        }
    }

    /// `x`, in this layout, as `[N, C, H, W]`.
    pub fn to_nchw(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layout::ChannelsFirst => x,
            Layout::ChannelsMajor => x.swap_dims(0, 1),
        }
    }

    /// `x`, in this layout, in layout `to`.
    pub fn convert(self, x: Tensor<4>, to: Layout) -> Tensor<4> {
        if self == to {
            x
        } else {
            to.from_nchw(self.to_nchw(x))
        }
    }

    /// `values` `[C]` shaped to broadcast over the channels of a tensor in this layout.
    pub fn per_channel(self, values: Tensor<1>) -> Tensor<4> {
        let channels = values.dims()[0] as i32;
        match self {
            Layout::ChannelsFirst => values.reshape([1, channels, 1, 1]),
            Layout::ChannelsMajor => values.reshape([channels, 1, 1, 1]),
        }
    }

    /// The mean over height and width: `[N, C]`.
    pub fn global_average(self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Layout::ChannelsFirst => {
                let [n, c, h, w] = x.dims();
                x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
            }
            Layout::ChannelsMajor => {
                let [c, n, h, w] = x.dims();
                x.reshape([c, n, h * w])
                    .mean_dim(2)
                    .reshape([c, n])
                    .transpose()
            }
        }
    }
}

impl ConvImpl {
    /// The layout of the activations this way computes best in: channel-major for im2col
    /// (its product reads and writes channel rows), channels-first for Burn's `conv2d`.
    pub fn layout(self) -> Layout {
        match self {
            ConvImpl::Native => Layout::ChannelsFirst,
            ConvImpl::Im2col | ConvImpl::Patches => Layout::ChannelsMajor,
        }
    }

    /// `conv`'s output for `x` `[N, C_in, H, W]`, computed this way.
    pub fn forward(self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        let layout = self.layout();
        layout.to_nchw(self.forward_laid_out(conv, layout.from_nchw(x)))
    }

    /// `conv`'s output for `x` given and returned in [`ConvImpl::layout`].
    pub fn forward_laid_out(self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        match self {
            ConvImpl::Native => conv.forward(x),
            ConvImpl::Im2col | ConvImpl::Patches => {
                assert_eq!(conv.groups, 1, "im2col convolution: groups must be 1");
                assert_eq!(
                    conv.dilation,
                    [1, 1],
                    "im2col convolution: dilation must be 1"
                );
                let padding = match &conv.padding {
                    PaddingConfig2d::Explicit(top, left, bottom, right) => {
                        [*top, *left, *bottom, *right]
                    }
                    PaddingConfig2d::Valid => [0; 4],
                    other => panic!("im2col convolution: unsupported padding {other:?}"),
                };
                let bias = conv.bias.as_ref().map(|b| b.val());
                if self == ConvImpl::Im2col {
                    return conv2d_im2col_cnhw(x, conv.weight.val(), bias, conv.stride, padding);
                }
                let y = conv2d_patches_cnhw(x, conv.weight.val(), conv.stride, padding);
                match bias {
                    Some(bias) => {
                        let channels = y.dims()[0];
                        y + bias.reshape([channels, 1, 1, 1])
                    }
                    None => y,
                }
            }
        }
    }
}

/// A 2-D convolution (cross-correlation, zero padding, no dilation, one group) as one matrix
/// product over the whole batch:
///
/// `y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x̃[n, c, s_h·i + u − p_top, s_w·j + v − p_left]`,
///
/// with `x̃` zero outside the input; see [`conv2d_im2col_cnhw`], which this calls between two
/// permutes. `x`: `[N, C_in, H, W]`; `weight`: `[C_out, C_in, k_h, k_w]`; `padding`: top, left,
/// bottom, right. Returns `[N, C_out, H_out, W_out]`,
/// `H_out = ⌊(H + top + bottom − k_h) / s_h⌋ + 1` (likewise `W_out`).
pub fn conv2d_im2col(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: [usize; 4],
) -> Tensor<4> {
    let y = conv2d_im2col_cnhw(x.swap_dims(0, 1), weight, bias, stride, padding);
    y.swap_dims(0, 1)
}

/// [`conv2d_im2col`] on channel-major activations: `x` `[C_in, N, H, W]` in, `[C_out, N,
/// H_out, W_out]` out.
///
/// The input is a matrix `X` `[C_in, N·H·W]`, one row per channel, followed by a zero column;
/// the patch matrix `P = X[:, r]` `[C_in·k_h·k_w, N·H_out·W_out]` gathers, for every tap `(u, v)`
/// and output pixel, the column `r` its tap reads (the zero column for a tap in the padding),
/// so its rows are ordered `(c, u, v)`, the order of the kernel `W` `[C_out, C_in·k_h·k_w]` as
/// stored; and `Y = W · P`, one row per output channel. Neither the kernel, nor its gradient,
/// nor the output is reordered.
///
/// Every step is a tensor operation, so automatic differentiation gives the backward pass as
/// two more matrix products, `∂P = Wᵀ · ∂Y` and `∂W = ∂Y · Pᵀ`, and one scatter-add of `∂P`'s
/// columns onto `∂X` (the gather's backward). Each product covers the whole batch: for a 2×2
/// feature map and batch 32 it has 128 columns where a per-image product has 4.
pub fn conv2d_im2col_cnhw(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: [usize; 4],
) -> Tensor<4> {
    let geometry = ConvGeometry::new(x.dims(), weight.dims(), stride, padding)
        .unwrap_or_else(|e| panic!("im2col convolution: {e}"));
    let [channels_in, batch, height, width] = geometry.input;
    let channels_out = geometry.channels_out;
    let [out_h, out_w] = geometry
        .output_size()
        .expect("checked by ConvGeometry::new");
    let device = x.device();
    let pixels = batch * height * width;
    let x = x.reshape([channels_in, pixels]);
    let patches = if geometry.is_identity() {
        x
    } else {
        let columns = if geometry.reads_padding() {
            let zero = Tensor::<2>::zeros([channels_in, 1], &device).cast(x.dtype());
            Tensor::cat(vec![x, zero], 1)
        } else {
            x
        };
        let taps = tap_columns(&geometry);
        let reads = taps.len();
        let taps = Tensor::<1, Int>::from_data(TensorData::new(taps, [reads]), &device);
        columns
            .select(1, taps)
            .reshape([geometry.patch_rows(), geometry.outputs()])
    };
    let kernel = weight.reshape([channels_out, geometry.patch_rows()]);
    let mut y = kernel.matmul(patches);
    if let Some(bias) = bias {
        y = y + bias.reshape([channels_out, 1]);
    }
    y.reshape([channels_out, batch, out_h, out_w])
}

/// [`conv2d_im2col_cnhw`] without bias, by the operation of its own on `flex` (`f32`, feature
/// `flex-kernels`, see [`crate::patch_conv`]) and by tensor operations elsewhere.
pub fn conv2d_patches_cnhw(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 4],
) -> Tensor<4> {
    #[cfg(feature = "flex-kernels")]
    {
        crate::patch_conv::conv2d_patches_cnhw(x, weight, stride, padding)
    }
    #[cfg(not(feature = "flex-kernels"))]
    {
        conv2d_im2col_cnhw(x, weight, None, stride, padding)
    }
}

/// The columns of the patch matrix `[k_h·k_w, N·H_out·W_out]`: for tap `(u, v)` (in that order)
/// and output pixel `(n, i, j)`, the input pixel row `n·H·W + (s_h·i + u − p_top)·W + (s_w·j + v −
/// p_left)` it reads, or the zero row `N·H·W` when that pixel lies in the padding.
fn tap_columns(geometry: &ConvGeometry) -> Vec<i64> {
    let rows = tap_rows(geometry);
    let taps = geometry.taps();
    let pixels = geometry.outputs();
    (0..taps)
        .flat_map(|t| (0..pixels).map(move |p| (t, p)))
        .map(|(t, p)| rows[p * taps + t])
        .collect()
}

/// The row every tap reads (see [`tap_columns`]), output pixel by output pixel, taps in `(u, v)`
/// order.
fn tap_rows(geometry: &ConvGeometry) -> Vec<i64> {
    let [_, batch, height, width] = geometry.input;
    let [kernel_h, kernel_w] = geometry.kernel;
    let [stride_h, stride_w] = geometry.stride;
    let [top, left, _, _] = geometry.padding;
    let [out_h, out_w] = geometry.output_size().expect("valid convolution geometry");
    let zero_row = (batch * height * width) as i64;
    let mut rows = Vec::with_capacity(geometry.outputs() * geometry.taps());
    for n in 0..batch {
        for i in 0..out_h {
            for j in 0..out_w {
                for u in 0..kernel_h {
                    let h = (i * stride_h + u).checked_sub(top).filter(|&h| h < height);
                    for v in 0..kernel_w {
                        let w = (j * stride_w + v).checked_sub(left).filter(|&w| w < width);
                        rows.push(match (h, w) {
                            (Some(h), Some(w)) => ((n * height + h) * width + w) as i64,
                            _ => zero_row,
                        });
                    }
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_read_their_pixels_or_the_zero_row() {
        // One 2×3 image, 3×3 kernel, stride 2, padding 1: output 1×2.
        let geometry = ConvGeometry {
            input: [1, 1, 2, 3],
            channels_out: 1,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1; 4],
        };
        assert_eq!(geometry.output_size(), Some([1, 2]));
        let z = 6;
        #[rustfmt::skip]
        let expected = vec![
            z, z, z,  z, 0, 1,  z, 3, 4,   // output (0, 0): rows −1…1, columns −1…1
            z, z, z,  1, 2, z,  4, 5, z,   // output (0, 1): rows −1…1, columns 1…3
        ];
        assert_eq!(tap_rows(&geometry), expected);
        // The same reads, tap by tap: tap t of output pixel p is column t·2 + p.
        let by_tap: Vec<i64> = (0..9)
            .flat_map(|t| [expected[t], expected[9 + t]])
            .collect();
        assert_eq!(tap_columns(&geometry), by_tap);
    }
}
