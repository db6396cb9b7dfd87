//! The thread pool a command computes in, and the float mode of its threads.
//!
//! Subnormal `f32` values (`0 < |x| < 2⁻¹²⁶ ≈ 1.2·10⁻³⁸`) take a slow path in the CPU's float
//! units: an operation that reads or produces one costs tens to hundreds of cycles instead of
//! one. Long trainings make them in bulk: a channel whose gradient is zero (a ReLU that never
//! fires) is only decayed, `W ← W·(1 − η·λ)` each step, and so are its momentum and
//! everything computed from it, until after ~10⁵ steps its values fall below `2⁻¹²⁶`. The
//! pool's threads therefore flush them to zero (x86: MXCSR's FTZ and DAZ bits; AArch64: FPCR's
//! FZ bit), as TensorFlow's CPU threads do: a value below `1.2·10⁻³⁸` reads and is written as
//! `±0`. Everything at or above `2⁻¹²⁶` computes bit for bit as before.

use std::hint::black_box;

/// What the compute threads do with subnormal `f32` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Denormals {
    /// Read and write them as zero (fast; the default).
    #[default]
    Flush,
    /// IEEE 754 gradual underflow (the CPU's own mode; slow where they occur).
    Keep,
}

/// A rayon pool of `threads` threads (`None`: `RAYON_NUM_THREADS`, else one per core) whose
/// threads treat subnormals as `denormals` says. Run a command inside it with
/// [`ThreadPool::install`](rayon::ThreadPool::install): the model's parallel loops then start on
/// the pool's own threads, and no work is handed over from the caller's thread.
pub fn compute_pool(
    threads: Option<usize>,
    denormals: Denormals,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let builder = rayon::ThreadPoolBuilder::new().num_threads(threads.unwrap_or(0));
    match denormals {
        Denormals::Keep => builder.build(),
        Denormals::Flush => builder
            .start_handler(|_| {
                flush_denormals();
            })
            .build(),
    }
}

/// Runs `work` on the caller's rayon pool if it is on one, else inside a [`compute_pool`] of its
/// own (`RAYON_NUM_THREADS` threads, else one per core; subnormals flushed), as the `repopt`
/// commands do. A program that wants other threads or IEEE underflow calls from inside its own
/// pool's [`install`](rayon::ThreadPool::install).
pub fn on_compute_threads<R: Send>(
    work: impl FnOnce() -> R + Send,
) -> Result<R, rayon::ThreadPoolBuildError> {
    match rayon::current_thread_index() {
        Some(_) => Ok(work()),
        None => Ok(compute_pool(None, Denormals::Flush)?.install(work)),
    }
}

/// Makes the calling thread flush subnormal `f32`/`f64` values to zero, as inputs and as
/// results. Returns `false` where the CPU has no such mode here (then nothing changes).
pub fn flush_denormals() -> bool {
    float_mode::set_flush(true)
}

/// Whether the calling thread computes with subnormals flushed to zero: measured, by an
/// operation whose exact result is subnormal.
pub fn flushes_denormals() -> bool {
    let smallest_normal = black_box(f32::MIN_POSITIVE);
    smallest_normal * black_box(0.5f32) == 0.0
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod float_mode {
    /// MXCSR: flush-to-zero (results, bit 15) and denormals-are-zero (inputs, bit 6).
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

    pub(super) fn set_flush(on: bool) -> bool {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr`/`ldmxcsr` read and write this thread's SSE control register; only
        // the two subnormal bits change, which no Rust or LLVM invariant depends on.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr = if on { csr | FTZ_DAZ } else { csr & !FTZ_DAZ };
            core::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
        true
    }
}

#[cfg(target_arch = "aarch64")]
mod float_mode {
    /// FPCR's flush-to-zero bit (inputs and results).
    const FZ: u64 = 1 << 24;

    pub(super) fn set_flush(on: bool) -> bool {
        let mut fpcr: u64;
        // SAFETY: reads and writes this thread's floating-point control register; only the
        // flush-to-zero bit changes, which no Rust or LLVM invariant depends on.
        unsafe {
            core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr = if on { fpcr | FZ } else { fpcr & !FZ };
            core::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
        true
    }
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
mod float_mode {
    pub(super) fn set_flush(_on: bool) -> bool {
        false
    }
}

#[cfg(all(
    test,
    any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;

    /// A subnormal made at run time (not folded by the compiler).
    fn subnormal() -> f32 {
        black_box(f32::MIN_POSITIVE) / black_box(8.0f32)
    }

    #[test]
    fn a_fresh_thread_keeps_subnormals() {
        std::thread::spawn(|| {
            assert!(!flushes_denormals());
            assert!(subnormal() > 0.0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_flushing_thread_writes_and_reads_subnormals_as_zero() {
        let (made, read) = std::thread::spawn(|| {
            let stored = subnormal();
            assert!(flush_denormals());
            // Made while flushing: written as zero. Made before: read as zero.
            (subnormal(), black_box(stored) * black_box(1.0f32))
        })
        .join()
        .unwrap();
        assert_eq!((made, read), (0.0, 0.0));
    }

    #[test]
    fn normal_values_compute_as_before() {
        let inputs = [f32::MIN_POSITIVE, 1.0e-30, 0.1, 3.0, 1.0e30];
        let products = |flush: bool| {
            std::thread::spawn(move || {
                if flush {
                    flush_denormals();
                }
                inputs.map(|x| (black_box(x) * black_box(1.000_001f32)).to_bits())
            })
            .join()
            .unwrap()
        };
        assert_eq!(products(true), products(false));
    }

    /// Outside any pool, the work runs on flushing pool threads; inside a caller's pool, on
    /// that pool, as the caller set it up.
    #[test]
    fn work_runs_on_the_callers_pool_or_a_compute_pool() {
        let seen = || (rayon::current_thread_index().is_some(), flushes_denormals());
        let outside = std::thread::spawn(move || on_compute_threads(seen).unwrap())
            .join()
            .unwrap();
        assert_eq!(outside, (true, true));
        let callers = compute_pool(Some(1), Denormals::Keep).unwrap();
        let inside = callers.install(|| on_compute_threads(seen).unwrap());
        assert_eq!(inside, (true, false));
    }

    #[test]
    fn the_pool_threads_follow_the_setting() {
        for (denormals, flushed) in [(Denormals::Flush, true), (Denormals::Keep, false)] {
            let pool = compute_pool(Some(2), denormals).unwrap();
            let seen: Vec<bool> = pool.install(|| rayon::broadcast(|_| flushes_denormals()));
            assert_eq!(seen, vec![flushed; 2], "{denormals:?}");
        }
    }
}
