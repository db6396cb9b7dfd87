//! Compute rates: the floating-point operations per second of a step, set against the rate of
//! a large matrix product measured in the same run.

use std::fmt::Write as _;

use repopt_models::BlockMode;

use super::{Index, Ratio, write_row};
use crate::case::{Backend, Mode};
use crate::gemm::GemmMeasurement;
use crate::measure::{Measurement, median};

/// The modes whose rates are compared with the gemm rate.
const RATED: [Mode; 4] = [
    Mode::TrainRepopt,
    Mode::TrainRepvgg,
    Mode::InferTarget,
    Mode::InferRepvggFused,
];

/// The block mode whose convolutions `mode`'s step computes: a fused model runs one 3×3 conv per
/// block, whatever it was built from.
fn computed_block_mode(mode: Mode) -> BlockMode {
    match mode {
        Mode::InferTargetFused | Mode::InferRepvggFused => BlockMode::Deploy,
        other => other.block_mode(),
    }
}

/// GFLOP/s of `m`'s median step: `2 · 3 · macs · batch` floating-point operations for a training
/// step (forward, input gradient, weight gradient), `2 · macs · batch` for a forward pass, with
/// `macs` = [`RepOptVggConfig::forward_macs`](repopt_models::RepOptVggConfig::forward_macs) per
/// image. `None` for a case whose model cannot be built.
pub fn step_gflops(m: &Measurement) -> Option<f64> {
    let config = m.case.config().ok()?;
    let macs = config.forward_macs(m.case.image_size, computed_block_mode(m.case.mode)) as f64;
    let passes = if m.case.mode.is_training() { 3.0 } else { 1.0 };
    Some(2.0 * passes * macs * m.case.batch_size as f64 / m.median_step_seconds / 1e9)
}

/// The median rate of the products measured on `backend`, with their size.
fn gemm_rate(gemm: &[GemmMeasurement], backend: Backend) -> Option<(usize, f64)> {
    let size = gemm.iter().find(|g| g.backend == backend)?.size;
    let rates: Vec<f64> = gemm
        .iter()
        .filter(|g| g.backend == backend)
        .map(|g| g.gflops)
        .collect();
    let rate = median(&rates);
    (rate > 0.0).then_some((size, rate))
}

/// For every rated mode measured on flex: its GFLOP/s over the flex gemm rate, round `i` of the
/// mode over gemm round `i` (`gflops_per_second`, denominator `gemm-SIZE@flex`).
pub fn step_gflops_ratios(measurements: &[Measurement], gemm: &[GemmMeasurement]) -> Vec<Ratio> {
    let index = Index::new(measurements);
    let flex_gemm: Vec<&GemmMeasurement> =
        gemm.iter().filter(|g| g.backend == Backend::Flex).collect();
    let Some(size) = flex_gemm.first().map(|g| g.size) else {
        return Vec::new();
    };
    let mut ratios = Vec::new();
    for setting in &index.settings {
        for mode in RATED {
            let rounds: Vec<f64> = index
                .rounds(setting, mode, Backend::Flex)
                .iter()
                .zip(&flex_gemm)
                .filter_map(|(m, g)| Some(step_gflops(m)? / g.gflops))
                .filter(|r| r.is_finite())
                .collect();
            if rounds.is_empty() {
                continue;
            }
            ratios.push(Ratio {
                setting: setting.clone(),
                quantity: "gflops_per_second".into(),
                numerator: format!("{mode}@flex"),
                denominator: format!("gemm-{size}@flex"),
                value: median(&rounds),
                rounds,
            });
        }
    }
    ratios
}

/// Writes the compute-rate table, if a gemm rate was measured: GFLOP/s of each rated mode on
/// flex and in PyTorch, and the flex rate as a share of the flex gemm rate.
pub(super) fn rates_table(out: &mut String, index: &Index, gemm: &[GemmMeasurement]) {
    let Some((size, gemm_gflops)) = gemm_rate(gemm, Backend::Flex) else {
        return;
    };
    let _ = write!(
        out,
        "\nCompute rate: GFLOP/s of the median step (2·3·MACs per training image, 2·MACs per \
         forward pass; convolutions and classifier), against a {size}×{size} `f32` matrix \
         product on flex in the same run: **{gemm_gflops:.1} GFLOP/s**.\n\n\
         | model | input | batch | mode | flex GFLOP/s | **flex / gemm** | PyTorch GFLOP/s |\n\
         |---|---|---:|---|---:|---:|---:|\n"
    );
    for setting in &index.settings {
        for mode in RATED {
            let Some(flex) = index.get(setting, mode, Backend::Flex) else {
                continue;
            };
            let Some(rate) = step_gflops(flex) else {
                continue;
            };
            let pytorch = index
                .get(setting, mode, Backend::Pytorch)
                .and_then(step_gflops)
                .map_or("–".into(), |g| format!("{g:.1}"));
            let cells = [
                mode.label().to_string(),
                format!("{rate:.1}"),
                format!("**{:.2}**", rate / gemm_gflops),
                pytorch,
            ];
            write_row(out, setting, &cells);
        }
    }
}
