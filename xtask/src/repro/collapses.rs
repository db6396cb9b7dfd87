//! Training collapses: epochs in which a run's training top-1 fell far below the epoch before,
//! its loss having jumped towards chance level (a divergence that the run then climbs back from).
//!
//! Under a schedule that only lowers the learning rate, a stable run's mean training top-1
//! moves little from one epoch to the next (in the 80- to 320-epoch runs of RepOpt-VGG, plain
//! SGD and the ablations it never fell by more than 1.2 points); a fall of [`COLLAPSE_POINTS`]
//! or more is counted. The final top-1 of a run that collapsed depends on how far it climbed
//! back before the schedule ended, which a comparison of final accuracies alone hides.

use super::outcome::metric_curve;
use super::{METHODS, Plan};

/// A fall of the mean training top-1 (points) from one epoch to the next counted as a collapse.
pub(super) const COLLAPSE_POINTS: f64 = 3.0;

/// `(epoch, fall)` for every epoch (numbered from 1) whose training top-1 lies
/// [`COLLAPSE_POINTS`] or more below the epoch before.
pub(super) fn collapses(train_top1: &[f64]) -> Vec<(usize, f64)> {
    train_top1
        .windows(2)
        .enumerate()
        .map(|(i, pair)| (i + 2, pair[0] - pair[1]))
        .filter(|(_, fall)| *fall >= COLLAPSE_POINTS)
        .collect()
}

/// The largest fall of training top-1 from one epoch to the next; 0 when it never fell.
fn largest_fall(train_top1: &[f64]) -> f64 {
    train_top1
        .windows(2)
        .map(|pair| pair[0] - pair[1])
        .fold(0.0, f64::max)
}

/// One finished run's training curve.
struct Trained {
    folder: String,
    method: String,
    seed: u64,
    epochs: u64,
    collapses: Vec<(usize, f64)>,
    /// The learning rate of each collapse's epoch as a fraction of the run's peak (empty
    /// without a learning-rate column).
    lr_fractions: Vec<f64>,
    /// Epochs in its training curve.
    curve_len: usize,
    largest_fall: f64,
}

/// The learning rate of each of `epochs` (numbered from 1) as a fraction of the peak of `lr`;
/// empty when `lr` does not cover them.
fn lr_fractions(lr: &[f64], epochs: impl Iterator<Item = usize>) -> Vec<f64> {
    let peak = lr.iter().copied().fold(0.0, f64::max);
    let fractions: Option<Vec<f64>> = epochs.map(|e| Some(lr.get(e - 1)? / peak)).collect();
    fractions.filter(|_| peak > 0.0).unwrap_or_default()
}

/// Every finished training run of `plan` (its matrix, the convergence checks and the converged
/// matrix; not the search) whose metrics have the training top-1.
fn trained(plan: &Plan) -> Vec<Trained> {
    plan.runs()
        .into_iter()
        .filter(|run| run.method != "hs" && run.finished())
        .filter_map(|run| {
            let train_top1 = metric_curve(&run.dir, "train_top1").ok()?;
            let found = collapses(&train_top1);
            let lr = metric_curve(&run.dir, "train_lr").unwrap_or_default();
            Some(Trained {
                folder: run.dir.file_name()?.to_string_lossy().into_owned(),
                lr_fractions: lr_fractions(&lr, found.iter().map(|(epoch, _)| *epoch)),
                collapses: found,
                curve_len: train_top1.len(),
                largest_fall: largest_fall(&train_top1),
                method: run.method,
                seed: run.seed,
                epochs: run.epochs,
            })
        })
        .collect()
}

/// The report's section: per method, how many of its finished runs collapsed, where and how
/// far, and the largest fall of the others; with the same per run as JSON.
pub(super) fn section(plan: &Plan) -> (String, serde_json::Value) {
    let runs = trained(plan);
    if runs.is_empty() {
        return (String::new(), serde_json::json!([]));
    }
    let mut md = format!(
        "\nTraining collapses: epochs whose training top-1 fell {COLLAPSE_POINTS} points or more \
         below the epoch before (every finished run: matrix and checks)\n\n\
         | method | runs | runs that collapsed | collapses (run: epoch −fall) | largest fall in the other runs |\n\
         |---|---|---|---|---|\n"
    );
    for (method, _) in METHODS {
        let mine: Vec<&Trained> = runs.iter().filter(|r| r.method == method).collect();
        if mine.is_empty() {
            continue;
        }
        let (collapsed, stable): (Vec<&Trained>, Vec<&Trained>) =
            mine.iter().partition(|r| !r.collapses.is_empty());
        let listed: Vec<String> = collapsed
            .iter()
            .map(|r| {
                let events: Vec<String> = r
                    .collapses
                    .iter()
                    .map(|(epoch, fall)| format!("{epoch} −{fall:.1}"))
                    .collect();
                format!("{}: {}", r.folder, events.join(", "))
            })
            .collect();
        let calm = stable
            .iter()
            .map(|r| r.largest_fall)
            .fold(None, |m: Option<f64>, f| Some(m.map_or(f, |m| m.max(f))));
        md.push_str(&format!(
            "| {method} | {} | {} | {} | {} |\n",
            mine.len(),
            collapsed.len(),
            if listed.is_empty() {
                "–".to_string()
            } else {
                listed.join("; ")
            },
            calm.map_or("–".to_string(), |f| format!("{f:.1}")),
        ));
    }
    md.push_str(&when_line(&runs));
    let json = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "run": r.folder, "method": r.method, "seed": r.seed, "epochs": r.epochs,
                "collapses": r.collapses,
                "collapse_lr_of_peak": r.lr_fractions,
                "largest_fall": r.largest_fall,
            })
        })
        .collect();
    (md, serde_json::Value::Array(json))
}

