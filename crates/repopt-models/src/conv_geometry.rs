//! The shapes of one convolution: where every tap of every output pixel reads.

/// A 2-D convolution's shapes (one group, no dilation) on channel-major activations:
/// input `[C_in, N, H, W]`, kernel `[C_out, C_in, k_h, k_w]`, output `[C_out, N, H_out, W_out]`,
/// `H_out = ⌊(H + top + bottom − k_h) / s_h⌋ + 1` (likewise `W_out`).
///
/// Output pixel `(n, i, j)` reads, through tap `(u, v)`, input pixel
/// `(n, s_h·i + u − top, s_w·j + v − left)`, or zero where that lies in the padding; in the
/// padded input `[C_in, N, H + top + bottom, W + left + right]`, pixel `(n, s_h·i + u, s_w·j + v)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// `[C_in, N, H, W]`.
    pub input: [usize; 4],
    /// Output channels.
    pub channels_out: usize,
    /// `[k_h, k_w]`.
    pub kernel: [usize; 2],
    /// `[s_h, s_w]`.
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub padding: [usize; 4],
}

impl ConvGeometry {
    /// The geometry of input `[C_in, N, H, W]` and kernel `[C_out, C_in, k_h, k_w]`; an error
    /// that names the mismatch when the channels differ or the kernel does not fit the padded
    /// input with this stride.
    pub fn new(
        input: [usize; 4],
        kernel: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 4],
    ) -> Result<Self, String> {
        let [channels_out, kernel_channels, kernel_h, kernel_w] = kernel;
        if input[0] != kernel_channels {
            return Err(format!(
                "input has {} channels, the kernel {kernel_channels}",
                input[0]
            ));
        }
        let geometry = Self {
            input,
            channels_out,
            kernel: [kernel_h, kernel_w],
            stride,
            padding,
        };
        match geometry.output_size() {
            Some(_) => Ok(geometry),
            None => Err(format!(
                "kernel {:?} with stride {stride:?} does not fit the padded input {:?}",
                geometry.kernel,
                geometry.padded_size()
            )),
        }
    }

    /// `[H_out, W_out]`; `None` when the kernel is larger than the padded input or a stride is 0.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let [padded_h, padded_w] = self.padded_size();
        let [kernel_h, kernel_w] = self.kernel;
        let [stride_h, stride_w] = self.stride;
        (padded_h >= kernel_h && padded_w >= kernel_w && stride_h > 0 && stride_w > 0).then(|| {
            [
                (padded_h - kernel_h) / stride_h + 1,
                (padded_w - kernel_w) / stride_w + 1,
            ]
        })
    }

    /// `[H + top + bottom, W + left + right]`.
    pub fn padded_size(&self) -> [usize; 2] {
        let [_, _, height, width] = self.input;
        let [top, left, bottom, right] = self.padding;
        [height + top + bottom, width + left + right]
    }

    /// `[C_out, N, H_out, W_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        let [out_h, out_w] = self.output_size().expect("valid convolution geometry");
        [self.channels_out, self.input[1], out_h, out_w]
    }

    /// `C_in·k_h·k_w`: the rows of the patch matrix, the columns of the kernel matrix.
    pub fn patch_rows(&self) -> usize {
        self.input[0] * self.taps()
    }

    /// `k_h·k_w`.
    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Whether the patch matrix is the input itself: a 1×1 kernel, stride 1, no padding.
    pub fn is_identity(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4]
    }

    /// The input pixel `(h, w)` that output pixel `(i, j)` reads through tap `(u, v)`, or `None`
    /// where the tap reads the padding.
    pub fn reads(&self, [i, j]: [usize; 2], [u, v]: [usize; 2]) -> Option<[usize; 2]> {
        let [_, _, height, width] = self.input;
        let [stride_h, stride_w] = self.stride;
        let [top, left, _, _] = self.padding;
        let h = (i * stride_h + u)
            .checked_sub(top)
            .filter(|&h| h < height)?;
        let w = (j * stride_w + v)
            .checked_sub(left)
            .filter(|&w| w < width)?;
        Some([h, w])
    }

    /// Whether some tap may read the padding.
    pub fn reads_padding(&self) -> bool {
        self.padding != [0; 4]
    }

    /// Input pixels of one image, `H·W`.
    pub fn image_pixels(&self) -> usize {
        self.input[2] * self.input[3]
    }

    /// Output pixels of one image, `H_out·W_out`.
    pub fn image_outputs(&self) -> usize {
        let [out_h, out_w] = self.output_size().expect("valid convolution geometry");
        out_h * out_w
    }

    /// Output pixels of the batch, `N·H_out·W_out`: the columns of the patch matrix.
    pub fn outputs(&self) -> usize {
        self.input[1] * self.image_outputs()
    }

    /// Input elements, `C_in·N·H·W`.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Kernel elements, `C_out·C_in·k_h·k_w`.
    pub fn kernel_len(&self) -> usize {
        self.channels_out * self.patch_rows()
    }

    /// Output elements, `C_out·N·H_out·W_out`.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_the_padded_input() {
        let geometry = ConvGeometry {
            input: [3, 2, 7, 5],
            channels_out: 4,
            kernel: [3, 2],
            stride: [2, 3],
            padding: [1, 0, 2, 1],
        };
        assert_eq!(geometry.padded_size(), [10, 6]);
        assert_eq!(geometry.output_size(), Some([4, 2]));
        assert_eq!(geometry.output_shape(), [4, 2, 4, 2]);
        assert_eq!((geometry.patch_rows(), geometry.outputs()), (18, 16));
        assert_eq!(
            ConvGeometry::new([3, 2, 7, 5], [4, 3, 3, 2], [2, 3], [1, 0, 2, 1]),
            Ok(geometry)
        );
        let mismatch = ConvGeometry::new([3, 2, 7, 5], [4, 2, 3, 2], [2, 3], [1, 0, 2, 1]);
        assert_eq!(mismatch, Err("input has 3 channels, the kernel 2".into()));
        let unfit = ConvGeometry::new([3, 2, 7, 5], [4, 3, 11, 2], [2, 3], [1, 0, 2, 1]);
        assert!(
            unfit
                .unwrap_err()
                .contains("does not fit the padded input [10, 6]")
        );
        let too_large = ConvGeometry {
            kernel: [11, 2],
            ..geometry
        };
        // Output (1, 0) through tap (0, 1): row 2·1 + 0 − 1, column 3·0 + 1 − 0.
        assert_eq!(geometry.reads([1, 0], [0, 1]), Some([1, 1]));
        // Row 2·0 + 0 − 1 < 0: the top padding.
        assert_eq!(geometry.reads([0, 1], [0, 1]), None);
        assert_eq!(
            geometry.reads([3, 1], [2, 1]),
            None,
            "row 6 + 2 − 1 = 7 ≥ 7"
        );
        assert_eq!(geometry.reads([3, 1], [1, 1]), Some([6, 4]));
        assert_eq!(too_large.output_size(), None);
        let zero_stride = ConvGeometry {
            stride: [0, 1],
            ..geometry
        };
        assert_eq!(zero_stride.output_size(), None);
    }
}
