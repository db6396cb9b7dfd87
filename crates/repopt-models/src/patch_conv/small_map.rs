//! Convolutions whose output maps have a few pixels (the deep stages of a small input), as sums
//! of matrix products over the taps that read the input, with no patch matrix.
//!
//! With `X_q` `[C_in, N]` input pixel `q` of every image (a strided view of `[C_in, N, H, W]`),
//! `W_t` `[C_out, C_in]` the kernel's tap `t`, `Y_p` `[C_out, N]` output pixel `p`, and the pairs
//! `(p, t)` whose tap reads an input pixel `q(p, t)` rather than the padding:
//!
//! * forward `Y_p = Σ_t W_t · X_q(p,t)`,
//! * input gradient `∂X_q = Σ_{(p,t): q(p,t) = q} W_tᵀ · ∂Y_p`,
//! * kernel gradient `∂W_t = Σ_p ∂Y_p · X_q(p,t)ᵀ`.
//!
//! On a 2×2 map with a 3×3 kernel and padding 1, 16 of the 36 patch entries per channel and image
//! read the input: the products skip the other 20, which the patch matrix multiplies as zeros, and
//! nothing is gathered or scattered. Each sum writes its own pixel or tap, so the sums run in
//! parallel (rayon).

use rayon::prelude::*;

use super::kernels::{Wanted, check_lengths};
use super::matrix::{Mat, MatMut, PARALLEL_PRODUCT, SharedMut, product};
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
    let views = Views::of(geometry);
    let pairs = pairs(geometry);
    let mut y = vec![0.0f32; geometry.output_len()];
    let y_ptr = SharedMut(y.as_mut_ptr());
    let dims = [geometry.channels_out, views.batch, views.channels_in];
    let parallelism = views.parallelism(geometry.image_outputs(), dims);
    (0..geometry.image_outputs()).into_par_iter().for_each(|p| {
        for pair in pairs.iter().filter(|pair| pair.output == p) {
            // Y_p += W_t · X_q.
            // SAFETY: output pixel `p` is this task's only; every view lies within its buffer.
            unsafe {
                product(
                    dims,
                    parallelism,
                    views.output(p).of_mut(y_ptr.offset(0)),
                    views.tap(pair.tap).of(weight.as_ptr()),
                    views.input(pair.input).of(x.as_ptr()),
                    true,
                );
            }
        }
    });
    y
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
    let views = Views::of(geometry);
    let pairs = pairs(geometry);
    let [channels_in, batch, out] = [views.channels_in, views.batch, geometry.channels_out];
    let dw = wanted.weight.then(|| {
        let mut dw = vec![0.0f32; geometry.kernel_len()];
        let dw_ptr = SharedMut(dw.as_mut_ptr());
        let dims = [out, channels_in, batch];
        let parallelism = views.parallelism(geometry.taps(), dims);
        (0..geometry.taps()).into_par_iter().for_each(|t| {
            for pair in pairs.iter().filter(|pair| pair.tap == t) {
                // ∂W_t += ∂Y_p · X_qᵀ.
                // SAFETY: tap `t` of `dw` is this task's only; every view lies within its buffer.
                unsafe {
                    product(
                        dims,
                        parallelism,
                        views.tap(t).of_mut(dw_ptr.offset(0)),
                        views.output(pair.output).of(grad.as_ptr()),
                        views.input(pair.input).of(x.as_ptr()).transposed(),
                        true,
                    );
                }
            }
        });
        dw
    });
    let dx = wanted.input.then(|| {
        let mut dx = vec![0.0f32; geometry.input_len()];
        let dx_ptr = SharedMut(dx.as_mut_ptr());
        let dims = [channels_in, batch, out];
        let pixels = geometry.image_pixels();
        let parallelism = views.parallelism(pixels, dims);
        (0..pixels).into_par_iter().for_each(|q| {
            for pair in pairs.iter().filter(|pair| pair.input == q) {
                // ∂X_q += W_tᵀ · ∂Y_p.
                // SAFETY: input pixel `q` of `dx` is this task's only; every view lies within
                // its buffer.
                unsafe {
                    product(
                        dims,
                        parallelism,
                        views.input(q).of_mut(dx_ptr.offset(0)),
                        views.tap(pair.tap).of(weight.as_ptr()).transposed(),
                        views.output(pair.output).of(grad.as_ptr()),
                        true,
                    );
                }
            }
        });
        dx
    });
    (dw, dx)
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

/// Where one pixel of every image, or one tap of the kernel, lies in its buffer: a strided
/// matrix at `offset`.
#[derive(Clone, Copy)]
struct View {
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl View {
    fn of(self, buffer: *const f32) -> Mat {
        let ptr = buffer.wrapping_add(self.offset);
        Mat::strided(ptr, self.row_stride, self.col_stride)
    }

    fn of_mut(self, buffer: *mut f32) -> MatMut {
        let ptr = buffer.wrapping_add(self.offset);
        MatMut::strided(ptr, self.row_stride, self.col_stride)
    }
}

/// The views of one convolution's buffers.
struct Views {
    channels_in: usize,
    batch: usize,
    taps: usize,
    image_pixels: usize,
    image_outputs: usize,
}

impl Views {
    fn of(geometry: &ConvGeometry) -> Self {
        Self {
            channels_in: geometry.input[0],
            batch: geometry.input[1],
            taps: geometry.taps(),
            image_pixels: geometry.image_pixels(),
            image_outputs: geometry.image_outputs(),
        }
    }

    /// `X_q` `[C_in, N]` of `[C_in, N, H, W]` (and of `∂X`).
    fn input(&self, q: usize) -> View {
        let pixels = self.image_pixels;
        View {
            offset: q,
            row_stride: self.batch * pixels,
            col_stride: pixels,
        }
    }

    /// `Y_p` `[C_out, N]` of `[C_out, N, H_out, W_out]` (and of `∂Y`).
    fn output(&self, p: usize) -> View {
        let outputs = self.image_outputs;
        View {
            offset: p,
            row_stride: self.batch * outputs,
            col_stride: outputs,
        }
    }

    /// `W_t` `[C_out, C_in]` of `[C_out, C_in, k_h, k_w]` (and of `∂W`).
    fn tap(&self, t: usize) -> View {
        View {
            offset: t,
            row_stride: self.channels_in * self.taps,
            col_stride: self.taps,
        }
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