/// When in their schedules the runs collapsed: the lowest learning rate (as a fraction of its
/// run's peak) and the latest point of the schedule of any collapse; empty without collapses
/// or learning rates.
fn when_line(runs: &[Trained]) -> String {
    let events: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r.lr_fractions.len() == r.collapses.len())
        .flat_map(|r| {
            r.collapses
                .iter()
                .zip(&r.lr_fractions)
                .map(|((epoch, _), lr)| (*lr, *epoch as f64 / r.curve_len as f64))
        })
        .collect();
    if events.is_empty() {
        return String::new();
    }
    let lowest = events.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
    let latest = events.iter().map(|e| e.1).fold(0.0, f64::max);
    format!(
        "\nCollapses: {}, every one while the learning rate was at least {lowest:.2} of its run's \
         peak, within the first {:.0} % of its run's epochs.\n",
        events.len(),
        100.0 * latest
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doubling_plan, finish};
    use super::*;

    #[test]
    fn a_fall_of_three_points_or_more_is_a_collapse() {
        let curve = [50.0, 60.0, 58.5, 70.0, 43.0, 60.0, 56.9, 57.0, 54.0];
        let found: Vec<(usize, String)> = collapses(&curve)
            .iter()
            .map(|(epoch, fall)| (*epoch, format!("{fall:.2}")))
            .collect();
        assert_eq!(
            found,
            [(5, "27.00".into()), (7, "3.10".into()), (9, "3.00".into())]
        );
        assert_eq!(largest_fall(&curve), 27.0);
        assert!(collapses(&[60.0, 59.0, 62.0]).is_empty());
        assert_eq!(largest_fall(&[60.0, 61.0]), 0.0);
        assert!(collapses(&[]).is_empty());
    }

    /// The section counts per method over the matrix and the checks, names each collapse with
    /// its run and epoch, and gives the largest fall of the runs that did not collapse.
    #[test]
    fn the_section_lists_the_collapses_per_method() {
        let dir = std::env::temp_dir().join(format!("repro-collapse-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let with_train = |run: &str, train: &[f64]| {
            let path = dir.join(run);
            finish(&path, 80.0, train.len() as u64);
            let lr = [0.1, 0.08, 0.05, 0.02];
            let rows: String = train
                .iter()
                .zip(lr)
                .enumerate()
                .map(|(e, (t, lr))| format!("{},{t},{lr},70\n", e + 1))
                .collect();
            std::fs::write(
                path.join("metrics.csv"),
                format!("epoch,train_top1,train_lr,valid_top1\n{rows}"),
            )
            .unwrap();
        };
        with_train("repvgg-s0", &[50.0, 60.0, 40.0, 65.0]);
        with_train("repvgg-long", &[50.0, 60.0, 61.0, 59.5]);
        with_train("plain-s0", &[50.0, 55.0, 54.2, 60.0]);
        finish(&dir.join("repopt-s0"), 80.0, 4); // no training top-1: left out
        let (md, json) = section(&plan);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            md.contains("| repvgg | 2 | 1 | repvgg-s0: 3 −20.0 | 1.5 |"),
            "{md}"
        );
        assert!(md.contains("| plain | 1 | 0 | – | 0.8 |"), "{md}");
        assert!(!md.contains("| repopt |"), "{md}");
        let runs = json.as_array().unwrap();
        assert_eq!(runs.len(), 3);
        let repvgg = runs.iter().find(|r| r["run"] == "repvgg-s0").unwrap();
        assert_eq!(repvgg["collapses"], serde_json::json!([[3, 20.0]]));
        assert_eq!(repvgg["largest_fall"], 20.0);
        assert_eq!(repvgg["collapse_lr_of_peak"], serde_json::json!([0.5]));
        assert!(
            md.contains("Collapses: 1, every one while the learning rate was at least 0.50 of its run's peak, within the first 75 % of its run's epochs."),
            "{md}"
        );
    }

    #[test]
    fn the_learning_rate_of_a_collapse_is_a_fraction_of_the_peak() {
        assert_eq!(
            lr_fractions(&[0.05, 0.1, 0.025], [1, 3].into_iter()),
            [0.5, 0.25]
        );
        assert!(lr_fractions(&[0.1], [2].into_iter()).is_empty());
        assert!(lr_fractions(&[], [1].into_iter()).is_empty());
    }
}
