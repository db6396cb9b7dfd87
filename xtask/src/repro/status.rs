//! `--status`: what is done and what remains, with the time left estimated from the epochs
//! trained so far.

use crate::stats;

use super::outcome::{logged_epoch_seconds, median, median_epoch_seconds};
use super::{DOUBLING_POINTS, LONG_METHODS, METHODS, Plan, Run, converged, schedule};

/// What is done and what remains, with the time left estimated from the finished epochs.
pub(super) fn status(plan: &Plan) -> Result<(), String> {
    let runs = plan.runs();
    let mut estimates = Estimates::new(plan);
    // Seconds each unfinished run still needs: runs under way, then the rest in the plan's order.
    let (mut started, mut fresh) = (Vec::new(), Vec::new());
    println!(
        "{:<26} {:>4} {:>9} {:>10}  folder",
        "method", "seed", "epochs", "s/epoch"
    );
    for run in &runs {
        let done = run.epochs_done();
        // A finished run shows what its epochs took, the others the rate they are counted at.
        let per_epoch = match run.finished() {
            true => median_epoch_seconds(&run.dir),
            false => estimates.rate(&run.method),
        };
        if !run.finished() {
            let left = estimates.seconds_left(run);
            match done {
                0 => fresh.push(left),
                _ => started.push(left),
            }
        }
        println!(
            "{:<26} {:>4} {:>4}/{:<4} {:>10}  {}{}",
            run.label(),
            run.seed,
            done,
            run.epochs,
            per_epoch.map_or("?".into(), |s| format!("{s:.0}")),
            run.dir.display(),
            if run.finished() { "  done" } else { "" }
        );
    }
    for line in undecided_checks(plan) {
        println!("{line}");
    }
    print!("{}", converged::budget_line(plan));
    let finished = runs.iter().filter(|r| r.finished()).count();
    println!("\n{finished} of {} runs finished", runs.len());
    // At most one run under way per job; any more wait first in line.
    let busy: Vec<f64> = started.drain(..started.len().min(STATUS_JOBS)).collect();
    started.extend(fresh);
    let left = schedule::time_left(&busy, &started, STATUS_JOBS);
    if left.is_nan() {
        println!("time left: unknown until a run has trained an epoch");
    } else {
        println!(
            "time left: about {:.1} h on this machine with --jobs {STATUS_JOBS} (from the seconds \
             per epoch measured so far; each run takes the job that frees first, in the plan's \
             order but for a long run moved ahead so as not to end alone)",
            left / 3600.0
        );
    }
    Ok(())
}

/// The jobs `--status` counts with.
const STATUS_JOBS: usize = 2;

/// The seconds runs still need, from each method's measured rate ([`seconds_per_epoch`],
/// read once); a method not yet measured counts at the mean rate of those measured.
pub(super) struct Estimates<'a> {
    plan: &'a Plan,
    rates: std::collections::HashMap<String, Option<f64>>,
}

impl<'a> Estimates<'a> {
    pub(super) fn new(plan: &'a Plan) -> Self {
        Self {
            plan,
            rates: Default::default(),
        }
    }

    /// Seconds per epoch of `method`, if measured.
    fn rate(&mut self, method: &str) -> Option<f64> {
        let plan = self.plan;
        *(self.rates.entry(method.to_string())).or_insert_with(|| seconds_per_epoch(plan, method))
    }

    /// Seconds `run` still needs; `NaN` while no method has a measured rate.
    pub(super) fn seconds_left(&mut self, run: &Run) -> f64 {
        let per_epoch = self.rate(&run.method).or_else(|| self.fallback());
        run.epochs.saturating_sub(run.epochs_done()) as f64 * per_epoch.unwrap_or(f64::NAN)
    }

    /// The mean rate of the methods measured.
    fn fallback(&mut self) -> Option<f64> {
        let measured: Vec<f64> = std::iter::once("hs")
            .chain(METHODS.iter().map(|(method, _)| *method))
            .filter_map(|method| self.rate(method))
            .collect();
        (!measured.is_empty()).then(|| stats::mean(&measured))
    }
}

/// The longer schedules of the convergence check not yet known to be needed: for each method,
/// the next one, which waits on the check before it.
pub(super) fn undecided_checks(plan: &Plan) -> Vec<String> {
    LONG_METHODS
        .iter()
        .filter_map(|method| {
            let check = (2..=plan.doublings).find(|&k| plan.calls_for(method, k) != Some(true))?;
            plan.calls_for(method, check).is_none().then(|| {
                format!(
                    "{method} ({} epochs): trained only if {} epochs change seed 0's top-1 by \
                     {DOUBLING_POINTS} points or more against {}",
                    plan.check_epochs(check),
                    plan.check_epochs(check - 1),
                    plan.check_epochs(check - 2),
                )
            })
        })
        .collect()
}

/// Seconds per epoch of `method` (training and evaluation) now: the median of the last
/// [`RECENT_EPOCHS`] epochs in the most recently written log of the runs that train its
/// network (any method, seed or schedule; see [`network`]), so that the estimate follows a
/// faster build or a busier machine even for a method not run since. The median, because an
/// epoch during which the run was paused lasts many times the others.
fn seconds_per_epoch(plan: &Plan, method: &str) -> Option<f64> {
    let newest = plan
        .runs()
        .into_iter()
        .filter(|r| network(&r.method) == network(method))
        .filter_map(|r| {
            let log = r.dir.with_extension("log");
            let written = std::fs::metadata(&log).and_then(|m| m.modified()).ok()?;
            Some((written, r.dir))
        })
        .max_by_key(|(written, _)| *written)?;
    let seconds = logged_epoch_seconds(&newest.1);
    median(&seconds[seconds.len().saturating_sub(RECENT_EPOCHS)..])
}

/// The network a method trains, which sets its cost per epoch: the search's three branches
/// with trainable scales, RepVGG's three branches, or the plain target, whatever its update
/// rule (the Grad Mults' one multiply per weight is within the noise of an epoch).
fn network(method: &str) -> &str {
    match method {
        "hs" | "repvgg" => method,
        _ => "target",
    }
}

/// Epochs the time-left estimate reads per method.
const RECENT_EPOCHS: usize = 10;

#[cfg(test)]
mod tests {
    use super::super::tests::{doubling_plan, epoch_log};
    use super::*;

    /// The time-left estimate reads the last epochs of the newest log of the method's network:
    /// a faster build or a busier machine shows at once, also for the methods of the same
    /// network not run since.
    #[test]
    fn the_estimate_follows_the_newest_epochs() {
        let dir = std::env::temp_dir().join(format!("repro-eta-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let log = |run: &str, seconds: &[f64], age_s: u64| {
            let path = epoch_log(&dir, run, seconds);
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
        };
        std::fs::create_dir_all(&dir).unwrap();
        log("repopt-s0", &[60.0; 30], 3600);
        let mut recent = vec![60.0; 20];
        recent.extend([30.0; RECENT_EPOCHS]);
        log("repopt-long", &recent, 10);
        log("repvgg-s0", &[90.0; 30], 7200);
        assert_eq!(seconds_per_epoch(&plan, "repopt"), Some(30.0));
        assert_eq!(seconds_per_epoch(&plan, "mults-only"), Some(30.0));
        assert_eq!(seconds_per_epoch(&plan, "repvgg"), Some(90.0));
        assert_eq!(seconds_per_epoch(&plan, "hs"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
