//! Where each tap of the kernel reads, and the patch rows gathered from it and scattered back.
//!
//! Output pixel `(n, i, j)` reads, through tap `(u, v)`, input pixel
//! `(n, s_h·i + u − top, s_w·j + v − left)` or the padding ([`ConvGeometry::reads`]). Two ways:
//!
//! * **Shifted** (stride 1, an output the size of the input: "same" padding). Output pixel `k` of
//!   a tile's images reads input pixel `k + (u − top)·W + (v − left)` wherever it reads any, so a
//!   tap's patch row is one shifted copy of the tile's pixels, after which a per-image mask
//!   (all bits set where the tap reads the input, none where it reads the padding) is ANDed in.
//!   Both passes run over contiguous memory (vectorised), instead of one load per entry through
//!   an index.
//! * **Indexed** (any other geometry): a table of the input index each entry reads, `u32::MAX`
//!   for the padding, built once per call for the longest tile.

use core::ops::Range;

use super::matrix::SharedMut;
use crate::ConvGeometry;

/// How one convolution's patch rows are read from its input.
pub(super) struct Taps {
    reads: Reads,
    taps: usize,
    /// Images in the batch (channels are `batch` images apart).
    batch: usize,
    image_pixels: usize,
    image_outputs: usize,
}

enum Reads {
    Shifted {
        /// Per tap, `(u − top)·W + (v − left)`.
        shifts: Vec<isize>,
        /// `[k_h·k_w, H·W]`: all bits where the tap reads the input, none where the padding.
        masks: Vec<u32>,
    },
    Indexed {
        /// `[k_h·k_w, tile images · H_out·W_out]`: the input pixel's index within the tile's
        /// images of one channel, or `u32::MAX` for the padding.
        indices: Vec<u32>,
        /// Columns of the longest tile.
        columns: usize,
    },
}

impl Taps {
    /// The reads of `geometry`, for tiles of at most `tile_images` images.
    pub(super) fn of(geometry: &ConvGeometry, tile_images: usize) -> Self {
        let [_, batch, height, width] = geometry.input;
        let output = geometry.output_size().expect("valid convolution geometry");
        let shifted = geometry.stride == [1, 1] && output == [height, width];
        Self {
            reads: match shifted {
                true => shifted_reads(geometry),
                false => indexed_reads(geometry, tile_images),
            },
            taps: geometry.taps(),
            batch,
            image_pixels: height * width,
            image_outputs: output[0] * output[1],
        }
    }

    /// Where the images of a tile lie in channel `c` of `[C_in, N, H, W]`.
    fn slab(&self, channel: usize, images: &Range<usize>) -> Range<usize> {
        let start = (channel * self.batch + images.start) * self.image_pixels;
        start..start + images.len() * self.image_pixels
    }

    /// `patches[(c, u, v), (n − n₀, i, j)] = x[c, n, s_h·i + u − top, s_w·j + v − left]`, zero in
    /// the padding, for the images `n₀..n₁` of `x` `[C_in, N, H, W]`.
    pub(super) fn gather(&self, x: &[f32], images: Range<usize>, patches: &mut [f32]) {
        let columns = images.len() * self.image_outputs;
        for (r, row) in patches.chunks_exact_mut(columns).enumerate() {
            let (channel, tap) = (r / self.taps, r % self.taps);
            let slab = &x[self.slab(channel, &images)];
            match &self.reads {
                Reads::Shifted { shifts, masks } => {
                    let (to, from) = shifted_ranges(row.len(), shifts[tap]);
                    row[..to.start].fill(0.0);
                    row[to.end..].fill(0.0);
                    row[to].copy_from_slice(&slab[from]);
                    apply_mask(row, self.mask(masks, tap));
                }
                Reads::Indexed {
                    indices,
                    columns: longest,
                } => {
                    let indices = &indices[tap * longest..][..columns];
                    row.iter_mut()
                        .zip(indices)
                        .for_each(|(p, &i)| *p = slab.get(i as usize).copied().unwrap_or(0.0));
                }
            }
        }
    }

    /// The adjoint of [`gather`](Self::gather): adds every patch entry onto the input pixel it
    /// was read from, for the images `n₀..n₁` of `dx` `[C_in, N, H, W]`. Entries that read the
    /// padding may be zeroed in `patch_grad` on the way.
    ///
    /// # Safety
    /// `dx` points to the whole input gradient, and no other thread accesses these images'
    /// pixels.
    pub(super) unsafe fn scatter(
        &self,
        patch_grad: &mut [f32],
        images: Range<usize>,
        dx: SharedMut,
    ) {
        let columns = images.len() * self.image_outputs;
        for (r, row) in patch_grad.chunks_exact_mut(columns).enumerate() {
            let (channel, tap) = (r / self.taps, r % self.taps);
            let slab = self.slab(channel, &images);
            // SAFETY: these images of `channel` lie within `dx` and are this tile's (the
            // caller's guarantee).
            let slab =
                unsafe { core::slice::from_raw_parts_mut(dx.offset(slab.start), slab.len()) };
            match &self.reads {
                Reads::Shifted { shifts, masks } => {
                    apply_mask(row, self.mask(masks, tap));
                    let (to, from) = shifted_ranges(row.len(), shifts[tap]);
                    slab[from]
                        .iter_mut()
                        .zip(&row[to])
                        .for_each(|(x, g)| *x += g);
                }
                Reads::Indexed {
                    indices,
                    columns: longest,
                } => {
                    let indices = &indices[tap * longest..][..columns];
                    for (g, &i) in row.iter().zip(indices) {
                        if let Some(x) = slab.get_mut(i as usize) {
                            *x += g;
                        }
                    }
                }
            }
        }
    }

