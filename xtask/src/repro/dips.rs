//! Test-top-1 dips: epochs whose test top-1 lies far further below the same epoch's training
//! top-1 than the run's usual gap, while its training top-1 did not fall.
//!
//! The test top-1 is measured in eval mode, with the BatchNorms' running statistics; an epoch
//! whose test top-1 dips while its training top-1 holds is one whose running statistics did
//! not match its weights (`repopt eval --epoch E --recalibrate-bn N` re-estimates them and
//! shows it). A run's usual gap is its median train−test gap over all epochs; the first
//! [`SKIPPED_EPOCHS`] are not counted, as warm-up moves both curves fast.

use std::collections::BTreeMap;

use super::outcome::metric_curve;
use super::{METHODS, Plan};

/// How far (points) an epoch's train−test gap must exceed its run's median gap to count.
pub(super) const DIP_POINTS: f64 = 5.0;

/// Epochs at the start of a run not counted.
const SKIPPED_EPOCHS: usize = 20;

/// A run's median train−test gap and the epochs (numbered from 1) whose gap exceeds it by
/// [`DIP_POINTS`] or more, after the first [`SKIPPED_EPOCHS`]; `None` without epochs.
pub(super) fn dips(train_top1: &[f64], test_top1: &[f64]) -> Option<(f64, Vec<usize>)> {
    let gaps: Vec<f64> = train_top1
        .iter()
        .zip(test_top1)
        .map(|(train, test)| train - test)
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = *sorted.get(sorted.len() / 2)?;
    let found = gaps
        .iter()
        .enumerate()
        .skip(SKIPPED_EPOCHS)
        .filter(|(_, gap)| *gap - median >= DIP_POINTS)
        .map(|(i, _)| i + 1)
        .collect();
    Some((median, found))
}

/// One finished run's dips.
struct Measured {
    folder: String,
    method: String,
    epochs: u64,
    median_gap: f64,
    dips: Vec<usize>,
    /// Epochs counted (after the skipped ones).
    counted: usize,
}

/// Every finished training run of `plan` with training and test curves.
fn measured(plan: &Plan) -> Vec<Measured> {
    plan.runs()
        .into_iter()
        .filter(|run| run.method != "hs" && run.finished())
        .filter_map(|run| {
            let train = metric_curve(&run.dir, "train_top1").ok()?;
            let test = metric_curve(&run.dir, "valid_top1").ok()?;
            let (median_gap, dips) = dips(&train, &test)?;
            Some(Measured {
                folder: run.dir.file_name()?.to_string_lossy().into_owned(),
                counted: train.len().min(test.len()).saturating_sub(SKIPPED_EPOCHS),
                method: run.method,
                epochs: run.epochs,
                median_gap,
                dips,
            })
        })
        .collect()
}

/// `lo–hi` of `values` with `digits` decimals (one value alone when they agree).
fn range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = (format!("{lo:.digits$}"), format!("{hi:.digits$}"));
    if lo == hi { lo } else { format!("{lo}–{hi}") }
}

/// The report's section: per method and schedule length, the runs' median gap and how many of
/// their epochs dipped; with every run's dips as JSON.
pub(super) fn section(plan: &Plan) -> (String, serde_json::Value) {
    let runs = measured(plan);
    if runs.is_empty() {
        return (String::new(), serde_json::json!([]));
    }
    let mut md = format!(
        "\nTest-top-1 dips: epochs after the first {SKIPPED_EPOCHS} whose train−test top-1 gap \
         exceeds the run's median gap by {DIP_POINTS} points or more (every finished run)\n\n\
         | method | epochs | runs | median train−test gap | dip epochs per run |\n\
         |---|---|---|---|---|\n"
    );
    for (method, _) in METHODS {
        let mut by_length: BTreeMap<u64, Vec<&Measured>> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.method == method) {
            by_length.entry(run.epochs).or_default().push(run);
        }
        for (epochs, mine) in by_length {
            let counts: Vec<String> = mine
                .iter()
                .map(|r| format!("{} of {}", r.dips.len(), r.counted))
                .collect();
            md.push_str(&format!(
                "| {method} | {epochs} | {} | {} | {} |\n",
                mine.len(),
                range(mine.iter().map(|r| r.median_gap), 1),
                counts.join("; "),
            ));
        }
    }
    let json = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "run": r.folder, "method": r.method, "epochs": r.epochs,
                "median_gap": r.median_gap, "dip_epochs": r.dips,
            })
        })
        .collect();
    (md, serde_json::Value::Array(json))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doubling_plan, finish};
    use super::*;

    #[test]
    fn an_epoch_far_below_the_usual_gap_is_a_dip() {
        let train = vec![70.0; 30];
        let mut test = vec![68.0; 30];
        test[5] = 50.0; // within the skipped epochs
        test[24] = 63.0; // gap 7: exceeds the median 2 by 5
        test[26] = 63.5; // gap 6.5: short of it
        let (median, found) = dips(&train, &test).unwrap();
        assert_eq!(median, 2.0);
        assert_eq!(found, [25]);
        assert!(dips(&[], &[]).is_none());
    }

    /// The section groups the runs by method and schedule length and counts each run's dips.
    #[test]
    fn the_section_counts_each_runs_dips() {
        let dir = std::env::temp_dir().join(format!("repro-dips-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let with_curves = |run: &str, dipped: &[usize]| {
            let path = dir.join(run);
            finish(&path, 80.0, 10);
            let rows: String = (1..=30)
                .map(|e| {
                    let test = if dipped.contains(&e) { 70.0 } else { 78.0 };
                    format!("{e},80,{test}\n")
                })
                .collect();
            std::fs::write(
                path.join("metrics.csv"),
                format!("epoch,train_top1,valid_top1\n{rows}"),
            )
            .unwrap();
        };
        with_curves("plain-s0", &[3, 22, 29]);
        with_curves("plain-s1", &[]);
        with_curves("repopt-s0", &[25]);
        let (md, json) = section(&plan);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            md.contains("| plain | 10 | 2 | 2.0 | 2 of 10; 0 of 10 |"),
            "{md}"
        );
        assert!(md.contains("| repopt | 10 | 1 | 2.0 | 1 of 10 |"), "{md}");
        let runs = json.as_array().unwrap();
        let plain = runs.iter().find(|r| r["run"] == "plain-s0").unwrap();
        assert_eq!(plain["dip_epochs"], serde_json::json!([22, 29]));
    }
}
