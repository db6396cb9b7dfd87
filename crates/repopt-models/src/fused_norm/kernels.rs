//! Batch normalisation's training pass on host buffers laid out `[outer, C, inner]` (contiguous):
//! channel `c`'s values are the `outer` runs `x[(o·C + c)·inner ..][..inner]`.
//!
//! With `n = outer·inner` values per channel, `μ = Σx / n`, `σ² = Σ(x − μ)² / n` (biased, as
//! training normalises), `s = 1/√(σ² + ε)` and `x̂ = (x − μ)·s`:
//!
//! * forward `y = (x − μ)·γs + β`: two reading passes for the statistics, one writing pass;
//! * backward, from `∂y`: `∂β = Σ∂y`, `∂γ = Σ∂y·x̂`, and
//!   `∂x = γs·(∂y − ∂β/n − x̂·∂γ/n)`: one reading pass for both sums, one writing pass.
//!
//! Sums run in `f32` lanes over blocks of [`BLOCK`] values, each block's total added in `f64`, so
//! they vectorise and stay accurate on channels of millions of values. Channels run in parallel
//! (rayon) for the sums, runs of `inner` values for the writes, when the tensor has at least
//! [`PARALLEL_VALUES`] values and rayon more than one thread; else on the calling thread, which
//! spares a small tensor the hand-over to the pool.

use rayon::prelude::*;

/// Values summed in `f32` lanes before their total joins the `f64` sum.
const BLOCK: usize = 4096;
/// Independent `f32` accumulators of a block sum (one AVX-512 register's worth).
const LANES: usize = 16;
/// Values from which a pass runs in parallel.
const PARALLEL_VALUES: usize = 1 << 16;

/// The shape of a normalised tensor seen as `[outer, C, inner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Product of the axes before the channels'.
    pub outer: usize,
    /// Channels (axis 1 of the tensor).
    pub channels: usize,
    /// Product of the axes after the channels'.
    pub inner: usize,
}

impl NormShape {
    /// `[outer, C, inner]` of a tensor whose channel axis is 1.
    pub fn of(dims: &[usize]) -> Self {
        assert!(dims.len() >= 2, "batch norm: a tensor of rank ≥ 2");
        Self {
            outer: dims[0],
            channels: dims[1],
            inner: dims[2..].iter().product(),
        }
    }

    /// Values per channel.
    pub fn per_channel(&self) -> usize {
        self.outer * self.inner
    }

    fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    fn parallel(&self) -> bool {
        self.len() >= PARALLEL_VALUES && rayon::current_num_threads() > 1
    }

    /// `f(c)` for every channel, in parallel where [`NormShape::parallel`].
    fn per_channel_map<T: Send>(&self, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        match self.parallel() {
            true => (0..self.channels).into_par_iter().map(f).collect(),
            false => (0..self.channels).map(f).collect(),
        }
    }

    /// The runs of channel `c`'s values in a buffer of this shape.
    fn runs<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, inner) = (self.channels, self.inner);
        (0..self.outer).map(move |o| &values[(o * channels + c) * inner..][..inner])
    }
}