    fn mask<'a>(&self, masks: &'a [u32], tap: usize) -> &'a [u32] {
        &masks[tap * self.image_outputs..][..self.image_outputs]
    }
}

/// The shifted reads of a stride-1 "same" convolution.
fn shifted_reads(geometry: &ConvGeometry) -> Reads {
    let [_, _, height, width] = geometry.input;
    let [top, left, _, _] = geometry.padding;
    let shifts = grid(geometry.kernel)
        .map(|[u, v]| (u as isize - top as isize) * width as isize + v as isize - left as isize)
        .collect();
    let masks = grid(geometry.kernel)
        .flat_map(|tap| grid([height, width]).map(move |pixel| (pixel, tap)))
        .map(|(pixel, tap)| match geometry.reads(pixel, tap) {
            Some(_) => u32::MAX,
            None => 0,
        })
        .collect();
    Reads::Shifted { shifts, masks }
}

/// The index table of any geometry, for tiles of at most `tile_images` images.
fn indexed_reads(geometry: &ConvGeometry, tile_images: usize) -> Reads {
    let [_, _, height, width] = geometry.input;
    let output = geometry.output_size().expect("valid convolution geometry");
    assert!(
        tile_images * height * width < u32::MAX as usize,
        "convolution tile too large for 32-bit indices"
    );
    let reads = |n: usize, [i, j]: [usize; 2], tap: [usize; 2]| {
        let [h, w] = geometry.reads([i, j], tap)?;
        Some(((n * height + h) * width + w) as u32)
    };
    let columns = tile_images * output[0] * output[1];
    let mut indices = Vec::with_capacity(geometry.taps() * columns);
    for tap in grid(geometry.kernel) {
        for n in 0..tile_images {
            for pixel in grid(output) {
                indices.push(reads(n, pixel, tap).unwrap_or(u32::MAX));
            }
        }
    }
    Reads::Indexed { indices, columns }
}

/// Every position `[i, j]` of a `[rows, cols]` grid, row by row (kernel taps, pixels).
fn grid([rows, cols]: [usize; 2]) -> impl Iterator<Item = [usize; 2]> + Clone {
    (0..rows).flat_map(move |i| (0..cols).map(move |j| [i, j]))
}

/// `row &= mask`, bit for bit, image by image (`mask` one image long): entries whose mask is
/// zero become `+0.0`, the others keep their value (NaN and infinity included).
fn apply_mask(row: &mut [f32], mask: &[u32]) {
    for image in row.chunks_exact_mut(mask.len()) {
        image
            .iter_mut()
            .zip(mask)
            .for_each(|(x, &m)| *x = f32::from_bits(x.to_bits() & m));
    }
}

/// For `row[k] = slab[k + shift]` over `len` positions of each: the positions `k` whose
/// `k + shift` lies in `[0, len)`, and those `k + shift`.
fn shifted_ranges(len: usize, shift: isize) -> (Range<usize>, Range<usize>) {
    let offset = shift.unsigned_abs().min(len);
    match shift >= 0 {
        true => (0..len - offset, offset..len),
        false => (offset..len, 0..len - offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_ranges_stay_inside_both_sides() {
        assert_eq!(shifted_ranges(10, 3), (0..7, 3..10));
        assert_eq!(shifted_ranges(10, -4), (4..10, 0..6));
        assert_eq!(shifted_ranges(10, 0), (0..10, 0..10));
        assert_eq!(shifted_ranges(3, -7), (3..3, 0..0));
    }

    #[test]
    fn a_mask_zeroes_only_where_it_is_clear() {
        let mut row = [1.5, f32::NAN, -2.0, f32::INFINITY, 3.0, -0.5];
        apply_mask(&mut row, &[u32::MAX, 0, u32::MAX]);
        let bits = row.map(f32::to_bits);
        let expected = [1.5, 0.0, -2.0, f32::INFINITY, 0.0, -0.5].map(f32::to_bits);
        assert_eq!(bits, expected);
    }

    /// A 3×3 kernel with padding 1 on a 3×4 map: the corner tap `(0, 0)` shifts by one row and
    /// one column back and reads neither the first row nor the first column.
    #[test]
    fn the_shifted_reads_of_a_corner_tap() {
        let geometry = ConvGeometry {
            input: [1, 2, 3, 4],
            channels_out: 1,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
        };
        let Reads::Shifted { shifts, masks } = Taps::of(&geometry, 2).reads else {
            panic!("stride 1, same size: shifted");
        };
        assert_eq!((shifts[0], shifts[4], shifts[8]), (-5, 0, 5));
        let corner: Vec<bool> = masks[..12].iter().map(|&m| m != 0).collect();
        let expected = [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1].map(|b| b == 1);
        assert_eq!(corner, expected);
    }
}
