//! The convolution and its two gradients on `f32` host memory, in tiles of whole images.
//!
//! With `P` the patch matrix `[C_in·k_h·k_w, N·H_out·W_out]` (rows `(c, u, v)`, the kernel's
//! order), `W` the kernel `[C_out, C_in·k_h·k_w]` and `Y` the output `[C_out, N·H_out·W_out]`:
//!
//! * forward `Y = W · P`,
//! * kernel gradient `∂W = ∂Y · Pᵀ`,
//! * input gradient `∂X = col2im(Wᵀ · ∂Y)`, the adjoint of the gather that builds `P`.
//!
//! `P` is never held whole: each tile of whole images gathers its own columns of `P` into a
//! buffer of its thread (at most 512 KiB where an image fits, so the product reads it from
//! cache), multiplies, and drops it; the backward pass gathers again instead of keeping the
//! forward's patches, and computes both gradients in one pass over the tiles. Tiles run in
//! parallel (rayon); as a tile holds whole images, the pixels its col2im writes belong to no
//! other tile. A batch of small maps (deep layers) is one tile, whose products use every thread
//! instead. Each product is handed to `gemm` in the orientation that puts the longer side along
//! the micro-kernel's rows (see [`product`]).

use core::ops::Range;

use rayon::prelude::*;

use super::matrix::{Mat, MatMut, PARALLEL_PRODUCT, SharedMut, product};
use super::taps::Taps;
use crate::ConvGeometry;

/// The floats one tile's patch buffer holds at most (512 KiB, so that the product finds the
/// patches its tile just gathered still in cache), unless one image needs more.
const TILE_FLOATS: usize = 1 << 17;

/// Tiles per thread at least, where the batch allows, so that threads finish together.
const TILES_PER_THREAD: usize = 4;

/// `Y` `[C_out, N, H_out, W_out]` for `x` `[C_in, N, H, W]` and `weight` `[C_out, C_in, k_h, k_w]`,
/// both contiguous.
pub fn forward(x: &[f32], weight: &[f32], geometry: &ConvGeometry) -> Vec<f32> {
    check_lengths(geometry, x.len(), weight.len(), None);
    let shape = TileShape::of(geometry);
    if shape.rows == 0 {
        return vec![0.0; geometry.output_len()];
    }
    // Written by the tiles' products, not zero-filled first.
    let mut y = Vec::with_capacity(geometry.output_len());
    let y_ptr = SharedMut(y.as_mut_ptr());
    let tiles = Tiles::of(geometry);
    let taps = Taps::of(geometry, tiles.step);
    tiles.par_iter().for_each_init(Vec::new, |patches, images| {
        let columns = images.len() * shape.image_outputs;
        let patches = resized(patches, shape.rows * columns);
        taps.gather(x, images.clone(), patches);
        // Y[:, tile] = W · P_tile.
        let dst = y_ptr.offset(images.start * shape.image_outputs);
        let dims = [shape.channels_out, columns, shape.rows];
        // SAFETY: the tile's columns of `y` are written by this tile only; every operand lies
        // within its buffer for the strides given.
        unsafe {
            product(
                dims,
                tiles.parallelism(dims),
                MatMut::rows(dst, shape.outputs),
                Mat::rows(weight.as_ptr(), shape.rows),
                Mat::rows(patches.as_ptr(), columns),
                false,
            );
        }
    });
    // SAFETY: every column of `y` belongs to one tile, whose product (`k` = `rows` > 0, not
    // accumulating) wrote all `C_out` rows of it.
    unsafe { y.set_len(geometry.output_len()) };
    y
}

/// Which gradients a backward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// `∂W`.
    pub weight: bool,
    /// `∂X`.
    pub input: bool,
}

