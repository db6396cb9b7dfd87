//! The report of a reproduction: the table of methods, the differences with their
//! intervals, the convergence checks, results.json, the pictures and their copies in docs/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stats;

use super::outcome::{Outcome, late_gain, read_outcome, test_curve};
use super::{DOUBLING_POINTS, LEARNED_TOP1, LONG_METHODS, METHODS, PLATEAU_POINTS, Plan, Run};
use super::{collapses, converged, dips};

/// The table of the convergence check: seed 0 of each method of the check on the plan's
/// schedule and on every longer one finished, the change each lengthening made, and whether
/// the budget criterion holds: some lengthening changed top-1 by less than [`DOUBLING_POINTS`].
fn convergence_check(plan: &Plan) -> String {
    let schedules: Vec<u64> = (0..=plan.doublings).map(|k| plan.check_epochs(k)).collect();
    let mut out = format!(
        "\nConvergence check, seed 0: the same run on longer schedules (top-1 %, in brackets the \
         change from the schedule before)\n\n| method |{} last-10 % gain of the longest |\n|---|{}---|\n",
        schedules
            .iter()
            .map(|e| format!(" {e} epochs |"))
            .collect::<String>(),
        "---|".repeat(schedules.len()),
    );
    let mut verdicts = Vec::new();
    let collapsed = plan.collapsed_checks();
    for method in LONG_METHODS {
        let top1: Vec<Option<f64>> = (0..=plan.doublings)
            .map(|k| plan.check_top1(method, k))
            .collect();
        let Some(longest) = (1..top1.len()).rev().find(|&k| top1[k].is_some()) else {
            continue;
        };
        let cells: String = (0..top1.len())
            .map(
                |k| match (top1[k], k.checked_sub(1).and_then(|j| top1[j])) {
                    (Some(t), Some(before)) => format!(" {t:.2} ({:+.2}) |", t - before),
                    (Some(t), None) => format!(" {t:.2} |"),
                    (None, _) => " – |".into(),
                },
            )
            .collect();
        let late = test_curve(&plan.check_dir(method, longest as u64))
            .ok()
            .and_then(|curve| late_gain(&curve))
            .map_or("?".to_string(), |g| format!("{g:+.2}"));
        out.push_str(&format!("| {method} |{cells} {late} |\n"));
        let mut verdict = budget_verdict(method, &schedules, &top1);
        if collapsed.contains(&method) {
            verdict.insert_str(
                verdict.len() - 1,
                "; a run of the deciding doubling collapsed: left out of the budget",
            );
        }
        verdicts.push(verdict);
    }
    if verdicts.is_empty() {
        return String::new();
    }
    out.push_str(&format!(
        "\nBudget criterion (a lengthening changes seed 0's top-1 by less than {DOUBLING_POINTS} \
         points):\n\n{}\n{}",
        verdicts.concat(),
        converged::budget_line(plan)
    ));
    out
}

/// One line of the budget criterion for `method`: the first schedule whose doubling changed
/// top-1 by less than [`DOUBLING_POINTS`], or that none has yet.
fn budget_verdict(method: &str, schedules: &[u64], top1: &[Option<f64>]) -> String {
    let gains: Vec<(usize, f64)> = (1..top1.len())
        .filter_map(|k| Some((k, top1[k]? - top1[k - 1]?)))
        .collect();
    let met = gains.iter().find(|(_, g)| g.abs() < DOUBLING_POINTS);
    match (met, gains.last()) {
        (Some((k, g)), _) => format!(
            "* {method}: met at {} epochs ({} epochs change it by {g:+.2})\n",
            schedules[k - 1],
            schedules[*k]
        ),
        (None, Some((k, g))) => format!(
            "* {method}: NOT met up to {} epochs (the last lengthening: {g:+.2})\n",
            schedules[*k]
        ),
        (None, None) => format!("* {method}: not known yet\n"),
    }
}

