//! The official learning-rate schedule: timm's `CosineLRScheduler` as `lr_scheduler.py` builds
//! it (`warmup_prefix=False`, `cycle_limit=1`, `t_in_epochs=False`), stepped per iteration.
//!
//! With base rate `η`, warm-up start `η_w`, minimum `η_min`, `W` warm-up and `T` total
//! iterations, timm's rate at update count `t` is
//!
//! ```text
//! lr(t) = η_w + t·(η − η_w)/W                              for t < W
//! lr(t) = η_min + ½(η − η_min)(1 + cos(π·t/T))            otherwise
//! ```
//!
//! one cosine over all `T` iterations, the warm-up a ramp alongside its start (not a prefix
//! after which the cosine restarts). `main_repopt.py` calls `step_update(k)` *after* the update
//! of iteration `k`, and the scheduler starts the optimizer at `η_w` (at `η` without warm-up), so
//! iteration `k` trains with `lr(k − 1)`, and iteration 0 with `lr(0)`'s start value.
//! [`OfficialCosine`] reproduces exactly that sequence; Burn's Learner asks it for the next rate
//! before every optimizer step.

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// Settings of the official schedule, in iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OfficialCosineConfig {
    /// Base (peak) rate `η`.
    pub lr: f64,
    /// Warm-up start `η_w` (`TRAIN.WARMUP_LR`, 0 by default).
    pub warmup_lr: f64,
    /// Floor of the cosine `η_min` (`TRAIN.MIN_LR`, 0 by default).
    pub min_lr: f64,
    /// Warm-up iterations `W` (`int(WARMUP_EPOCHS · iterations per epoch)`).
    pub warmup_iters: usize,
    /// All iterations `T` (`int(EPOCHS · iterations per epoch)`).
    pub total_iters: usize,
}

impl OfficialCosineConfig {
    /// timm's `_get_lr(t)` for update count `t`.
    pub fn timm_lr(&self, t: usize) -> f64 {
        if t < self.warmup_iters {
            let step = (self.lr - self.warmup_lr) / self.warmup_iters as f64;
            return self.warmup_lr + t as f64 * step;
        }
        let total = self.total_iters.max(1);
        if t >= total {
            // Past the single cycle (cycle_limit = 1): the floor.
            return self.min_lr;
        }
        let phase = std::f64::consts::PI * t as f64 / total as f64;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + phase.cos())
    }

    /// The rate iteration `k` (0-based) trains with in `main_repopt.py`.
    pub fn lr_at_iteration(&self, k: usize) -> f64 {
        match k {
            0 if self.warmup_iters > 0 => self.warmup_lr,
            0 => self.lr,
            k => self.timm_lr(k - 1),
        }
    }

    /// The scheduler, checked: rates finite and non-negative, `η_min ≤ η`, warm-up shorter than
    /// the run.
    pub fn init(self) -> Result<OfficialCosine, String> {
        let rates = [self.lr, self.warmup_lr, self.min_lr];
        if rates.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || self.lr <= 0.0 {
            return Err(format!(
                "learning rates must be finite, the base rate positive and the warm-up and \
                 minimum rates ≥ 0 (lr {}, warm-up lr {}, min lr {})",
                self.lr, self.warmup_lr, self.min_lr
            ));
        }
        if self.min_lr > self.lr {
            return Err(format!(
                "the minimum rate {} is above the base rate {}",
                self.min_lr, self.lr
            ));
        }
        if self.total_iters == 0 {
            return Err("the run has no iteration (empty data set?)".into());
        }
        Ok(OfficialCosine {
            config: self,
            iteration: 0,
        })
    }
}

/// The official schedule as a Burn [`LrScheduler`]; its record is the iteration count.
#[derive(Debug, Clone)]
pub struct OfficialCosine {
    config: OfficialCosineConfig,
    /// Iterations already given a rate.
    iteration: usize,
}

const ITERATION_KEY: &str = "iteration";