/// `(∂W, ∂X)` (those `wanted`) for `x` `[C_in, N, H, W]`, `weight` `[C_out, C_in, k_h, k_w]` and
/// `grad` `∂Y` `[C_out, N, H_out, W_out]`, in one pass over the tiles: each tile gathers its
/// patches for `∂W += ∂Y_tile · P_tileᵀ`, then computes `∂P_tile = Wᵀ · ∂Y_tile` into the same
/// buffer and adds it onto `∂X` (col2im), while its slice of `∂Y` is still in cache.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    geometry: &ConvGeometry,
    wanted: Wanted,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    check_lengths(geometry, x.len(), weight.len(), Some(grad.len()));
    let shape = TileShape::of(geometry);
    let tiles = Tiles::of(geometry);
    let taps = Taps::of(geometry, tiles.step);
    let x = wanted.weight.then_some(x);
    let mut dx = wanted.input.then(|| vec![0.0f32; geometry.input_len()]);
    let dx_ptr = dx.as_mut().map(|dx| SharedMut(dx.as_mut_ptr()));
    // One kernel-gradient sum per thread, each over its run of tiles; then the sums added.
    let sums: Vec<Option<Vec<f32>>> = tiles
        .per_thread()
        .into_par_iter()
        .map(|run| {
            let mut dw = x.as_ref().map(|_| vec![0.0f32; geometry.kernel_len()]);
            let mut buffer = Vec::new();
            for images in run {
                let columns = images.len() * shape.image_outputs;
                let grad_tile = grad[images.start * shape.image_outputs..].as_ptr();
                let tile = resized(&mut buffer, shape.rows * columns);
                if let (Some(x), Some(dw)) = (&x, &mut dw) {
                    taps.gather(x, images.clone(), tile);
                    let dims = [shape.channels_out, shape.rows, columns];
                    // ∂W += ∂Y_tile · P_tileᵀ.
                    // SAFETY: `dw` is this run's own; operands lie within their buffers.
                    unsafe {
                        product(
                            dims,
                            tiles.parallelism(dims),
                            MatMut::rows(dw.as_mut_ptr(), shape.rows),
                            Mat::rows(grad_tile, shape.outputs),
                            Mat::columns(tile.as_ptr(), columns),
                            true,
                        );
                    }
                }
                if let Some(dx) = dx_ptr {
                    let dims = [shape.rows, columns, shape.channels_out];
                    // ∂P_tile = Wᵀ · ∂Y_tile, then added onto the tile's pixels of ∂X.
                    // SAFETY: `tile` is this run's own; operands lie within their buffers; a
                    // tile's images are its own, so no other tile writes their pixels.
                    unsafe {
                        product(
                            dims,
                            tiles.parallelism(dims),
                            MatMut::rows(tile.as_mut_ptr(), columns),
                            Mat::columns(weight.as_ptr(), shape.rows),
                            Mat::rows(grad_tile, shape.outputs),
                            false,
                        );
                        taps.scatter(tile, images.clone(), dx);
                    }
                }
            }
            dw
        })
        .collect();
    let dw = x.map(|_| sum_all(sums.into_iter().flatten(), geometry.kernel_len()));
    (dw, dx)
}

/// The element-wise sum of `parts`, each `len` long (zeros when there are none).
fn sum_all(parts: impl Iterator<Item = Vec<f32>>, len: usize) -> Vec<f32> {
    parts
        .reduce(|mut total, part| {
            total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; len])
}

/// The sizes every tile shares.
struct TileShape {
    rows: usize,
    channels_out: usize,
    image_outputs: usize,
    outputs: usize,
}

impl TileShape {
    fn of(geometry: &ConvGeometry) -> Self {
        let image_outputs = geometry.image_outputs();
        Self {
            rows: geometry.patch_rows(),
            channels_out: geometry.channels_out,
            image_outputs,
            outputs: image_outputs * geometry.input[1],
        }
    }
}

pub(super) fn check_lengths(geometry: &ConvGeometry, x: usize, weight: usize, grad: Option<usize>) {
    assert_eq!(x, geometry.input_len(), "convolution input length");
    assert_eq!(weight, geometry.kernel_len(), "convolution kernel length");
    if let Some(grad) = grad {
        assert_eq!(
            grad,
            geometry.output_len(),
            "convolution output-gradient length"
        );
    }
}

/// Columns a tile has at least, where the batch has them: below this, a product costs more in
/// packing the kernel than in multiplying.
const MIN_TILE_COLUMNS: usize = 512;

/// How a convolution's batch is cut: runs of whole images, each with at most [`TILE_FLOATS`] of
/// patches (at least one image), at least [`MIN_TILE_COLUMNS`] output pixels, and else
/// [`TILES_PER_THREAD`] tiles per thread where the batch has the images.
struct Tiles {
    ranges: Vec<Range<usize>>,
    /// Images of the longest tile.
    step: usize,
}

impl Tiles {
    fn of(geometry: &ConvGeometry) -> Self {
        let batch = geometry.input[1];
        let image_outputs = geometry.image_outputs().max(1);
        let by_size = (TILE_FLOATS / (geometry.patch_rows() * image_outputs).max(1)).max(1);
        let by_threads = batch.div_ceil(TILES_PER_THREAD * rayon::current_num_threads());
        let by_columns = MIN_TILE_COLUMNS.div_ceil(image_outputs);
        let step = by_threads.max(by_columns).min(by_size).min(batch).max(1);
        let ranges = (0..batch.div_ceil(step))
            .map(|t| t * step..((t + 1) * step).min(batch))
            .collect();
        Self { ranges, step }
    }

    /// How each tile's products use threads: all of them for a batch in one tile (when the
    /// product is large enough to gain), none when the tiles run in parallel.
    fn parallelism(&self, dims: [usize; 3]) -> gemm::Parallelism {
        if self.ranges.len() == 1 && dims.iter().product::<usize>() >= PARALLEL_PRODUCT {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        }
    }

    fn par_iter(&self) -> impl IndexedParallelIterator<Item = Range<usize>> + '_ {
        self.ranges.par_iter().cloned()
    }

    /// The tiles in one run per thread.
    fn per_thread(&self) -> Vec<&[Range<usize>]> {
        let per = self
            .ranges
            .len()
            .div_ceil(rayon::current_num_threads())
            .max(1);
        self.ranges.chunks(per).collect()
    }
}

fn resized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}