/// One finished run in the report.
pub(super) struct Finished {
    pub(super) method: String,
    pub(super) seed: u64,
    pub(super) outcome: Outcome,
    pub(super) curve: Vec<f64>,
}

/// The runs of the plan's own matrix (every method and seed on its schedule).
fn plan_matrix(plan: &Plan) -> Vec<Run> {
    plan.runs()
        .into_iter()
        .filter(|r| r.method != "hs" && r.check == 0 && !r.converged)
        .collect()
}

/// The finished runs among `runs`, with their outcomes and curves.
fn collect(runs: Vec<Run>) -> Result<Vec<Finished>, String> {
    let mut all = Vec::new();
    for run in runs.into_iter().filter(Run::finished) {
        all.push(Finished {
            outcome: read_outcome(&run.dir)?,
            curve: test_curve(&run.dir)?,
            method: run.method,
            seed: run.seed,
        });
    }
    Ok(all)
}

/// Top-1 of every finished run of `method`.
fn top1(runs: &[Finished], method: &str) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.method == method)
        .map(|r| r.outcome.top1)
        .collect()
}

/// The table, results.json and pictures of the finished plan (and copies in docs/).
pub(super) fn report(plan: &Plan, docs: bool, repopt: &Path) -> Result<(), String> {
    let runs = collect(plan_matrix(plan))?;
    let (mut table, failures) = method_table(plan, &runs);
    let planned = plan_matrix(plan).len();
    if runs.len() < planned {
        table.insert_str(
            0,
            &format!(
                "Partial report: {} of {planned} runs finished.\n\n",
                runs.len()
            ),
        );
    }
    let (differences_md, differences) = differences_table(&runs);
    table.push_str(&differences_md);
    table.push_str(&plateau_line(&runs));
    table.push_str(&convergence_check(plan));
    let (collapses_md, collapses_json) = collapses::section(plan);
    table.push_str(&collapses_md);
    let (dips_md, dips_json) = dips::section(plan);
    table.push_str(&dips_md);
    let (converged_md, converged_json) = converged::section(plan, &collect(plan.converged_runs())?);
    table.push_str(&converged_md);
    table.push_str(&scales_section(plan, repopt)?);
    let out = &plan.out;
    let summary = out.join("results.md");
    crate::write_text(&summary, &table)?;
    let json = out.join("results.json");
    crate::write_text(
        &json,
        &results_json(
            plan,
            &runs,
            differences,
            converged_json,
            [collapses_json, dips_json],
        ),
    )?;
    let pngs = pictures(plan, repopt)?;
    println!("\n{table}");
    for png in &pngs {
        println!("picture {}", png.display());
    }
    if docs {
        copy_to_docs(Path::new("docs"), &summary, &json, &pngs)?;
    }
    if !failures.is_empty() {
        return Err(format!(
            "methods that did not learn (chance is 10 %): {}",
            failures.join("; ")
        ));
    }
    Ok(())
}

/// Per method: top-1 mean ± sample std, seeds, range, the largest late gain, time per epoch and
/// peak memory; and, in the quick version, the methods that stayed near chance.
pub(super) fn method_table(plan: &Plan, runs: &[Finished]) -> (String, Vec<String>) {
    let mut table = String::from(
        "| method | top-1 (%) mean ± std | seeds | min – max | last-10 % gain (max) | s / epoch | peak memory (MiB) |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (method, description) in METHODS {
        let mine: Vec<&Finished> = runs.iter().filter(|r| r.method == method).collect();
        let values = top1(runs, method);
        if values.is_empty() {
            table.push_str(&format!("| {description} | – | 0 | – | – | – | – |\n"));
            continue;
        }
        let max_gain = mine
            .iter()
            .filter_map(|r| late_gain(&r.curve))
            .fold(f64::NEG_INFINITY, f64::max);
        let seconds: Vec<f64> = mine.iter().map(|r| r.outcome.seconds_per_epoch).collect();
        let memory = mine
            .iter()
            .filter_map(|r| r.outcome.peak_memory_mib)
            .fold(0.0, f64::max);
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        table.push_str(&format!(
            "| {description} | {:.2} ± {:.2} | {} | {lo:.2} – {hi:.2} | {max_gain:+.2} | {:.1} | {memory:.0} |\n",
            stats::mean(&values),
            stats::std(&values),
            values.len(),
            stats::mean(&seconds),
        ));
        if plan.quick && values.iter().any(|&v| v < LEARNED_TOP1) {
            failures.push(format!("{method}: top-1 {values:?}"));
        }
    }
    (table, failures)
}

