//! `metrics.csv`: the per-epoch metrics of Burn's Learner logs as one table.

use std::path::Path;

use burn::train::LearnerSummary;
use repopt_core::tensor_io::write_atomic;

use crate::error::{Result, file_error};

/// Writes the per-epoch metrics that Burn's Learner logged in run folder `dir` to `path`
/// (`epoch,train_loss,train_lr,train_top1,…,valid_top5`); nothing when there are no logs.
pub fn write_metrics_csv(dir: &Path, path: &Path) -> Result<()> {
    let names = [
        ("Loss", "loss"),
        ("Accuracy", "top1"),
        ("Top-K Accuracy @ TopK(5)", "top5"),
        ("Learning Rate", "lr"),
    ];
    let metric_names: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let Ok(summary) = LearnerSummary::new(dir, &metric_names) else {
        return Ok(());
    };
    let mut rows: std::collections::BTreeMap<usize, Vec<(String, f64)>> = Default::default();
    for (split, metrics) in [
        ("train", &summary.metrics.train),
        ("valid", &summary.metrics.valid),
    ] {
        for metric in metrics.iter() {
            for entry in &metric.entries {
                let short = names
                    .iter()
                    .find(|(n, _)| *n == metric.name)
                    .map_or(metric.name.as_str(), |(_, s)| s);
                let column = format!("{split}_{short}");
                rows.entry(entry.step)
                    .or_default()
                    .push((column, entry.value));
            }
        }
    }
    let mut columns: Vec<String> = rows
        .values()
        .flat_map(|r| r.iter().map(|(c, _)| c.clone()))
        .collect();
    columns.sort();
    columns.dedup();
    let mut csv = format!("epoch,{}\n", columns.join(","));
    for (epoch, values) in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                values
                    .iter()
                    .find(|(name, _)| name == c)
                    .map(|(_, v)| format!("{v}"))
                    .unwrap_or_default()
            })
            .collect();
        csv.push_str(&format!("{epoch},{}\n", cells.join(",")));
    }
    write_atomic(path, csv.as_bytes()).map_err(|e| file_error(path, e))
}
