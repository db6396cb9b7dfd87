//! A kernel's Grad Mult stored per output channel and tap instead of per weight.
//!
//! A CSLA conv's mult does not depend on the input channel, except on the identity diagonal:
//!
//! ```text
//! M[c, d, h, w] = α_c^p + Σ_b [(h, w) in branch b's window] β_{b,c}^p   (+ 1 where d = c mod C_in/g
//!                                                                        and (h, w) is the centre)
//! ```
//!
//! so `M` is a table `base[c, h, w]` plus at most one exception per output channel. Stored so,
//! B1's mults take 36 KiB instead of 190 MiB. [`FactoredMult::compress`] finds this form in any
//! dense `f32` kernel mult, comparing values bit for bit, so `g ⊙ M` computed from it
//! ([`FactoredMult::apply_in_place`]) is the dense product to the last bit: every element is
//! multiplied once, by the same `f32`.

/// `M[c, d, t] = base[c, t]` (`t` the tap `h·k + w`) except at a few flat indices.
#[derive(Debug, Clone, PartialEq)]
pub struct FactoredMult {
    /// `C_out`.
    out: usize,
    /// `C_in / g`.
    per_group: usize,
    /// `k·k`.
    taps: usize,
    /// `[C_out, k·k]`, row-major.
    base: Vec<f32>,
    /// `(flat index into [C_out, C_in/g, k, k], value)`, ascending.
    exceptions: Vec<(usize, f32)>,
}

impl FactoredMult {
    /// The factored form of a dense `f32` mult of shape `[C_out, C_in/g, k, k]` (row-major
    /// `values`), if it has one that saves memory: at least three input channels per group, and
    /// no more exceptions than output channels.
    pub fn compress(values: &[f32], shape: &[usize]) -> Option<Self> {
        let &[out, per_group, kh, kw] = shape else {
            return None;
        };
        let taps = kh * kw;
        if per_group < 3 || values.len() != out * per_group * taps || taps == 0 {
            return None;
        }
        let mut base = Vec::with_capacity(out * taps);
        let mut exceptions = Vec::new();
        for (c, slices) in values.chunks_exact(per_group * taps).enumerate() {
            let row = base.len();
            base.extend(
                (0..taps).map(|t| majority(slices[t], slices[taps + t], slices[2 * taps + t])),
            );
            for (i, &v) in slices.iter().enumerate() {
                if v.to_bits() != base[row + i % taps].to_bits() {
                    exceptions.push((c * per_group * taps + i, v));
                    if exceptions.len() > out {
                        return None;
                    }
                }
            }
        }
        Some(Self {
            out,
            per_group,
            taps,
            base,
            exceptions,
        })
    }

    /// `grads ⊙ M` in place (`grads` row-major, of the mult's shape).
    ///
    /// # Panics
    /// If `grads` has another length than the mult.
    pub fn apply_in_place(&self, grads: &mut [f32]) {
        assert_eq!(
            grads.len(),
            self.len(),
            "Grad Mult and gradient sizes differ"
        );
        let originals: Vec<f32> = self.exceptions.iter().map(|&(i, _)| grads[i]).collect();
        let kernel = self.per_group * self.taps;
        for (c, channel) in grads.chunks_exact_mut(kernel).enumerate() {
            let row = &self.base[c * self.taps..(c + 1) * self.taps];
            for slice in channel.chunks_exact_mut(self.taps) {
                for (g, &m) in slice.iter_mut().zip(row) {
                    *g *= m;
                }
            }
        }
        for (&(i, m), g) in self.exceptions.iter().zip(originals) {
            grads[i] = g * m;
        }
    }