/// RepOpt-VGG minus each other method: Welch's 95 % interval over the seeds, and the paired one
/// over the seeds both have (a seed shares data order and, where possible, initial weights), as a
/// table and as JSON.
pub(super) fn differences_table(runs: &[Finished]) -> (String, Vec<serde_json::Value>) {
    let mut table = String::from(
        "\n| difference | estimate (points) | 95 % CI (Welch) | df | 95 % CI (paired by seed) | pairs |\n\
         |---|---|---|---|---|---|\n",
    );
    let repopt = top1(runs, "repopt");
    let mut json = Vec::new();
    for (other, _) in METHODS.iter().skip(1) {
        let Some(d) = stats::welch(&repopt, &top1(runs, other)) else {
            continue;
        };
        let pairs = seed_pairs(runs, "repopt", other);
        let paired = stats::paired(&pairs);
        let paired_cell =
            paired.map_or("–".into(), |p| format!("[{:+.2}, {:+.2}]", p.low, p.high));
        table.push_str(&format!(
            "| RepOpt − {other} | {:+.2} | [{:+.2}, {:+.2}] | {:.1} | {paired_cell} | {} |\n",
            d.estimate,
            d.low,
            d.high,
            d.df,
            pairs.len()
        ));
        json.push(serde_json::json!({
            "minus": other, "estimate": d.estimate, "ci95": [d.low, d.high], "df": d.df,
            "paired_ci95": paired.map(|p| [p.low, p.high]), "pairs": pairs.len(),
        }));
    }
    (table, json)
}

/// `(a, b)` top-1 of the seeds where both `a` and `b` have finished.
fn seed_pairs(runs: &[Finished], a: &str, b: &str) -> Vec<(f64, f64)> {
    let of = |method: &str, seed: u64| {
        runs.iter()
            .find(|r| r.method == method && r.seed == seed)
            .map(|r| r.outcome.top1)
    };
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
        .into_iter()
        .filter_map(|seed| Some((of(a, seed)?, of(b, seed)?)))
        .collect()
}

/// Whether every run met the plateau criterion, and which did not.
pub(super) fn plateau_line(runs: &[Finished]) -> String {
    let unconverged: Vec<String> = runs
        .iter()
        .filter(|r| late_gain(&r.curve).is_some_and(|g| g >= PLATEAU_POINTS))
        .map(|r| format!("{} seed {}", r.method, r.seed))
        .collect();
    format!(
        "\nConvergence (test top-1 gain over the last 10 % of epochs < {PLATEAU_POINTS} points): {}\n",
        if unconverged.is_empty() {
            "met by every run".to_string()
        } else {
            format!("NOT met by {}", unconverged.join(", "))
        }
    )
}

