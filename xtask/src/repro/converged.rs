//! The matrix at the converged budget: once the convergence check has found the schedule that
//! doubling no longer changes, every method and seed trains again on it.
//!
//! The check lengthens seed 0 of RepOpt-VGG, plain SGD and RepVGG (`E`, `2E`, `4E`, … epochs).
//! A method has converged at schedule `S` when doubling `S` changed its seed-0 test top-1 by
//! less than [`DOUBLING_POINTS`]; the budget is the longest such `S` over the methods of the
//! check, so that every one of them has converged at it. When that is a longer schedule than
//! the plan's own, the plan grows by the whole matrix on it, main methods first, seed by seed;
//! seed 0 of the checked methods is the check run itself (same settings, same folder).
//!
//! A doubling whose runs collapsed ([`super::collapses`]) says nothing about the schedule: the
//! change then measures how far the run fell and climbed back, not what more epochs give. A
//! method with a collapsed run in a doubling before any of its doublings met the criterion is
//! left out of the budget (it trains on the others' budget all the same, its collapses
//! reported); its further checks still train, after the converged matrix.

use std::path::PathBuf;

use super::report::{self, Finished};
use super::{DOUBLING_POINTS, LONG_METHODS, Plan, Run, method_groups};

/// What the convergence check has found so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Budget {
    /// Converged at the plan's `check`-th schedule (0: its own epochs).
    At { check: u64 },
    /// A check it needs is unfinished.
    Undecided,
    /// Some method still moved by [`DOUBLING_POINTS`] or more on the longest schedule allowed.
    NotWithin { epochs: u64 },
    /// The plan has no convergence check (`--quick`).
    NoCheck,
    /// For one method: the doubling that decides it has a collapsed run (see the module). For
    /// the budget: every checked method's has.
    Collapsed,
}

impl Plan {
    /// The schedule at which `method` has converged (see [`Budget`]).
    fn converged_check(&self, method: &str) -> Budget {
        for k in 1..=self.doublings {
            let (Some(before), Some(after)) =
                (self.check_top1(method, k - 1), self.check_top1(method, k))
            else {
                return Budget::Undecided;
            };
            if self.doubling_collapsed(method, k) {
                return Budget::Collapsed;
            }
            if (after - before).abs() < DOUBLING_POINTS {
                return Budget::At { check: k - 1 };
            }
        }
        Budget::NotWithin {
            epochs: self.check_epochs(self.doublings),
        }
    }

    /// Whether either run of the `check`-th doubling of `method` (the schedules `check − 1`
    /// and `check`) collapsed.
    pub(super) fn doubling_collapsed(&self, method: &str, check: u64) -> bool {
        [check - 1, check]
            .iter()
            .any(|&k| self.check_collapsed(method, k))
    }

