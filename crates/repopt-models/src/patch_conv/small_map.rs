//! Convolutions whose output maps have a few pixels (the deep stages of a small input), as sums
//! of matrix products over the taps that read the input, with no patch matrix.
//!
//! With `X_q` `[C_in, N]` input pixel `q` of every image, `W_t` `[C_out, C_in]` the kernel's tap
//! `t`, `Y_p` `[C_out, N]` output pixel `p`, and the pairs `(p, t)` whose tap reads an input pixel
//! `q(p, t)` rather than the padding:
//!
//! * forward `Y_pᵀ = Σ_t X_q(p,t)ᵀ · W_tᵀ`,
//! * input gradient `∂X_qᵀ = Σ_{(p,t): q(p,t) = q} ∂Y_pᵀ · W_t`,
//! * kernel gradient `∂W_tᵀ = Σ_p X_q(p,t) · ∂Y_pᵀ`.
//!
//! On a 2×2 map with a 3×3 kernel and padding 1, 16 of the 36 patch entries per channel and image
//! read the input: the products skip the other 20, which the patch matrix multiplies as zeros, and
//! nothing is gathered or scattered. Each sum writes its own pixel or tap, so the sums run in
//! parallel (rayon).
//!
//! `gemm` copies a left operand whose rows are not adjacent into micro-panels element by
//! element before multiplying. In `[C, N, H, W]` a pixel's `N` images are `H·W` apart, and each
//! pixel takes part in up to `k_h·k_w` products, so those copies cost about half as much as the
//! products. The products are therefore written with the batch along `m` and the operands
//! transposed once per call (each read and written once, in cache-sized tiles) so that every
//! left operand and destination has adjacent rows: `X`, `Y`, `∂Y` and `∂X` batch-last
//! (`[C, H·W, N]`), and `X` channels-last (`[N·H·W, C_in]`) for the kernel gradient, which
//! sums over the batch; the kernel is read in place, as the right operand. On the ¼-width A0
//! at 32 px this trains 1.06–1.11× faster at batches 32–128 (docs/benchmarks.md).

use rayon::prelude::*;

use super::kernels::{Wanted, check_lengths};
use super::matrix::{Mat, MatMut, PARALLEL_PRODUCT, SharedMut, product_as_given};
use super::transpose::transposed;
use crate::ConvGeometry;

/// Output pixels per image up to which a convolution runs here.
pub const MAX_OUTPUTS: usize = 4;

/// Whether `geometry` runs here: at most [`MAX_OUTPUTS`] output pixels per image and a kernel of
/// more than one tap (a 1×1 kernel reads no padding to skip).
pub fn applies(geometry: &ConvGeometry) -> bool {
    geometry.output_size().is_some()
        && geometry.image_outputs() <= MAX_OUTPUTS
        && geometry.taps() > 1
}

/// `Y` `[C_out, N, H_out, W_out]` for `x` `[C_in, N, H, W]` and `weight` `[C_out, C_in, k_h, k_w]`,
/// both contiguous.
pub fn forward(x: &[f32], weight: &[f32], geometry: &ConvGeometry) -> Vec<f32> {
    check_lengths(geometry, x.len(), weight.len(), None);
    let s = Sizes::of(geometry);
    let pairs = pairs(geometry);
    let xt = transposed(x, [s.channels_in, s.batch, s.pixels]);
    // [C_out, H_out·W_out, N].
    let mut yt = vec![0.0f32; geometry.output_len()];
    let yt_ptr = SharedMut(yt.as_mut_ptr());
    let dims = [s.batch, s.channels_out, s.channels_in];
    let parallelism = s.parallelism(s.outputs, dims);
    (0..s.outputs).into_par_iter().for_each(|p| {
        for pair in pairs.iter().filter(|pair| pair.output == p) {
            // Y_pᵀ += X_qᵀ · W_tᵀ.
            // SAFETY: output pixel `p` is this task's only; every view lies within its buffer.
            unsafe {
                product_as_given(
                    dims,
                    parallelism,
                    MatMut::strided(yt_ptr.offset(p * s.batch), 1, s.outputs * s.batch),
                    Mat::strided(xt[pair.input * s.batch..].as_ptr(), 1, s.pixels * s.batch),
                    s.tap(weight, pair.tap).transposed(),
                    true,
                );
            }
        }
    });
    transposed(&yt, [s.channels_out, s.outputs, s.batch])
}

