//! `quantize`: post-training int8 quantization of a run, from the command's flags.

use std::io::Write;

use super::say;
use crate::cli::QuantizeArgs;
use crate::device::parse_device;
use crate::error::{Result, TrainError};

/// `quantize`: every requested scheme evaluated, the table printed and the JSON report saved.
pub(super) fn quantize(args: &QuantizeArgs, stdout: &mut dyn Write) -> Result<()> {
    use repopt_models::quant::{Calibration, WeightGranularity};
    if !(args.percentile > 50.0 && args.percentile <= 100.0) {
        return Err(TrainError::Config(format!(
            "--percentile must be in (50, 100], got {}",
            args.percentile
        )));
    }
    let request = crate::quantize::QuantizeRequest {
        run: args.run.clone(),
        calibration_images: args.calibration_images,
        weights: args
            .weights
            .iter()
            .map(|w| match w.as_str() {
                "per-tensor" => WeightGranularity::PerTensor,
                _ => WeightGranularity::PerChannel,
            })
            .collect(),
        activations: args
            .activations
            .iter()
            .map(|a| match a.as_str() {
                "percentile" => Some(Calibration::Percentile(args.percentile)),
                "f32" => None,
                _ => Some(Calibration::MinMax),
            })
            .collect(),
        first_and_last: args.first_last.iter().map(|f| f == "int8").collect(),
        test_limit: args.test_limit,
        per_layer: args.per_layer,
        device: parse_device(&args.device)?,
    };
    let report = crate::quantize::quantize(&request)?;
    say!(stdout, "{}", report.table())?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| args.run.join("quantization.json"));
    report.save(&json)?;
    say!(stdout, "report: {}", json.display())?;
    Ok(())
}
