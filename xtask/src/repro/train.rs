//! Training the planned runs: workers side by side, each run continued from its checkpoint,
//! and the int8 reports of a finished run of the study.

use std::path::Path;
use std::process::Command;

use super::{Plan, Run, queue::Queue};

/// Trains every run `plan` names with `jobs` workers; the first failure stops the hand-out. A
/// finished convergence check can call for a longer schedule: the queue plans again whenever
/// it runs dry, so a free worker takes such a run while the others still train.
pub(super) fn train_planned(
    plan: &Plan,
    jobs: u64,
    data: &str,
    repopt: &Path,
) -> Result<(), String> {
    let queue = Queue::new(plan, jobs as usize);
    let threads = threads_per_job(jobs);
    let scales = plan.hs_dir().join("scales.safetensors");
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(run) = queue.next(&scales) {
                    let result = match run.claim() {
                        Ok(true) => {
                            let result = train(&run, plan, data, &scales, repopt, threads);
                            run.release();
                            result
                        }
                        Ok(false) => {
                            println!(
                                "== {} seed {}: trained by another process",
                                run.label(),
                                run.seed
                            );
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    queue.done(&run, result);
                }
            });
        }
    });
    queue.result()
}

/// The cores of this machine shared among `jobs` runs side by side, at least one each.
fn threads_per_job(jobs: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / jobs.max(1) as usize).max(1)
}

/// Trains `run` (continuing it if it has checkpoints) on `threads` compute threads, its output
/// in `<run folder>.log`.
fn train(
    run: &Run,
    plan: &Plan,
    data: &str,
    scales: &Path,
    repopt: &Path,
    threads: usize,
) -> Result<(), String> {
    let log_path = run.dir.with_extension("log");
    println!(
        "== {} seed {}: {} of {} epochs done; log {}",
        run.label(),
        run.seed,
        run.epochs_done(),
        run.epochs,
        log_path.display()
    );
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(repopt);
    command
        .args(["--threads".to_string(), threads.to_string()])
        .args(run.args(plan, data, &scales.display().to_string()))
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(err);
    crate::run(command).map_err(|e| format!("{e}; see {}", log_path.display()))?;
    println!("== {} seed {} finished", run.label(), run.seed);
    if !plan.quick && crate::ptq::studies(&run.method) {
        quantize(run, repopt, log, &log_path);
    }
    Ok(())
}

/// The int8 reports of a finished run of the study, made while its model is on this machine
/// (no export keeps models): every scheme (`quantization.json`), then int8 weights alone, whole
/// and layer by layer ([`WEIGHTS_ONLY_REPORT`](crate::ptq::WEIGHTS_ONLY_REPORT)). Their output
/// goes to the run's log; a failure is reported and leaves the run finished (`cargo xtask ptq`
/// makes the first report later).
fn quantize(run: &Run, repopt: &Path, log: std::fs::File, log_path: &Path) {
    let images = crate::ptq::CALIBRATION_IMAGES;
    let reports = [
        (
            "int8 report",
            crate::ptq::quantize_command(repopt, &run.dir, images),
        ),
        (
            "int8 weights-only report",
            crate::ptq::weights_only_command(repopt, &run.dir, images),
        ),
    ];
    for (what, mut command) in reports {
        let quantized = log.try_clone().map_err(|e| e.to_string()).and_then(|out| {
            let err = log.try_clone().map_err(|e| e.to_string())?;
            command.stdout(out).stderr(err);
            crate::run(command)
        });
        match quantized {
            Ok(()) => println!("== {} seed {}: {what} written", run.label(), run.seed),
            Err(e) => println!(
                "== {} seed {}: warning: no {what} ({e}; see {})",
                run.label(),
                run.seed,
                log_path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Repro, tests::settings};
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn jobs_share_the_cores_at_least_one_thread_each() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads_per_job(1), cores);
        assert_eq!(threads_per_job(2), (cores / 2).max(1));
        assert_eq!(threads_per_job(cores as u64 * 4), 1);
    }

    /// A stand-in for `repopt` at `dir/repopt` that appends its arguments to `dir/calls` and
    /// fails `repopt quantize` when `quantize_fails`.
    #[cfg(unix)]
    fn fake_repopt(dir: &Path, quantize_fails: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let (script, calls) = (dir.join("repopt"), dir.join("calls"));
        let exit = if quantize_fails { 1 } else { 0 };
        let text = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = quantize ] && exit {exit}\nexit 0\n",
            calls.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// In a full reproduction a finished run of the int8 study (RepOpt-VGG, RepVGG, plain) is
    /// quantized at once, its output in the run's log; other methods and the quick version are
    /// not, and a failed quantization leaves the run trained.
    #[cfg(unix)]
    #[test]
    fn a_finished_run_of_the_study_is_quantized_where_it_trained() {
        let root = std::env::temp_dir().join(format!("repro-int8-{}", std::process::id()));
        let calls = |dir: &Path| std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
        for (quick, quantize_fails) in [(false, false), (false, true), (true, false)] {
            let dir = root.join(format!("{quick}-{quantize_fails}"));
            let repopt = fake_repopt(&dir, quantize_fails);
            let plan = Plan::new(&Repro {
                quick,
                ..settings(dir.join("out"))
            })
            .unwrap();
            let runs = plan.runs();
            for method in ["repopt", "repopt-ones"] {
                let run = runs.iter().find(|r| r.method == method).unwrap();
                train(run, &plan, "D", Path::new("S"), &repopt, 3).unwrap();
            }
            let lines: Vec<String> = calls(&dir).lines().map(String::from).collect();
            let repopt_dir = plan.run_dir("repopt", 0);
            let quantized = format!(
                "quantize --run {} --calibration-images 1000",
                repopt_dir.display()
            );
            let weights_only = format!(
                "{quantized} --activations f32 --first-last int8 --per-layer --json {}",
                repopt_dir.join(crate::ptq::WEIGHTS_ONLY_REPORT).display()
            );
            let expected_calls = if quick { 2 } else { 4 };
            assert_eq!(lines.len(), expected_calls, "{lines:?}");
            assert_eq!(lines.contains(&weights_only), !quick, "{lines:?}");
            assert!(
                lines[0].starts_with("--threads 3 train --method repopt "),
                "{lines:?}"
            );
            assert_eq!(lines.contains(&quantized), !quick, "{lines:?}");
            assert!(
                lines
                    .last()
                    .unwrap()
                    .starts_with("--threads 3 train --method repopt-ones ")
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