/// `(∂W, ∂X)` (those `wanted`) for `x` `[C_in, N, H, W]`, `weight` `[C_out, C_in, k_h, k_w]` and
/// `grad` `∂Y` `[C_out, N, H_out, W_out]`.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    geometry: &ConvGeometry,
    wanted: Wanted,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    check_lengths(geometry, x.len(), weight.len(), Some(grad.len()));
    let s = Sizes::of(geometry);
    let pairs = pairs(geometry);
    let gt = transposed(grad, [s.channels_out, s.batch, s.outputs]);
    let dw = wanted.weight.then(|| kernel_gradient(x, &gt, &s, &pairs));
    let dx = wanted
        .input
        .then(|| input_gradient(weight, &gt, &s, &pairs));
    (dw, dx)
}

/// `∂W` `[C_out, C_in, k_h, k_w]` from `x` `[C_in, N, H, W]` and `gt` (`∂Y` as
/// `[C_out, H_out·W_out, N]`).
fn kernel_gradient(x: &[f32], gt: &[f32], s: &Sizes, pairs: &[Pair]) -> Vec<f32> {
    // [N, H·W, C_in].
    let xc = transposed(x, [1, s.channels_in, s.batch * s.pixels]);
    // [k_h·k_w, C_out, C_in].
    let mut dwt = vec![0.0f32; s.taps * s.kernel_tap()];
    let dwt_ptr = SharedMut(dwt.as_mut_ptr());
    let dims = [s.channels_in, s.channels_out, s.batch];
    let parallelism = s.parallelism(s.taps, dims);
    (0..s.taps).into_par_iter().for_each(|t| {
        for pair in pairs.iter().filter(|pair| pair.tap == t) {
            // ∂W_tᵀ += X_q · ∂Y_pᵀ.
            // SAFETY: tap `t` of `dwt` is this task's only; every view lies within its buffer.
            unsafe {
                product_as_given(
                    dims,
                    parallelism,
                    MatMut::strided(dwt_ptr.offset(t * s.kernel_tap()), 1, s.channels_in),
                    Mat::strided(
                        xc[pair.input * s.channels_in..].as_ptr(),
                        1,
                        s.pixels * s.channels_in,
                    ),
                    Mat::strided(gt[pair.output * s.batch..].as_ptr(), 1, s.outputs * s.batch),
                    true,
                );
            }
        }
    });
    transposed(&dwt, [1, s.taps, s.kernel_tap()])
}

/// `∂X` `[C_in, N, H, W]` from the kernel and `gt` (`∂Y` as `[C_out, H_out·W_out, N]`).
fn input_gradient(weight: &[f32], gt: &[f32], s: &Sizes, pairs: &[Pair]) -> Vec<f32> {
    // [C_in, H·W, N].
    let mut dxt = vec![0.0f32; s.channels_in * s.pixels * s.batch];
    let dxt_ptr = SharedMut(dxt.as_mut_ptr());
    let dims = [s.batch, s.channels_in, s.channels_out];
    let parallelism = s.parallelism(s.pixels, dims);
    (0..s.pixels).into_par_iter().for_each(|q| {
        for pair in pairs.iter().filter(|pair| pair.input == q) {
            // ∂X_qᵀ += ∂Y_pᵀ · W_t.
            // SAFETY: input pixel `q` of `dxt` is this task's only; every view lies within its
            // buffer.
            unsafe {
                product_as_given(
                    dims,
                    parallelism,
                    MatMut::strided(dxt_ptr.offset(q * s.batch), 1, s.pixels * s.batch),
                    Mat::strided(gt[pair.output * s.batch..].as_ptr(), 1, s.outputs * s.batch),
                    s.tap(weight, pair.tap),
                    true,
                );
            }
        }
    });
    transposed(&dxt, [s.channels_in, s.pixels, s.batch])
}

/// Output pixel `p` reads input pixel `q` through tap `t` (indices within one image and the
/// kernel, row-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    output: usize,
    tap: usize,
    input: usize,
}