    /// The checked methods left out of the budget because their deciding doubling collapsed.
    pub(super) fn collapsed_checks(&self) -> Vec<&'static str> {
        LONG_METHODS
            .into_iter()
            .filter(|method| self.converged_check(method) == Budget::Collapsed)
            .collect()
    }

    /// The budget every method of the check whose runs did not collapse has converged at.
    pub(super) fn budget(&self) -> Budget {
        if self.long_epochs == 0 || self.doublings == 0 {
            return Budget::NoCheck;
        }
        let per_method: Vec<Budget> = LONG_METHODS
            .iter()
            .map(|method| self.converged_check(method))
            .filter(|b| *b != Budget::Collapsed)
            .collect();
        if per_method.is_empty() {
            return Budget::Collapsed;
        }
        if let Some(missed) = per_method
            .iter()
            .find(|b| matches!(b, Budget::NotWithin { .. }))
        {
            return *missed;
        }
        per_method
            .iter()
            .map(|b| match b {
                Budget::At { check } => Some(*check),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>()
            .and_then(|checks| checks.into_iter().max())
            .map_or(Budget::Undecided, |check| Budget::At { check })
    }

    /// The check schedule the converged matrix trains on: the one set by hand (`--budget`),
    /// else the check's budget once known.
    pub(super) fn matrix_check(&self) -> Option<u64> {
        if let Some(epochs) = self.budget_epochs {
            return (1..=self.doublings).find(|&k| self.check_epochs(k) == epochs);
        }
        match self.budget() {
            Budget::At { check } => Some(check),
            _ => None,
        }
    }

    /// Epochs of the converged matrix when it is longer than the plan's own schedule.
    pub(super) fn converged_epochs(&self) -> Option<u64> {
        self.matrix_check()
            .filter(|&check| check > 0)
            .map(|check| self.check_epochs(check))
    }

    /// Every run of the converged matrix (none until the budget is known and longer than the
    /// plan's): the main methods seed by seed, then the others.
    pub(super) fn converged_runs(&self) -> Vec<Run> {
        let Some(check) = self.matrix_check().filter(|&check| check > 0) else {
            return Vec::new();
        };
        let (main, others) = method_groups();
        [main, others]
            .iter()
            .flat_map(|methods| self.seed_by_seed_pairs(methods))
            .map(|(seed, method)| self.converged_run(method, seed, check))
            .collect()
    }

    /// `method` and `seed` on the `check`-th schedule: the check run itself for seed 0 of a
    /// checked method, otherwise `<method>-s<seed>-e<epochs>`.
    fn converged_run(&self, method: &str, seed: u64, check: u64) -> Run {
        if seed == 0 && LONG_METHODS.contains(&method) {
            return Run {
                converged: true,
                ..self.check_run(method, check)
            };
        }
        let epochs = self.check_epochs(check);
        Run {
            method: method.into(),
            seed,
            dir: self.converged_dir(method, seed, epochs),
            epochs,
            check: 0,
            converged: true,
        }
    }

    fn converged_dir(&self, method: &str, seed: u64, epochs: u64) -> PathBuf {
        self.out.join(format!("{method}-s{seed}-e{epochs}"))
    }
}

/// One line saying what the check has decided about the budget (none without a check), and
/// which methods it leaves out because their runs collapsed.
pub(super) fn budget_line(plan: &Plan) -> String {
    let verdict = verdict(plan);
    let mut line = match (plan.budget_epochs, plan.budget()) {
        (_, Budget::NoCheck) => return String::new(),
        (Some(epochs), _) => format!(
            "Budget set by hand (--budget): {epochs} epochs; every method and seed trains on it. \
             The check's criterion: {verdict}\n"
        ),
        (None, Budget::At { check }) if check > 0 => {
            format!("Converged budget: {verdict}; every method and seed trains on it\n")
        }
        (None, _) => format!("Converged budget: {verdict}\n"),
    };
    let left_out = plan.collapsed_checks();
    if !left_out.is_empty() {
        line.push_str(&format!(
            "Left out of the budget, their check's runs having collapsed: {} (they train on the \
             budget all the same; their longer checks come after the converged matrix)\n",
            left_out.join(", ")
        ));
    }
    line
}

/// What the check's criterion has decided about the budget.
fn verdict(plan: &Plan) -> String {
    match plan.budget() {
        Budget::NoCheck => String::new(),
        Budget::At { check: 0 } => format!(
            "the plan's own {} epochs (doubling changes no checked method's seed-0 top-1 by \
             {DOUBLING_POINTS} points)",
            plan.epochs
        ),
        Budget::At { check } => format!(
            "{} epochs (doubling it changes no checked method's seed-0 top-1 by \
             {DOUBLING_POINTS} points)",
            plan.check_epochs(check)
        ),
        Budget::Undecided => "not known until the checks under way finish".into(),
        Budget::Collapsed => "none; every checked method's runs collapsed".into(),
        Budget::NotWithin { epochs } => format!(
            "none up to {epochs} epochs (a method still moved by {DOUBLING_POINTS} points or \
             more); a larger --doublings lengthens the check"
        ),
    }
}

/// The report's section on the converged matrix: the same tables as the plan's own, over the
/// runs finished on the converged budget (empty while there is none).
pub(super) fn section(plan: &Plan, runs: &[Finished]) -> (String, Option<serde_json::Value>) {
    let Some(epochs) = plan.converged_epochs() else {
        return (String::new(), None);
    };
    let planned = plan.converged_runs().len();
    let (table, _) = report::method_table(plan, runs);
    let (differences_md, differences) = report::differences_table(runs);
    let title = match plan.budget_epochs {
        Some(_) => "the budget set by hand (--budget)",
        None => "the converged budget",
    };
    let mut md = format!(
        "\n## At {title}: {epochs} epochs\n\n{} of {planned} runs finished.\n\n{table}",
        runs.len()
    );
    md.push_str(&differences_md);
    md.push_str(&report::plateau_line(runs));
    let json = serde_json::json!({
        "epochs": epochs,
        "runs": report::per_run_json(runs),
        "differences": differences,
    });
    (md, Some(json))
}

#[cfg(test)]
mod tests {
    use super::super::Repro;
    use super::super::tests::{doubling_plan, doubling_plan_settings, finish};
    use super::*;

    fn name(run: &Run) -> &str {
        run.dir.file_name().and_then(|n| n.to_str()).unwrap()
    }

    /// Seed 0 of every checked method on the plan's 10 epochs and the checks' 20 and 40.
    fn checks(dir: &std::path::Path, top1: [[f64; 3]; 3]) {
        for (method, values) in LONG_METHODS.iter().zip(top1) {
            finish(&dir.join(format!("{method}-s0")), values[0], 10);
            finish(&dir.join(format!("{method}-long")), values[1], 20);
            finish(&dir.join(format!("{method}-long-40")), values[2], 40);
        }
    }

    /// The budget is the longest schedule any checked method needs; unknown while a check
    /// is missing; none when a method still moves on the longest schedule allowed.
    #[test]
    fn the_budget_is_the_longest_any_method_needs() {
        let dir = std::env::temp_dir().join(format!("repro-budget-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        assert_eq!(plan.budget(), Budget::Undecided);
        // repopt converges at 10, plain at 20, repvgg at 20.
        checks(
            &dir,
            [[80.0, 80.2, 80.3], [78.0, 79.0, 79.4], [79.0, 80.0, 79.7]],
        );
        assert_eq!(plan.budget(), Budget::At { check: 1 });
        assert_eq!(plan.converged_epochs(), Some(20));
        // repvgg still moves from 20 to 40, the longest schedule of two doublings.
        finish(&dir.join("repvgg-long-40"), 81.0, 40);
        assert_eq!(plan.budget(), Budget::NotWithin { epochs: 40 });
        assert!(plan.converged_runs().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The converged matrix: every method and seed on the budget, main methods first, seed 0
    /// of the checked methods being their check runs; the plan's runs end with it.
    #[test]
    fn the_converged_matrix_reuses_the_check_runs() {
        let dir = std::env::temp_dir().join(format!("repro-conv-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        checks(
            &dir,
            [[80.0, 81.0, 81.2], [78.0, 79.0, 79.4], [79.0, 80.0, 80.3]],
        );
        let matrix = plan.converged_runs();
        assert_eq!(matrix.len(), 3 * super::super::METHODS.len());
        let labels: Vec<&str> = matrix[..6].iter().map(name).collect();
        assert_eq!(
            labels,
            [
                "repopt-long",
                "plain-long",
                "repvgg-long",
                "repopt-s1-e20",
                "plain-s1-e20",
                "repvgg-s1-e20"
            ]
        );
        assert_eq!(name(&matrix[9]), "repopt-ones-s0-e20");
        assert!(matrix.iter().all(|r| r.epochs == 20 && r.converged));
        assert_eq!(matrix[3].label(), "repopt (20 epochs)");
        // In the plan each folder appears once: the check runs keep their place.
        let runs = plan.runs();
        let dirs: std::collections::HashSet<_> = runs.iter().map(|r| r.dir.clone()).collect();
        assert_eq!(dirs.len(), runs.len());
        assert!(
            runs.iter()
                .rev()
                .take(15)
                .all(|r| r.converged && r.check == 0)
        );
        assert_eq!(name(runs.last().unwrap()), "mults-only-s2-e20");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The int8 study's view: the budget and the finished runs of its matrix, seed by seed,
    /// read from the folder's recorded plan; an error while there is no budget.
    #[test]
    fn the_study_reads_the_finished_converged_runs() {
        let dir = std::env::temp_dir().join(format!("repro-study-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        plan.record().unwrap();
        let undecided = super::super::finished_converged(&dir).unwrap_err();
        assert!(undecided.contains("not known"), "{undecided}");
        checks(
            &dir,
            [[80.0, 81.0, 81.2], [78.0, 79.0, 79.4], [79.0, 80.0, 80.3]],
        );
        finish(&dir.join("repopt-ones-s0-e20"), 80.0, 20);
        finish(&dir.join("plain-s1-e20"), 79.0, 20);
        let (epochs, runs) = super::super::finished_converged(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(epochs, 20);
        let found: Vec<(&str, u64, &str)> = runs
            .iter()
            .map(|(m, s, d)| (m.as_str(), *s, d.file_name().unwrap().to_str().unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                ("repopt", 0, "repopt-long"),
                ("plain", 0, "plain-long"),
                ("repvgg", 0, "repvgg-long"),
                ("repopt-ones", 0, "repopt-ones-s0-e20"),
                ("plain", 1, "plain-s1-e20"),
            ]
        );
    }

    /// Gives the finished run in `dir` a training curve that falls by 10 points in one epoch.
    fn collapse(dir: &std::path::Path) {
        let path = dir.join("metrics.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let mut csv = format!("{},train_top1\n", lines.next().unwrap());
        for (i, line) in lines.enumerate() {
            let train = if i == 1 { 50.0 } else { 60.0 };
            csv.push_str(&format!("{line},{train}\n"));
        }
        std::fs::write(path, csv).unwrap();
    }

    /// A method whose deciding doubling has a collapsed run is left out of the budget: the
    /// others decide it, the method trains on it, and its longer checks wait for the budget and
    /// come after the converged matrix; with every checked method collapsed there is no budget.
    #[test]
    fn a_collapsed_check_leaves_the_budget_to_the_others() {
        let dir =
            std::env::temp_dir().join(format!("repro-collapsed-check-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        // repvgg moves by 1 and then by −2: no budget up to 40 epochs while it counts.
        checks(
            &dir,
            [[80.0, 81.0, 81.2], [78.0, 79.0, 79.4], [79.0, 80.0, 78.0]],
        );
        assert_eq!(plan.budget(), Budget::NotWithin { epochs: 40 });
        collapse(&dir.join("repvgg-long"));
        // Its longer check, once unfinished, waits for the budget, which waits for plain's.
        std::fs::remove_file(dir.join("plain-long-40/outcome.json")).unwrap();
        assert_eq!(plan.budget(), Budget::Undecided);
        assert!(plan.runs().iter().any(|r| name(r) == "repvgg-long-40"));
        std::fs::remove_file(dir.join("repvgg-long-40/outcome.json")).unwrap();
        assert!(plan.runs().iter().all(|r| name(r) != "repvgg-long-40"));
        finish(&dir.join("plain-long-40"), 79.4, 40);
        assert_eq!(plan.collapsed_checks(), ["repvgg"]);
        assert_eq!(plan.budget(), Budget::At { check: 1 });
        let line = budget_line(&plan);
        assert!(
            line.contains("20 epochs") && line.contains("collapsed: repvgg"),
            "{line}"
        );
        let runs = plan.runs();
        let position = |folder: &str| runs.iter().position(|r| name(r) == folder).unwrap();
        assert!(position("repvgg-s1-e20") < position("repvgg-long-40"));
        assert_eq!(name(runs.last().unwrap()), "repvgg-long-40");
        // A collapse in a stable method's runs leaves no method to decide the budget.
        collapse(&dir.join("repopt-long"));
        collapse(&dir.join("plain-s0"));
        assert_eq!(plan.budget(), Budget::Collapsed);
        assert!(budget_line(&plan).contains("none"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A budget set by hand trains the matrix on it while the check's criterion is not met
    /// there; it must be a schedule of the check, is kept in plan.json, and only a longer one
    /// replaces it.
    #[test]
    fn a_budget_set_by_hand_trains_the_matrix_before_the_verdict() {
        let dir = std::env::temp_dir().join(format!("repro-by-hand-{}", std::process::id()));
        let by_hand = |budget: Option<u64>| {
            Plan::new(&Repro {
                budget,
                ..doubling_plan_settings(&dir)
            })
        };
        let wrong = by_hand(Some(30)).unwrap_err();
        assert!(
            wrong.contains("--budget 30") && wrong.contains("(20, 40)"),
            "{wrong}"
        );
        let plan = by_hand(Some(40)).unwrap();
        // plain still moves from 20 to 40: no budget by the criterion.
        checks(
            &dir,
            [[80.0, 81.0, 81.2], [78.0, 79.0, 80.4], [79.0, 80.0, 80.3]],
        );
        assert_eq!(plan.budget(), Budget::NotWithin { epochs: 40 });
        assert_eq!(plan.converged_epochs(), Some(40));
        let matrix = plan.converged_runs();
        assert_eq!(name(&matrix[1]), "plain-long-40");
        assert_eq!(name(&matrix[3]), "repopt-s1-e40");
        let line = budget_line(&plan);
        assert!(
            line.starts_with("Budget set by hand (--budget): 40 epochs")
                && line.contains("criterion: none up to 40 epochs"),
            "{line}"
        );
        let (md, _) = section(&plan, &[]);
        assert!(
            md.contains("## At the budget set by hand (--budget): 40 epochs"),
            "{md}"
        );
        plan.record().unwrap();
        assert_eq!(by_hand(None).unwrap().budget_epochs, Some(40));
        let shorter = by_hand(Some(20)).unwrap_err();
        assert!(shorter.contains("only a longer one"), "{shorter}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// No converged matrix while the plan's own schedule is the budget.
    #[test]
    fn a_converged_plan_adds_nothing() {
        let dir = std::env::temp_dir().join(format!("repro-own-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        checks(
            &dir,
            [[80.0, 80.2, 80.3], [78.0, 78.1, 78.0], [79.0, 79.4, 79.7]],
        );
        assert_eq!(plan.budget(), Budget::At { check: 0 });
        assert!(plan.converged_runs().is_empty());
        assert!(budget_line(&plan).contains("the plan's own 10 epochs"));
        let unchecked = Plan {
            doublings: 0,
            ..plan.clone()
        };
        assert_eq!(budget_line(&unchecked), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
