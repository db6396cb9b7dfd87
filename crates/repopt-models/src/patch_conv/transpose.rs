//! Batched matrix transposes, `[blocks, rows, cols] → [blocks, cols, rows]`, into a fresh buffer
//! written once (never zero-filled first).
//!
//! The small-map convolutions transpose between `[C, N, P]` and `[C, P, N]` with `P ≤ 4` pixels:
//! one side has at most four elements. Those shapes get kernels whose short side is a constant
//! (`[rows, C] → [C, rows]` splits `C` interleaved streams, its reverse interleaves them), which
//! the compiler unrolls and vectorises; other shapes go through square tiles that stay in cache
//! on both sides.

use core::mem::MaybeUninit;

/// Each of the `blocks` `[rows, cols]` matrices of `src` transposed to `[cols, rows]`.
pub(super) fn transposed(src: &[f32], [blocks, rows, cols]: [usize; 3]) -> Vec<f32> {
    assert_eq!(src.len(), blocks * rows * cols, "transposed: length");
    let mut out = Vec::with_capacity(src.len());
    let len = rows * cols;
    if len > 0 {
        for (from, to) in src
            .chunks_exact(len)
            .zip(out.spare_capacity_mut().chunks_exact_mut(len))
        {
            block(from, to, rows, cols);
        }
    }
    // SAFETY: every block, and so every element of the first `src.len()`, was written above.
    unsafe { out.set_len(src.len()) };
    out
}

/// One `[rows, cols]` block into `to` (`[cols, rows]`), every element written.
fn block(from: &[f32], to: &mut [MaybeUninit<f32>], rows: usize, cols: usize) {
    match (rows, cols) {
        (1, _) | (_, 1) => to.iter_mut().zip(from).for_each(|(t, &f)| _ = t.write(f)),
        (_, 2) => split::<2>(from, to, rows),
        (_, 3) => split::<3>(from, to, rows),
        (_, 4) => split::<4>(from, to, rows),
        (2, _) => interleave::<2>(from, to, cols),
        (3, _) => interleave::<3>(from, to, cols),
        (4, _) => interleave::<4>(from, to, cols),
        _ => tiled(from, to, rows, cols),
    }
}

/// `[rows, C] → [C, rows]`: stream `c` of the `C` interleaved ones to row `c`.
fn split<const C: usize>(from: &[f32], to: &mut [MaybeUninit<f32>], rows: usize) {
    let outs: [&mut [MaybeUninit<f32>]; C] = split_rows(to, rows);
    for (r, group) in from.chunks_exact(C).enumerate() {
        for c in 0..C {
            outs[c][r].write(group[c]);
        }
    }
}

/// `[R, cols] → [cols, R]`: the `R` rows interleaved.
fn interleave<const R: usize>(from: &[f32], to: &mut [MaybeUninit<f32>], cols: usize) {
    let ins: [&[f32]; R] = core::array::from_fn(|r| &from[r * cols..][..cols]);
    for (j, group) in to.chunks_exact_mut(R).enumerate() {
        for r in 0..R {
            group[r].write(ins[r][j]);
        }
    }
}

/// `C` disjoint rows of `rows` elements each.
fn split_rows<const C: usize>(
    to: &mut [MaybeUninit<f32>],
    rows: usize,
) -> [&mut [MaybeUninit<f32>]; C] {
    let mut rest = to;
    core::array::from_fn(|_| {
        let (row, tail) = core::mem::take(&mut rest).split_at_mut(rows);
        rest = tail;
        row
    })
}

/// Any shape, in square tiles.
fn tiled(from: &[f32], to: &mut [MaybeUninit<f32>], rows: usize, cols: usize) {
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                let row = &from[r * cols..][c0..(c0 + TILE).min(cols)];
                for (c, &v) in (c0..).zip(row) {
                    to[c * rows + r].write(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block transposed, for every kernel: narrow (split), wide (interleave), single rows
    /// and columns, and tiles (sides longer and shorter than a tile).
    #[test]
    fn transposed_swaps_rows_and_columns_of_every_block() {
        let shapes = [
            [2, 3, 4],
            [3, 37, 5],
            [1, 17, 33],
            [2, 130, 4],
            [3, 9, 2],
            [2, 7, 3],
            [2, 4, 130],
            [1, 2, 9],
            [3, 3, 5],
            [2, 1, 7],
            [2, 7, 1],
            [0, 4, 4],
            [2, 0, 3],
        ];
        for [blocks, rows, cols] in shapes {
            let src: Vec<f32> = (0..blocks * rows * cols).map(|v| v as f32).collect();
            let out = transposed(&src, [blocks, rows, cols]);
            assert_eq!(out.len(), src.len());
            for (b, r, c) in (0..blocks)
                .flat_map(|b| (0..rows).flat_map(move |r| (0..cols).map(move |c| (b, r, c))))
            {
                let block = b * rows * cols;
                assert_eq!(
                    out[block + c * rows + r],
                    src[block + r * cols + c],
                    "{blocks}x{rows}x{cols} at {b},{r},{c}"
                );
            }
        }
    }
}
