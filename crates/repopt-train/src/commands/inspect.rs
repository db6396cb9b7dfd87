//! `inspect-scales`: what a scales file holds, and what it implies for the kernels.

use std::io::Write;
use std::path::Path;

use repopt_models::{RepOptVggConfig, ScaleStats, VggScales};

use super::say;
use crate::error::{Result, TrainError};

/// `inspect-scales`: per-block statistics, and with `kernels` what they imply for the kernels.
pub(super) fn inspect_scales(
    file: &Path,
    preset: Option<&str>,
    kernels: Option<u64>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let config = preset
        .map(|p| {
            RepOptVggConfig::preset(p)
                .ok_or_else(|| TrainError::Config(format!("unknown preset `{p}`")))
        })
        .transpose()?;
    let scales = VggScales::load(file, config.as_ref())?;
    say!(stdout, "{} ({} blocks)", scales.source, scales.blocks.len())?;
    say!(
        stdout,
        "{:<10} {:>5} {:>5}  {:>22}  {:>22}  {:>22}",
        "block",
        "in",
        "out",
        "s (3x3) mean±std",
        "t (1x1) mean±std",
        "γ (identity) mean±std"
    )?;
    let cell = |v: &[f32]| {
        let s = ScaleStats::of(v);
        format!("{:+.3}±{:.3} [{:+.2},{:+.2}]", s.mean, s.std, s.min, s.max)
    };
    for block in &scales.blocks {
        say!(
            stdout,
            "{:<10} {:>5} {:>5}  {:>22}  {:>22}  {:>22}",
            block.spec.name,
            block.spec.in_channels,
            block.spec.out_channels,
            cell(&block.conv),
            cell(&block.conv_1x1),
            block
                .identity
                .as_deref()
                .map(cell)
                .unwrap_or_else(|| "-".into())
        )?;
    }
    match kernels {
        Some(seed) => print_implied_kernels(&scales, config, file, seed, stdout),
        None => Ok(()),
    }
}

fn print_implied_kernels(
    scales: &VggScales,
    preset: Option<RepOptVggConfig>,
    file: &Path,
    seed: u64,
    stdout: &mut dyn Write,
) -> Result<()> {
    let config = preset
        .or_else(|| scales.architecture.clone())
        .ok_or_else(|| {
            TrainError::Config(format!(
                "{}: the file records no architecture; give --preset for --kernels",
                file.display()
            ))
        })?;
    let device = burn::tensor::Device::flex().autodiff();
    device.seed(seed);
    let rows = repopt_models::implied::implied_kernels(scales, &config, &device)?;
    say!(
        stdout,
        "\nimplied by the scales before training (random kernels, seed {seed}):"
    )?;
    say!(
        stdout,
        "{:<10} {:>9} {:>9}  {:>15}  {:>17}  {:>17}",
        "block",
        "centre/e",
        "diag/e",
        "peak/RMS o | v",
        "SQNR/tensor o | v",
        "SQNR/chan. o | v"
    )?;
    for r in &rows {
        let diag = r
            .identity_mult_ratio
            .map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        say!(
            stdout,
            "{:<10} {:>9.2} {:>9}  {:>7.1} | {:<5.1}  {:>7.1} | {:<7.1}  {:>7.1} | {:<7.1}",
            r.block,
            r.centre_mult_ratio,
            diag,
            r.repopt_peak_to_rms,
            r.repvgg_peak_to_rms,
            r.repopt_sqnr_tensor,
            r.repvgg_sqnr_tensor,
            r.repopt_sqnr_channel,
            r.repvgg_sqnr_channel
        )?;
    }
    say!(
        stdout,
        "centre/e, diag/e: median Grad Mult of the centre and of the identity diagonal over the \
         edges'; o: RepOpt-VGG re-initialised from the scales, v: RepVGG fused at initialisation; \
         SQNR in dB (int8, symmetric)"
    )?;
    Ok(())
}
