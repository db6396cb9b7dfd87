//! The machine's large-matrix-product rate on a backend: the yardstick of the training rate.
//!
//! `C = A · B` with `A`, `B` square `f32` matrices of side `n` costs `2 n³` floating-point
//! operations. On a CPU backend, a product of side 2048 runs the same gemm kernels the
//! convolutions' products run, at close to the best rate they reach; `cargo xtask bench` sets a
//! training step's rate (`2 · 3 · forward_macs · batch / step`) against it.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::case::Backend;
use crate::measure::median;
use crate::{BenchError, Result};

/// What one timed series of matrix products measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmMeasurement {
    /// Backend the products ran on.
    pub backend: Backend,
    /// Side of the square matrices.
    pub size: usize,
    /// Seconds of every timed product, in order (one untimed product first).
    pub seconds: Vec<f64>,
    /// Median of `seconds`.
    pub median_seconds: f64,
    /// `2 · size³ / median_seconds / 10⁹`.
    pub gflops: f64,
    /// Threads available to the process.
    pub threads: usize,
}

/// Times `repeats` products of two random `size`×`size` matrices on `backend`, after one
/// untimed product.
pub fn run(backend: Backend, size: usize, repeats: usize) -> Result<GemmMeasurement> {
    if size == 0 || repeats == 0 {
        return Err(BenchError::Invalid(
            "gemm: size and repeats must be positive".into(),
        ));
    }
    let device = backend.device()?;
    device.seed(0);
    let a = Tensor::<2>::random([size, size], Distribution::Default, &device);
    let b = Tensor::<2>::random([size, size], Distribution::Default, &device);
    let mut seconds = Vec::with_capacity(repeats);
    for i in 0..=repeats {
        let start = Instant::now();
        let c = a.clone().matmul(b.clone());
        device
            .sync()
            .map_err(|e| BenchError::Invalid(format!("device sync failed: {e}")))?;
        let elapsed = start.elapsed().as_secs_f64();
        drop(c);
        if i > 0 {
            seconds.push(elapsed);
        }
    }
    let median_seconds = median(&seconds);
    Ok(GemmMeasurement {
        backend,
        size,
        gflops: 2.0 * (size as f64).powi(3) / median_seconds / 1e9,
        seconds,
        median_seconds,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_product_reports_its_rate() {
        let m = run(Backend::Flex, 64, 3).unwrap();
        assert_eq!(m.seconds.len(), 3);
        let expected = 2.0 * 64f64.powi(3) / m.median_seconds / 1e9;
        assert!((m.gflops - expected).abs() <= 1e-9 * expected);
        assert!(m.gflops > 0.0);
    }

    #[test]
    fn zero_sizes_are_refused() {
        assert!(run(Backend::Flex, 0, 3).is_err());
        assert!(run(Backend::Flex, 8, 0).is_err());
    }
}