impl LrScheduler for OfficialCosine {
    fn step(&mut self) -> LearningRate {
        let lr = self.config.lr_at_iteration(self.iteration);
        self.iteration += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(ITERATION_KEY, self.iteration as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(iteration) = record.scalar::<u64>(ITERATION_KEY) {
            self.iteration = iteration as usize;
        }
    }
}

/// The official schedule (timm's cosine with a linear warm-up alongside it, see
/// [`OfficialCosine`]) for a run of `iters_per_epoch` iterations per epoch, rates scaled by the
/// linear rule when the run asks for it.
pub fn lr_schedule(config: &RunConfig, iters_per_epoch: usize) -> Result<ModuleLrScheduler> {
    let (lr, warmup_lr, min_lr) = config.scaled_rates();
    let schedule = OfficialCosineConfig {
        lr,
        warmup_lr,
        min_lr,
        warmup_iters: (config.warmup_epochs * iters_per_epoch as f64) as usize,
        total_iters: config.epochs * iters_per_epoch,
    }
    .init()
    .map_err(|e| TrainError::Config(format!("learning-rate schedule: {e}")))?;
    Ok(ModuleLrScheduler::new(schedule))
}

/// Training iterations per epoch: `n / batch`, rounded down with `drop_last` (as the official
/// loader) and up without; a set smaller than one batch still makes one batch.
pub fn iterations_per_epoch(images: usize, batch_size: usize, drop_last: bool) -> usize {
    match drop_last && images >= batch_size {
        true => images / batch_size,
        false => images.div_ceil(batch_size),
    }
}

/// The official linear scaling rule of `main_repopt.py`: every rate × total batch / 256.
pub fn linear_scaled(lr: f64, total_batch: usize) -> f64 {
    lr * total_batch as f64 / 256.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OfficialCosineConfig {
        OfficialCosineConfig {
            lr: 0.1,
            warmup_lr: 0.0,
            min_lr: 0.0,
            warmup_iters: 5,
            total_iters: 20,
        }
    }

    /// The sequence main_repopt.py trains with: timm's CosineLRScheduler(t_initial=20,
    /// warmup_t=5, warmup_lr_init=0, lr_min=0) on base 0.1, read after each step_update(k − 1).
    /// Reference values from the official formula, evaluated independently:
    /// `[0.0, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1·½(1+cos(5π/20)), …]`.
    #[test]
    fn follows_the_official_sequence() {
        let mut schedule = config().init().unwrap();
        let got: Vec<f64> = (0..22).map(|_| schedule.step()).collect();
        let cosine = |t: f64| 0.05 * (1.0 + (std::f64::consts::PI * t / 20.0).cos());
        let mut want = vec![0.0, 0.0, 0.02, 0.04, 0.06, 0.08];
        want.extend((5..20).map(|t| cosine(t as f64)));
        want.push(0.0); // past the cycle: lr_min
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-12, "iteration {k}: {g} vs {w}");
        }
        // The ramp meets the cosine at the end of warm-up without a restart: iteration 6 trains
        // with cos(π·5/20), not with the cosine's start.
        assert!((got[6] - 0.1 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-12);
    }

    #[test]
    fn without_warmup_starts_at_the_base_rate_and_respects_the_floor() {
        let config = OfficialCosineConfig {
            warmup_iters: 0,
            min_lr: 0.01,
            ..config()
        };
        let mut schedule = config.init().unwrap();
        let got: Vec<f64> = (0..21).map(|_| schedule.step()).collect();
        assert_eq!(got[0], 0.1);
        assert_eq!(got[1], 0.1); // lr(0) = base
        assert!(
            (got[11] - (0.01 + 0.045 * (1.0 + (std::f64::consts::PI / 2.0).cos()))).abs() < 1e-12
        );
        assert!(got.iter().all(|&lr| (0.01..=0.1).contains(&lr)));
    }

    #[test]
    fn warmup_from_a_nonzero_start() {
        let config = OfficialCosineConfig {
            warmup_lr: 1e-4,
            ..config()
        };
        assert_eq!(config.lr_at_iteration(0), 1e-4);
        assert_eq!(config.lr_at_iteration(1), 1e-4);
        assert!((config.lr_at_iteration(2) - (1e-4 + (0.1 - 1e-4) / 5.0)).abs() < 1e-15);
    }

    /// A resumed scheduler continues the sequence where the record left it.
    #[test]
    fn resumes_from_its_record() {
        let mut first = config().init().unwrap();
        let before: Vec<f64> = (0..7).map(|_| first.step()).collect();
        let mut resumed = config().init().unwrap();
        resumed.load_record(first.to_record());
        let mut whole = config().init().unwrap();
        let all: Vec<f64> = (0..12).map(|_| whole.step()).collect();
        assert_eq!(before, all[..7]);
        let after: Vec<f64> = (0..5).map(|_| resumed.step()).collect();
        assert_eq!(after, all[7..]);
    }

    #[test]
    fn linear_scaling_is_batch_over_256() {
        assert_eq!(linear_scaled(0.1, 256), 0.1);
        assert_eq!(linear_scaled(0.1, 32 * 8), 0.1);
        assert!((linear_scaled(0.1, 64) - 0.025).abs() < 1e-15);
    }

    #[test]
    fn refuses_impossible_settings() {
        let bad = [
            OfficialCosineConfig {
                lr: 0.0,
                ..config()
            },
            OfficialCosineConfig {
                min_lr: 0.2,
                ..config()
            },
            OfficialCosineConfig {
                warmup_lr: f64::NAN,
                ..config()
            },
            OfficialCosineConfig {
                total_iters: 0,
                ..config()
            },
        ];
        for config in bad {
            assert!(config.init().is_err(), "{config:?}");
        }
        // Large-batch recipes use rates above 1.
        assert!(
            OfficialCosineConfig {
                lr: 2.4,
                ..config()
            }
            .init()
            .is_ok()
        );
    }
}