/// The normalised output and the batch statistics of each channel.
pub struct Normalised {
    /// `y`, laid out as the input.
    pub output: Vec<f32>,
    /// `μ` per channel.
    pub mean: Vec<f32>,
    /// Biased `σ²` per channel.
    pub variance: Vec<f32>,
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` with the batch's own `μ` and biased `σ²` per channel.
pub fn forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    shape: NormShape,
    epsilon: f64,
) -> Normalised {
    check(shape, x.len(), gamma.len(), beta.len());
    let stats = statistics(x, shape);
    let affine: Vec<(f32, f32, f32)> = stats
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(mean, variance), (&g, &b))| {
            let scale = g as f64 / (variance + epsilon).sqrt();
            (mean as f32, scale as f32, b)
        })
        .collect();
    let mut output = vec![0.0f32; shape.len()];
    for_each_run(&mut output, shape, |c, at, out| {
        let (m, scale, shift) = affine[c];
        let run = &x[at..][..out.len()];
        out.iter_mut()
            .zip(run)
            .for_each(|(y, &v)| *y = (v - m) * scale + shift);
    });
    Normalised {
        output,
        mean: stats.iter().map(|s| s.0 as f32).collect(),
        variance: stats.iter().map(|s| s.1 as f32).collect(),
    }
}

/// Gradients of [`forward`] from the output gradient `grad`.
pub struct NormGrads {
    /// `∂x`, laid out as the input.
    pub x: Vec<f32>,
    /// `∂γ` per channel.
    pub gamma: Vec<f32>,
    /// `∂β` per channel.
    pub beta: Vec<f32>,
}

/// `∂x`, `∂γ`, `∂β` of [`forward`], given its input `x`, `γ`, the statistics it returned and the
/// output gradient `grad`.
pub fn backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    grad: &[f32],
    shape: NormShape,
    epsilon: f64,
) -> NormGrads {
    check(shape, x.len(), gamma.len(), mean.len());
    assert_eq!(grad.len(), x.len(), "batch norm: output gradient's length");
    assert_eq!(
        variance.len(),
        shape.channels,
        "batch norm: variance's length"
    );
    let n = shape.per_channel().max(1) as f64;
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let sums = gradient_sums(x, mean, grad, shape);
    let beta_grad: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let gamma_grad: Vec<f32> = sums
        .iter()
        .zip(&inv_std)
        .map(|(s, inv)| (s.1 * inv) as f32)
        .collect();
    // ∂x = a·∂y + b·(x − μ) + d per channel: a = γs, b = −γs³·Σ∂y(x−μ)/n, d = −a·Σ∂y/n.
    let coefficients: Vec<(f32, f32, f32, f32)> = (0..shape.channels)
        .map(|c| {
            let (dy, dyx) = sums[c];
            let s = inv_std[c];
            let a = gamma[c] as f64 * s;
            let b = -a * s * s * dyx / n;
            (a as f32, b as f32, (-a * dy / n) as f32, mean[c])
        })
        .collect();
    let mut x_grad = vec![0.0f32; shape.len()];
    for_each_run(&mut x_grad, shape, |c, at, out| {
        let (a, b, d, m) = coefficients[c];
        let (g, v) = (&grad[at..][..out.len()], &x[at..][..out.len()]);
        out.iter_mut()
            .zip(g.iter().zip(v))
            .for_each(|(dx, (&dy, &xv))| *dx = a * dy + b * (xv - m) + d);
    });
    NormGrads {
        x: x_grad,
        gamma: gamma_grad,
        beta: beta_grad,
    }
}

/// `(μ, σ²)` per channel, σ² biased: the mean first, then the mean square about it.
fn statistics(x: &[f32], shape: NormShape) -> Vec<(f64, f64)> {
    let n = shape.per_channel().max(1) as f64;
    shape.per_channel_map(|c| {
        let mean = shape.runs(x, c).map(|run| sum(run, |v| v)).sum::<f64>() / n;
        let m = mean as f32;
        let centred = |v: f32| (v - m) * (v - m);
        let variance = shape.runs(x, c).map(|run| sum(run, centred)).sum::<f64>() / n;
        (mean, variance)
    })
}

/// `(Σ∂y, Σ∂y·(x − μ))` per channel, in one pass over `∂y` and `x`.
fn gradient_sums(x: &[f32], mean: &[f32], grad: &[f32], shape: NormShape) -> Vec<(f64, f64)> {
    shape.per_channel_map(|c| {
        let m = mean[c];
        let (mut dy, mut dyx) = (0.0, 0.0);
        for (g, v) in shape.runs(grad, c).zip(shape.runs(x, c)) {
            dy += sum(g, |d| d);
            dyx += sum_pairs(g, v, |d, v| d * (v - m));
        }
        (dy, dyx)
    })
}

fn check(shape: NormShape, len: usize, gamma: usize, other: usize) {
    assert_eq!(len, shape.len(), "batch norm: input's length");
    assert_eq!(gamma, shape.channels, "batch norm: γ's length");
    assert_eq!(other, shape.channels, "batch norm: per-channel length");
}

/// `Σ f(v)` over `values`, in `f32` lanes per block and `f64` across blocks.
fn sum(values: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    values
        .chunks(BLOCK)
        .map(|block| {
            let mut lanes = [0.0f32; LANES];
            let chunks = block.chunks_exact(LANES);
            let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
            for chunk in chunks {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += f(v);
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// `Σ f(a, b)` over the pairs of `a` and `b` (equal lengths), as [`sum`].
fn sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Copy) -> f64 {
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(a, b)| {
            let mut lanes = [0.0f32; LANES];
            let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let tail: f32 = (ca.remainder().iter().zip(cb.remainder()))
                .map(|(&x, &y)| f(x, y))
                .sum();
            for (x, y) in ca.zip(cb) {
                for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
                    *lane += f(x, y);
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// `f(channel, offset, out_run)` over each run of `inner` values of `out` (`offset` its first
/// value's index), in parallel where [`NormShape::parallel`].
fn for_each_run(
    out: &mut [f32],
    shape: NormShape,
    f: impl Fn(usize, usize, &mut [f32]) + Sync + Send,
) {
    let inner = shape.inner.max(1);
    let g = |(k, run): (usize, &mut [f32])| f(k % shape.channels, k * inner, run);
    match shape.parallel() {
        true => out.par_chunks_mut(inner).enumerate().for_each(g),
        false => out.chunks_mut(inner).enumerate().for_each(g),
    }
}
