//! What a scales file implies for a model's kernels before any training.
//!
//! Two things follow from the scales `s, t, γ` alone:
//!
//! * **The Grad Mults' emphasis.** Under SGD the kernel's edges learn at `s²`, its centre at
//!   `s² + t²` and the identity diagonal's centre at `s² + t² + 1` (times the learning rate). The
//!   ratios
//!
//!   ```text
//!   centre / edge = (s² + t²) / s²,     identity diagonal / edge = (s² + t² + 1) / s²
//!   ```
//!
//!   say how much faster the centre and the diagonal move than the rest: the larger they are,
//!   the more a trained kernel's large values concentrate where a fused RepVGG kernel has them.
//!   Per block the median over output channels is given (a channel with `s ≈ 0` has a ratio
//!   near infinity and says nothing about the others).
//! * **The re-initialised kernel.** The Rule of Initialization puts `γ` on the diagonal centre
//!   next to `s ⊙ W3 + t ⊙ W1`, where a fused RepVGG at initialisation (BNs the identity) has
//!   `W3 + W1 + 1`. How large the diagonal stands out (peak over RMS) and the int8 weight SQNR
//!   ([`RepOptVgg::weight_sqnr`]) of both kernels compare the two starting points.

use burn::tensor::Device;
use serde::Serialize;

use crate::config::{BlockMode, RepOptVggConfig};
use crate::error::Result;
use crate::handler::RepOptVggHandler;
use crate::model::RepOptVgg;
use crate::quant::WeightGranularity;
use crate::scales::{BlockScales, VggScales};

/// The figures of one block (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImpliedKernel {
    /// The block's module path.
    pub block: String,
    /// Median over output channels of `(s² + t²) / s²`.
    pub centre_mult_ratio: f64,
    /// Median over output channels of `(s² + t² + 1) / s²`, for identity blocks.
    pub identity_mult_ratio: Option<f64>,
    /// Peak `|W|` over the RMS of the re-initialised kernel.
    pub repopt_peak_to_rms: f64,
    /// Peak `|W|` over the RMS of RepVGG's fused kernel at initialisation.
    pub repvgg_peak_to_rms: f64,
    /// Int8 weight SQNR (dB), per tensor, of the re-initialised kernel.
    pub repopt_sqnr_tensor: f64,
    /// Int8 weight SQNR (dB), per tensor, of RepVGG's fused kernel at initialisation.
    pub repvgg_sqnr_tensor: f64,
    /// Int8 weight SQNR (dB), per output channel, of the re-initialised kernel.
    pub repopt_sqnr_channel: f64,
    /// Int8 weight SQNR (dB), per output channel, of RepVGG's fused kernel at initialisation.
    pub repvgg_sqnr_channel: f64,
}

/// The figures of every block of `config` under `scales`, with the random kernels drawn from
/// `device` (an autodiff device, as re-initialisation makes trainable kernels; seed it for
/// repeatable figures).
pub fn implied_kernels(
    scales: &VggScales,
    config: &RepOptVggConfig,
    device: &Device,
) -> Result<Vec<ImpliedKernel>> {
    scales.validate_for(config)?;
    let target = config.clone().with_mode(BlockMode::Target).init(device);
    let repopt = RepOptVggHandler::new(scales.clone()).reinitialize_model(target)?;
    let repvgg = config
        .clone()
        .with_mode(BlockMode::RepVgg)
        .init(device)
        .fuse_repvgg()?;
    let peaks = |model: &RepOptVgg| model.blocks().iter().map(|b| peak_to_rms(b)).collect();
    let (repopt_peaks, repvgg_peaks): (Vec<f64>, Vec<f64>) = (peaks(&repopt), peaks(&repvgg));
    let sqnr = |model: &RepOptVgg, granularity| -> Vec<f64> {
        model
            .weight_sqnr(granularity)
            .into_iter()
            .map(|(_, db)| db)
            .collect()
    };
    let (tensor, channel) = (WeightGranularity::PerTensor, WeightGranularity::PerChannel);
    let (ot, vt) = (sqnr(&repopt, tensor), sqnr(&repvgg, tensor));
    let (oc, vc) = (sqnr(&repopt, channel), sqnr(&repvgg, channel));
    Ok(scales
        .blocks
        .iter()
        .enumerate()
        .map(|(i, block)| ImpliedKernel {
            block: block.spec.name.clone(),
            centre_mult_ratio: median_ratio(block, 0.0),
            identity_mult_ratio: block.identity.as_ref().map(|_| median_ratio(block, 1.0)),
            repopt_peak_to_rms: repopt_peaks[i],
            repvgg_peak_to_rms: repvgg_peaks[i],
            repopt_sqnr_tensor: ot[i],
            repvgg_sqnr_tensor: vt[i],
            repopt_sqnr_channel: oc[i],
            repvgg_sqnr_channel: vc[i],
        })
        .collect())
}