/// The scales the search started from and the searched ones, per block (`repopt inspect-scales`).
fn scales_section(plan: &Plan, repopt: &Path) -> Result<String, String> {
    let repopt = std::path::absolute(repopt).map_err(|e| format!("{}: {e}", repopt.display()))?;
    let mut section = String::from("\nScales per block (mean ± std [min, max] over channels)\n");
    for (title, file) in [
        ("initial", "scales-initial.safetensors"),
        ("searched", "scales.safetensors"),
    ] {
        let path = plan.hs_dir().join(file);
        if !path.is_file() {
            continue;
        }
        // Named from the reproduction's folder, so that the report reads the same wherever
        // that folder is.
        let relative = path.strip_prefix(&plan.out).unwrap_or(&path);
        let output = Command::new(&repopt)
            .current_dir(&plan.out)
            .arg("inspect-scales")
            .arg(relative)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", repopt.display()))?;
        section.push_str(&format!(
            "\n{title}:\n\n```text\n{}```\n",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(section)
}

/// results.json: the protocol, every run's top-1 and per-epoch curve, and the differences.
/// The converged matrix (`converged`) is its own entry, `null` until the budget is known;
/// `collapses` holds every finished run's training collapses ([`collapses`]) and its
/// test-top-1 dips ([`dips`]), in that order.
fn results_json(
    plan: &Plan,
    runs: &[Finished],
    differences: Vec<serde_json::Value>,
    converged: Option<serde_json::Value>,
    [collapses, dips]: [serde_json::Value; 2],
) -> String {
    let long: Vec<serde_json::Value> = plan
        .runs()
        .iter()
        .filter(|r| r.check > 0)
        .filter_map(|r| {
            let outcome = read_outcome(&r.dir).ok()?;
            Some(serde_json::json!({
                "method": r.method, "seed": 0, "epochs": r.epochs, "top1": outcome.top1,
                "test_top1_per_epoch": test_curve(&r.dir).ok(),
            }))
        })
        .collect();
    let document = serde_json::json!({
        "protocol": {
            "data": if plan.quick { "8,000 CIFAR-10 training images, 1,000 test images" }
                    else { "all 50,000 CIFAR-10 training images, the 10,000 test images" },
            "epochs": plan.epochs, "hs_epochs": plan.hs_epochs, "seeds": plan.seeds,
            "long_epochs": plan.long_epochs, "doublings": plan.doublings,
            "flags": plan.common("DATA"),
            "plateau_points": PLATEAU_POINTS,
            "doubling_points": DOUBLING_POINTS,
            "collapse_points": collapses::COLLAPSE_POINTS,
            "dip_points": dips::DIP_POINTS,
        },
        "runs": per_run_json(runs),
        "long_runs": long,
        "differences": differences,
        "converged": converged,
        "collapses": collapses,
        "dips": dips,
    });
    serde_json::to_string_pretty(&document).expect("json")
}

/// Every run's top-1, time, memory and per-epoch curve.
pub(super) fn per_run_json(runs: &[Finished]) -> Vec<serde_json::Value> {
    runs.iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method, "seed": r.seed, "top1": r.outcome.top1,
                "seconds_per_epoch": r.outcome.seconds_per_epoch,
                "peak_memory_mib": r.outcome.peak_memory_mib,
                "test_top1_per_epoch": r.curve,
            })
        })
        .collect()
}

