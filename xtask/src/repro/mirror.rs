//! `cargo xtask repro --mirror DIR`: the export of [`super::export`] repeated while the runs
//! train, every `--mirror-minutes` and once when they stop, so that a sitting's progress (each
//! run's records and newest checkpoint) outlives a machine that keeps nothing between sittings.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::{Plan, export};

/// Runs `work` while exporting `plan` into `dest` every `every`, and once more after `work`
/// returns (whatever it returns). An export that fails (a checkpoint replaced while it was
/// copied, a full disk) is reported and tried again at the next turn: it never stops training.
pub(super) fn mirrored<T>(
    plan: &Plan,
    dest: &Path,
    every: Duration,
    work: impl FnOnce() -> T,
) -> T {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            loop {
                let last = !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout));
                if let Err(e) = export::export(plan, dest) {
                    eprintln!("warning: --mirror {}: {e}", dest.display());
                }
                if last {
                    break;
                }
            }
        });
        let result = work();
        drop(stop);
        result
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::tests::settings;
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A temporary folder with a recorded plan in `out`: `(root, out, plan)`.
    fn fixture(name: &str) -> (PathBuf, PathBuf, Plan) {
        let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let out = root.join("out");
        let plan = Plan::new(&settings(&out)).unwrap();
        plan.record().unwrap();
        (root, out, plan)
    }

    fn checkpoint(run: &Path, epoch: u64) {
        for record in ["model", "optim", "scheduler"] {
            write(&run.join(format!("checkpoint/{record}-{epoch}.bpk")), "c");
        }
    }

    /// The mirror exports while the work runs, every `every`.
    #[test]
    fn the_mirror_exports_while_the_work_runs() {
        let (root, out, plan) = fixture("repro-mirror-turns");
        let (dest, run) = (root.join("dest"), out.join("repopt-s0"));
        write(&run.join("run.json"), "r");
        checkpoint(&run, 1);
        let seen = mirrored(&plan, &dest, Duration::from_millis(5), || {
            let waited = std::time::Instant::now();
            while !dest.join("repopt-s0/checkpoint/model-1.bpk").is_file() {
                if waited.elapsed() > Duration::from_secs(10) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            true
        });
        assert!(seen, "no export while the work ran");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Once the work returns, the mirror exports once more, whatever its period: it ends with
    /// the newest checkpoint, and the work's result is returned.
    #[test]
    fn the_mirror_ends_with_the_newest_checkpoint() {
        let (root, out, plan) = fixture("repro-mirror-end");
        let (dest, run) = (root.join("dest"), out.join("repopt-s0"));
        write(&run.join("run.json"), "r");
        let result = mirrored(&plan, &dest, Duration::from_secs(3600), || {
            checkpoint(&run, 2);
            7
        });
        assert_eq!(result, 7);
        assert!(dest.join("repopt-s0/checkpoint/optim-2.bpk").is_file());
        assert!(dest.join("plan.json").is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// An export that cannot be written is reported, not fatal: the work runs to its end.
    #[test]
    fn a_failed_export_does_not_stop_the_work() {
        let (root, out, plan) = fixture("repro-mirror-fails");
        write(&out.join("repopt-s0/run.json"), "r");
        let blocked = root.join("a-file");
        write(&blocked, "not a folder");
        let result = mirrored(
            &plan,
            &blocked.join("dest"),
            Duration::from_millis(1),
            || {
                std::thread::sleep(Duration::from_millis(20));
                7
            },
        );
        assert_eq!(result, 7);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