/// Every pair of output pixel and tap that reads the input.
fn pairs(geometry: &ConvGeometry) -> Vec<Pair> {
    let [_, _, _, width] = geometry.input;
    let [kernel_h, kernel_w] = geometry.kernel;
    let [out_h, out_w] = geometry.output_size().expect("valid convolution geometry");
    let outputs = (0..out_h).flat_map(|i| (0..out_w).map(move |j| [i, j]));
    outputs
        .flat_map(|o| (0..kernel_h).flat_map(move |u| (0..kernel_w).map(move |v| (o, [u, v]))))
        .filter_map(|([i, j], [u, v])| {
            let [h, w] = geometry.reads([i, j], [u, v])?;
            Some(Pair {
                output: i * out_w + j,
                tap: u * kernel_w + v,
                input: h * width + w,
            })
        })
        .collect()
}

/// The sizes of one convolution.
struct Sizes {
    channels_in: usize,
    channels_out: usize,
    batch: usize,
    taps: usize,
    /// Input pixels per image.
    pixels: usize,
    /// Output pixels per image.
    outputs: usize,
}

impl Sizes {
    fn of(geometry: &ConvGeometry) -> Self {
        Self {
            channels_in: geometry.input[0],
            channels_out: geometry.channels_out,
            batch: geometry.input[1],
            taps: geometry.taps(),
            pixels: geometry.image_pixels(),
            outputs: geometry.image_outputs(),
        }
    }

    /// `W_t` `[C_out, C_in]`, tap `t` of the kernel `[C_out, C_in, k_h, k_w]`.
    fn tap(&self, weight: &[f32], t: usize) -> Mat {
        Mat::strided(
            weight[t..].as_ptr(),
            self.channels_in * self.taps,
            self.taps,
        )
    }

    /// Entries of one tap of the kernel (`C_out·C_in`).
    fn kernel_tap(&self) -> usize {
        self.channels_out * self.channels_in
    }

    /// Threads inside each product: all of them when the sums are fewer than the threads and
    /// the product large enough to gain, else none (the sums run in parallel).
    fn parallelism(&self, sums: usize, dims: [usize; 3]) -> gemm::Parallelism {
        let few = sums < rayon::current_num_threads();
        match few && dims.iter().product::<usize>() >= PARALLEL_PRODUCT {
            true => gemm::Parallelism::Rayon(0),
            false => gemm::Parallelism::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(input: [usize; 4], kernel: usize, stride: usize) -> ConvGeometry {
        ConvGeometry {
            input,
            channels_out: 2,
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [1; 4],
        }
    }

    /// On a 2×2 map with a 3×3 kernel and padding 1 every output pixel reads all four input
    /// pixels, through the four taps of its corner of the kernel.
    #[test]
    fn a_2x2_map_pairs_every_output_with_every_input() {
        let pairs = pairs(&geometry([3, 1, 2, 2], 3, 1));
        assert_eq!(pairs.len(), 16);
        let of = |p| -> Vec<(usize, usize)> {
            pairs
                .iter()
                .filter(|pair| pair.output == p)
                .map(|pair| (pair.tap, pair.input))
                .collect()
        };
        assert_eq!(of(0), [(4, 0), (5, 1), (7, 2), (8, 3)]);
        assert_eq!(of(3), [(0, 0), (1, 1), (3, 2), (4, 3)]);
    }

    /// Stride 2 from 2×2 to 1×1 reads each input pixel once; a 1×1 map only through the centre.
    #[test]
    fn strided_and_single_pixel_maps_pair_only_real_pixels() {
        let strided = pairs(&geometry([3, 1, 2, 2], 3, 2));
        assert_eq!(
            strided.iter().map(|p| (p.tap, p.input)).collect::<Vec<_>>(),
            [(4, 0), (5, 1), (7, 2), (8, 3)]
        );
        let single = pairs(&geometry([3, 1, 1, 1], 3, 1));
        assert_eq!(
            single,
            [Pair {
                output: 0,
                tap: 4,
                input: 0
            }]
        );
    }

    #[test]
    fn only_small_maps_of_larger_kernels_apply() {
        assert!(applies(&geometry([3, 8, 2, 2], 3, 1)));
        assert!(applies(&geometry([3, 8, 4, 4], 3, 2)));
        assert!(!applies(&geometry([3, 8, 3, 3], 3, 1)));
        let one_by_one = ConvGeometry {
            padding: [0; 4],
            ..geometry([3, 8, 2, 2], 1, 1)
        };
        assert!(!applies(&one_by_one));
    }
}