/// Copies of the report in `docs`: the table as `results-table.md`, `results.json`, and each
/// picture `NAME.png` as `results-NAME.png`.
fn copy_to_docs(docs: &Path, summary: &Path, json: &Path, pngs: &[PathBuf]) -> Result<(), String> {
    let mut copies = vec![
        (summary.to_path_buf(), docs.join("results-table.md")),
        (json.to_path_buf(), docs.join("results.json")),
    ];
    for png in pngs {
        let name = png.file_name().unwrap_or_default().to_string_lossy();
        copies.push((png.clone(), docs.join(format!("results-{name}"))));
    }
    for (from, to) in copies {
        std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    println!(
        "copied the table, results.json and pictures into {}",
        docs.display()
    );
    Ok(())
}

/// The report's pictures, as PNGs in `--out`: the curves of the finished runs (each method's
/// seeds as their mean and range) as `curves.png`, those of the converged matrix's as
/// `curves-EPOCHS.png` once one of them has finished, and the searched scales as `scales.png`.
fn pictures(plan: &Plan, repopt: &Path) -> Result<Vec<PathBuf>, String> {
    let curves_png = plan.out.join("curves.png");
    let scales_png = plan.out.join("scales.png");
    if !plot_curves(&plan_matrix(plan), &curves_png, repopt)? {
        return Err(format!(
            "no run of the matrix has finished in {}: nothing to report yet",
            plan.out.display()
        ));
    }
    let mut pngs = vec![curves_png];
    if let Some(epochs) = plan.converged_epochs() {
        let png = plan.out.join(format!("curves-{epochs}.png"));
        if plot_curves(&plan.converged_runs(), &png, repopt)? {
            pngs.push(png);
        }
    }
    let mut plot = Command::new(repopt);
    plot.arg("plot")
        .arg("--scales")
        .arg(plan.hs_dir().join("scales.safetensors"))
        .arg("--out")
        .arg(&scales_png);
    crate::run(plot)?;
    pngs.push(scales_png);
    Ok(pngs)
}

/// The curves of the finished runs among `runs` as a PNG at `png`, the seeds of a method drawn
/// as their mean and range; `false` when none has finished (runs under way have no metrics.csv
/// yet).
fn plot_curves(runs: &[Run], png: &Path, repopt: &Path) -> Result<bool, String> {
    let (dirs, labels): (Vec<String>, Vec<&str>) = runs
        .iter()
        .filter(|r| r.dir.join("metrics.csv").is_file())
        .map(|r| (r.dir.display().to_string(), r.method.as_str()))
        .unzip();
    if dirs.is_empty() {
        return Ok(false);
    }
    crate::plot(repopt, "--runs", &dirs, &labels, png)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doubling_plan, finish};
    use super::*;

    /// The convergence check lists seed 0 on every finished schedule with the change from the
    /// one before, and says per method where the budget criterion is met.
    #[test]
    fn the_convergence_check_follows_each_lengthening() {
        let dir = std::env::temp_dir().join(format!("repro-long-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        finish(&dir.join("repopt-long"), 80.5, 20);
        finish(&dir.join("repopt-long-40"), 80.8, 40);
        finish(&dir.join("plain-long"), 79.0, 20);
        finish(&dir.join("plain-long-40"), 80.0, 40);
        finish(&dir.join("repopt-s0"), 79.0, 10);
        finish(&dir.join("plain-s0"), 78.0, 10);
        finish(&dir.join("repvgg-s0"), 79.5, 10);
        let table = convergence_check(&plan);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            table.contains("| method | 10 epochs | 20 epochs | 40 epochs | last-10 % gain"),
            "{table}"
        );
        assert!(
            table.contains("| repopt | 79.00 | 80.50 (+1.50) | 80.80 (+0.30) | +4.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| plain | 78.00 | 79.00 (+1.00) | 80.00 (+1.00) | +4.00 |"),
            "{table}"
        );
        assert!(!table.contains("| repvgg |"), "{table}");
        assert!(
            table.contains("* repopt: met at 20 epochs (40 epochs change it by +0.30)"),
            "{table}"
        );
        assert!(
            table.contains("* plain: NOT met up to 40 epochs (the last lengthening: +1.00)"),
            "{table}"
        );
    }

    #[test]
    fn docs_copies_take_results_names() {
        let dir = std::env::temp_dir().join(format!("repro-docs-{}", std::process::id()));
        let (out, docs) = (dir.join("out"), dir.join("docs"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&docs).unwrap();
        let names = [
            "results.md",
            "results.json",
            "curves.png",
            "curves-640.png",
            "scales.png",
        ];
        for name in names {
            std::fs::write(out.join(name), name).unwrap();
        }
        let pngs: Vec<PathBuf> = names[2..].iter().map(|n| out.join(n)).collect();
        copy_to_docs(&docs, &out.join(names[0]), &out.join(names[1]), &pngs).unwrap();
        for (copy, from) in [
            ("results-table.md", "results.md"),
            ("results.json", "results.json"),
            ("results-curves.png", "curves.png"),
            ("results-curves-640.png", "curves-640.png"),
            ("results-scales.png", "scales.png"),
        ] {
            assert_eq!(std::fs::read_to_string(docs.join(copy)).unwrap(), from);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