    /// The number of weights the mult covers.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.out * self.per_group * self.taps
    }

    /// The dense values, row-major.
    pub fn expand(&self) -> Vec<f32> {
        let mut values = vec![1.0f32; self.len()];
        self.apply_in_place(&mut values);
        values
    }

    /// The index of the first value that is not finite, in row-major order.
    pub fn first_non_finite(&self) -> Option<usize> {
        let base = (0..self.len()).find(|&i| {
            let (c, t) = (i / (self.per_group * self.taps), i % self.taps);
            !self.base[c * self.taps + t].is_finite()
                && !self.exceptions.iter().any(|&(j, _)| j == i)
        });
        let exception = self
            .exceptions
            .iter()
            .find(|(_, v)| !v.is_finite())
            .map(|&(i, _)| i);
        match (base, exception) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The value at least two of three share (bit for bit), else the first.
fn majority(a: f32, b: f32, c: f32) -> f32 {
    match (a.to_bits(), b.to_bits(), c.to_bits()) {
        (x, y, _) if x == y => a,
        (x, _, z) if x == z => a,
        (_, y, z) if y == z => b,
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSLA-shaped mult: `α²` on edges, `α² + β²` at the centre, `+1` on the diagonal centre.
    fn csla_mult(out: usize, per_group: usize) -> Vec<f32> {
        let mut values = Vec::new();
        for c in 0..out {
            let (a, b) = (0.5 + c as f32 * 0.1, -0.3 + c as f32 * 0.05);
            for d in 0..per_group {
                for t in 0..9 {
                    let mut m = a * a;
                    if t == 4 {
                        m += b * b;
                        if d == c % per_group {
                            m += 1.0;
                        }
                    }
                    values.push(m);
                }
            }
        }
        values
    }

    #[test]
    fn a_csla_mult_compresses_and_applies_bit_for_bit() {
        for (out, per_group) in [(6, 4), (4, 4), (8, 3), (3, 5)] {
            let dense = csla_mult(out, per_group);
            let factored = FactoredMult::compress(&dense, &[out, per_group, 3, 3]).unwrap();
            assert_eq!(
                factored.exceptions.len(),
                out,
                "one diagonal entry per channel"
            );
            assert_eq!(factored.expand(), dense);
            let grads: Vec<f32> = (0..dense.len()).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut ours = grads.clone();
            factored.apply_in_place(&mut ours);
            let expected: Vec<u32> = grads
                .iter()
                .zip(&dense)
                .map(|(g, m)| (g * m).to_bits())
                .collect();
            assert_eq!(
                ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected
            );
        }
    }

    #[test]
    fn mults_without_the_structure_stay_dense() {
        // Two input channels per group: which one is the exception is ambiguous.
        assert!(FactoredMult::compress(&csla_mult(4, 2), &[4, 2, 3, 3]).is_none());
        // Values that change with the input channel everywhere.
        let varying: Vec<f32> = (0..4 * 4 * 9).map(|i| i as f32).collect();
        assert!(FactoredMult::compress(&varying, &[4, 4, 3, 3]).is_none());
        // Not a kernel.
        assert!(FactoredMult::compress(&[1.0; 12], &[3, 4]).is_none());
    }

    #[test]
    fn a_non_finite_value_is_found_where_it_is() {
        let mut dense = csla_mult(4, 4);
        dense[4 * 9 + 9 + 4] = f32::NAN; // channel 1, its diagonal centre: an exception
        let factored = FactoredMult::compress(&dense, &[4, 4, 3, 3]).unwrap();
        assert_eq!(factored.first_non_finite(), Some(4 * 9 + 9 + 4));
        // And where the shared table holds it (all input channels, one tap).
        let mut dense = csla_mult(4, 4);
        for d in 0..4 {
            dense[2 * 36 + d * 9] = f32::INFINITY;
        }
        let factored = FactoredMult::compress(&dense, &[4, 4, 3, 3]).unwrap();
        assert_eq!(factored.first_non_finite(), Some(2 * 36));
        assert_eq!(
            FactoredMult::compress(&csla_mult(4, 4), &[4, 4, 3, 3])
                .unwrap()
                .first_non_finite(),
            None
        );
    }
}