/// Median over channels of `(s² + t² + extra) / s²`.
fn median_ratio(block: &BlockScales, extra: f64) -> f64 {
    let mut ratios: Vec<f64> = block
        .conv
        .iter()
        .zip(&block.conv_1x1)
        .map(|(&s, &t)| {
            let (s2, t2) = (f64::from(s).powi(2), f64::from(t).powi(2));
            (s2 + t2 + extra) / s2
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    match n % 2 {
        1 => ratios[n / 2],
        _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    }
}

fn peak_to_rms(block: &crate::RepOptVggBlock) -> f64 {
    let kernel = block
        .conv
        .as_ref()
        .expect("target and deploy blocks have conv")
        .weight
        .val();
    let values: Vec<f32> = kernel
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32");
    let peak = values.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
    let mean_square =
        values.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / values.len() as f64;
    peak / mean_square.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn tiny() -> RepOptVggConfig {
        RepOptVggConfig::preset("tiny").expect("tiny")
    }

    #[test]
    fn mult_ratios_follow_the_scales() {
        let _rng = crate::rng_lock();
        let config = tiny();
        let mut scales = VggScales::constant(&config, 0.5);
        for block in &mut scales.blocks {
            block.conv_1x1.iter_mut().for_each(|t| *t = 0.25);
        }
        let device = Device::flex().autodiff();
        device.seed(3);
        let rows = implied_kernels(&scales, &config, &device).expect("figures");
        assert_eq!(rows.len(), config.blocks().len());
        for row in &rows {
            // (0.25 + 0.0625) / 0.25 = 1.25; with the identity + 1 / 0.25 = 5.25.
            assert!((row.centre_mult_ratio - 1.25).abs() < 1e-9, "{row:?}");
            if let Some(ratio) = row.identity_mult_ratio {
                assert!((ratio - 5.25).abs() < 1e-9, "{row:?}");
            }
        }
        assert!(rows.iter().any(|r| r.identity_mult_ratio.is_some()));
    }

    #[test]
    fn a_larger_identity_scale_makes_the_diagonal_stand_out() {
        // Both calls must draw the same kernels: no other test may use the generator between.
        let _rng = crate::rng_lock();
        let config = tiny();
        let figures = |gamma: f32| {
            let mut scales = VggScales::constant(&config, 1.0);
            for block in &mut scales.blocks {
                if let Some(identity) = &mut block.identity {
                    identity.iter_mut().for_each(|g| *g = gamma);
                }
            }
            let device = Device::flex().autodiff();
            device.seed(5);
            implied_kernels(&scales, &config, &device).expect("figures")
        };
        let (small, large) = (figures(0.01), figures(4.0));
        let identity_rows = small
            .iter()
            .zip(&large)
            .filter(|(a, _)| a.identity_mult_ratio.is_some() && a.block != "stage0");
        let mut seen = 0;
        for (a, b) in identity_rows {
            assert!(b.repopt_peak_to_rms > a.repopt_peak_to_rms, "{a:?} {b:?}");
            assert!(b.repopt_sqnr_tensor < a.repopt_sqnr_tensor, "{a:?} {b:?}");
            // RepVGG's fused kernel does not depend on the scales (only on the random draws).
            assert!(
                (a.repvgg_sqnr_tensor - b.repvgg_sqnr_tensor).abs() < 1.0,
                "{a:?} {b:?}"
            );
            seen += 1;
        }
        assert!(seen > 0);
    }
}
