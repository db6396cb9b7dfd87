//! What a run leaves in its folder and log: its outcome, its per-epoch metrics and the
//! seconds its epochs took.

use std::path::Path;

use crate::stats;

/// The seconds of each finished epoch in the log beside the run folder `dir` (none without a log).
pub(super) fn logged_epoch_seconds(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.with_extension("log"))
        .map(|log| epoch_seconds(&log))
        .unwrap_or_default()
}

pub(super) fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| stats::median(values))
}

/// Seconds of each finished epoch (training plus evaluation) in a run's log, whose lines read
/// `epoch k/n train (X s): …` and `epoch k/n valid (Y s): …`; an epoch counts once both are there.
fn epoch_seconds(log: &str) -> Vec<f64> {
    let mut train = std::collections::BTreeMap::<String, f64>::new();
    let mut both = Vec::new();
    for line in log.lines().filter_map(|l| l.strip_prefix("epoch ")) {
        let Some((epoch, rest)) = line.split_once(' ') else {
            continue;
        };
        let seconds = rest
            .split_once(" (")
            .and_then(|(_, rest)| rest.split_once(" s)"))
            .and_then(|(s, _)| s.parse::<f64>().ok());
        match (
            rest.starts_with("train ("),
            rest.starts_with("valid ("),
            seconds,
        ) {
            (true, _, Some(s)) => {
                train.insert(epoch.to_string(), s);
            }
            (_, true, Some(s)) => both.extend(train.remove(epoch).map(|t| t + s)),
            _ => {}
        }
    }
    both
}

/// What one finished run reports.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) top1: f64,
    pub(super) seconds_per_epoch: f64,
    pub(super) peak_memory_mib: Option<f64>,
}

pub(super) fn read_outcome(dir: &Path) -> Result<Outcome, String> {
    let path = dir.join("outcome.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Outcome {
        top1: value["test"]["top1"]
            .as_f64()
            .ok_or_else(|| format!("{}: no test top-1", path.display()))?,
        seconds_per_epoch: median_epoch_seconds(dir)
            .or(value["seconds_per_epoch"].as_f64())
            .unwrap_or(f64::NAN),
        peak_memory_mib: value["peak_memory_bytes"]
            .as_f64()
            .map(|b| b / f64::from(1 << 20)),
    })
}

/// The median seconds per epoch of the run in `dir`, from its log (`None` without one). The
/// run's own mean (`outcome.json`) counts the time it was paused.
pub(super) fn median_epoch_seconds(dir: &Path) -> Option<f64> {
    median(&logged_epoch_seconds(dir))
}

/// The per-epoch test top-1 of a run (`valid_top1` of its metrics.csv), in epoch order.
pub(super) fn test_curve(dir: &Path) -> Result<Vec<f64>, String> {
    metric_curve(dir, "valid_top1")
}

/// Column `name` of a run's metrics.csv (`train_top1`, `valid_top1`, …), in epoch order.
pub(super) fn metric_curve(dir: &Path, name: &str) -> Result<Vec<f64>, String> {
    let path = dir.join("metrics.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = header
        .iter()
        .position(|c| *c == name)
        .ok_or_else(|| format!("{}: no {name} column", path.display()))?;
    lines
        .map(|line| {
            line.split(',')
                .nth(column)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("{}: bad row `{line}`", path.display()))
        })
        .collect()
}

/// The gain of `curve` over its last 10 % of epochs (at least one epoch): the last value minus
/// the value before that window.
pub(super) fn late_gain(curve: &[f64]) -> Option<f64> {
    let window = (curve.len() / 10).max(1);
    (curve.len() > window).then(|| curve[curve.len() - 1] - curve[curve.len() - 1 - window])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_gain_reads_the_last_tenth() {
        let curve: Vec<f64> = (0..30).map(|e| 50.0 + e as f64).collect();
        assert_eq!(late_gain(&curve), Some(3.0));
        assert_eq!(late_gain(&[10.0, 12.0]), Some(2.0));
        assert_eq!(late_gain(&[10.0]), None);
    }

    /// An epoch counts once its training and evaluation lines are both in the log; a resumed
    /// run's repeated epoch counts once; the median ignores an epoch that lasted through a pause.
    #[test]
    fn epoch_seconds_pair_train_and_valid_lines() {
        let log = "\
epoch 1/4 train (40.0 s): Accuracy 25 %
epoch 1/4 valid (2.0 s): Accuracy 35 %
epoch 2/4 train (2400.0 s): Accuracy 30 %
epoch 2/4 valid (3.0 s): Accuracy 38 %
epoch 3/4 train (41.0 s): Accuracy 31 %
== resumed
epoch 3/4 train (39.0 s): Accuracy 32 %
epoch 3/4 valid (2.0 s): Accuracy 39 %
epoch 4/4 train (44.0 s): Accuracy 33 %
";
        let seconds = epoch_seconds(log);
        assert_eq!(seconds, vec![42.0, 2403.0, 41.0]);
        assert_eq!(stats::median(&seconds), 42.0);
    }
}
