//! `plot`: training curves, scales per block, per-layer weight SQNR, kernel distributions.

use std::io::Write;
use std::path::{Path, PathBuf};

use repopt_models::{RepOptVggConfig, VggScales};

use super::say;
use crate::error::{Result, TrainError};
use crate::run_folder::RunRecord;

pub(super) fn plot(
    runs: &[PathBuf],
    labels: &[String],
    scales: Option<&Path>,
    preset: Option<&str>,
    out: &Path,
    stdout: &mut dyn Write,
) -> Result<()> {
    match (scales, runs.is_empty()) {
        (Some(file), true) => {
            let config = preset.and_then(RepOptVggConfig::preset);
            crate::plot::plot_scales(&VggScales::load(file, config.as_ref())?, out)?;
        }
        (None, false) => {
            let curves = runs
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let label = labels.get(i).cloned().unwrap_or_else(|| {
                        run.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    crate::plot::Curve::read(run, label)
                })
                .collect::<Result<Vec<_>>>()?;
            crate::plot::plot_curves(&curves, out)?;
        }
        _ => {
            return Err(TrainError::Config(
                "give either --runs (curves) or --scales (scales per block)".into(),
            ));
        }
    }
    say!(stdout, "wrote {}", out.display())?;
    Ok(())
}

/// `labels[i]`, or the file or folder name of `path`.
fn label_of(labels: &[String], i: usize, path: &Path) -> String {
    labels.get(i).cloned().unwrap_or_else(|| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    })
}

pub(super) fn plot_quantization(
    reports: &[PathBuf],
    labels: &[String],
    out: &Path,
    stdout: &mut dyn Write,
) -> Result<()> {
    let mut lines = Vec::new();
    for (i, path) in reports.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|e| trainer_file_error(path, e))?;
        let report: crate::quantize::QuantizeReport = serde_json::from_str(&text)
            .map_err(|e| trainer_file_error(path, format!("not a quantize report: {e}")))?;
        let label = label_of(labels, i, path.parent().unwrap_or(path));
        for (kind, pick) in [
            (
                "per tensor",
                (|l: &crate::quantize::LayerSqnr| l.per_tensor) as fn(&_) -> f64,
            ),
            ("per channel", |l| l.per_channel),
        ] {
            lines.push(crate::plot::Line {
                label: format!("{label}, {kind}"),
                points: report
                    .weight_sqnr_db
                    .iter()
                    .enumerate()
                    .map(|(x, l)| (x as f64, pick(l)))
                    .collect(),
            });
        }
    }
    crate::plot::plot_lines(
        "Weight quantization error per layer (int8)",
        "layer (forward order; last: classifier)",
        "SQNR (dB)",
        &lines,
        out,
    )?;
    say!(stdout, "wrote {}", out.display())?;
    Ok(())
}

pub(super) fn plot_kernels(
    runs: &[PathBuf],
    labels: &[String],
    out: &Path,
    stdout: &mut dyn Write,
) -> Result<()> {
    let device = burn::tensor::Device::flex();
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let record = RunRecord::load(run)?;
        let model = crate::quantize::deployed(&record, run, &device)?;
        lines.push(crate::plot::Line {
            label: label_of(labels, i, run),
            points: crate::plot::kernel_histogram(&model, 64),
        });
    }
    crate::plot::plot_lines(
        "Deployed 3x3 kernel values over each layer's largest magnitude",
        "w / max|w| of its layer",
        "log10 fraction of values",
        &lines,
        out,
    )?;
    say!(stdout, "wrote {}", out.display())?;
    Ok(())
}

fn trainer_file_error(path: &Path, message: impl ToString) -> TrainError {
    TrainError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}
