//! `cargo xtask repro --export DIR`: a reproduction under way reduced to what another machine
//! needs to continue it.
//!
//! For every run: its settings, outcome, metrics, searched scales and log. For a run not yet
//! finished also Burn's per-epoch metric logs (`train/`, `valid/`: the curves of the epochs
//! trained so far) and its newest complete checkpoint (`checkpoint/{model,optim,scheduler}-N.bpk`),
//! from which `cargo xtask repro --out DIR` continues it. Trained models (`model.bpk`), older
//! checkpoints and Burn's application log are left out. Exporting again into the same folder
//! replaces what it exported before: a run's older checkpoint and the metric logs of a run that
//! has since finished are removed.

use std::path::{Path, PathBuf};

use super::{Plan, Run, model_checkpoints};

/// Burn's metric logs of a run under way (`<split>/epoch-N/<metric>.log`).
const METRIC_LOGS: [&str; 2] = ["train", "valid"];

/// The checkpoint folder of a run.
const CHECKPOINTS: &str = "checkpoint";

/// The files of a checkpoint, one per record.
const CHECKPOINT_RECORDS: [&str; 3] = ["model", "optim", "scheduler"];

/// Copies the plan and every run of `plan` into `dest` (see the module documentation).
pub(super) fn export(plan: &Plan, dest: &Path) -> Result<(), String> {
    check_destination(plan, dest)?;
    copy(&Plan::record_path(&plan.out), &Plan::record_path(dest))?;
    for run in plan.runs() {
        if !run.dir.is_dir() {
            continue;
        }
        let to = dest.join(run.dir.file_name().ok_or("a run folder has no name")?);
        let files = run_files(&run)?;
        for file in &files {
            copy(&run.dir.join(file), &to.join(file))?;
        }
        prune(&to, &files)?;
        let log = run.dir.with_extension("log");
        if log.is_file() {
            copy(&log, &to.with_extension("log"))?;
        }
        println!("{}", describe(&run, &files));
        if let Some(warning) = unquantized(&run) {
            println!("  warning: {warning}");
        }
    }
    println!("exported into {}", dest.display());
    Ok(())
}

/// An error unless `dest` is a folder other than the reproduction's own.
pub(super) fn check_destination(plan: &Plan, dest: &Path) -> Result<(), String> {
    if same_folder(&plan.out, dest) {
        return Err(format!(
            "export folder {} is the reproduction's own folder; choose another",
            dest.display()
        ));
    }
    Ok(())
}

/// A warning when `run` is finished and has the model the int8 study reads but no report of it
/// (`quantization.json`): the export keeps no models, so the study could not cover it later.
fn unquantized(run: &Run) -> Option<String> {
    let studied = crate::ptq::studies(&run.method);
    (studied
        && (run.converged || run.check == 0)
        && run.finished()
        && run.dir.join("model.bpk").is_file()
        && !run.dir.join("quantization.json").is_file())
    .then(|| {
        format!(
            "{} has no int8 report and the export keeps no model: run `cargo xtask ptq \
             --repro {}{}` first",
            run.dir.display(),
            run.dir.parent().unwrap_or(Path::new(".")).display(),
            if run.converged { " --converged" } else { "" }
        )
    })
}

/// What the export holds of `run`, for the summary line.
fn describe(run: &Run, files: &[PathBuf]) -> String {
    let state = match (
        run.finished(),
        newest_checkpoint(&run.dir.join(CHECKPOINTS)),
    ) {
        (true, _) => "finished".to_string(),
        (false, Some(epoch)) => format!("{epoch} of {} epochs, with its checkpoint", run.epochs),
        (false, None) => "started, no checkpoint yet".to_string(),
    };
    format!(
        "  {} seed {}: {state} ({} files)",
        run.label(),
        run.seed,
        files.len()
    )
}

/// The files of `run` to export, relative to its folder.
fn run_files(run: &Run) -> Result<Vec<PathBuf>, String> {
    let mut files = list(&run.dir, Path::new(""), false)?
        .into_iter()
        .filter(|f| keeps_top_level(f))
        .collect::<Vec<_>>();
    if run.finished() {
        return Ok(files);
    }
    for split in METRIC_LOGS {
        if run.dir.join(split).is_dir() {
            files.extend(list(&run.dir, Path::new(split), true)?);
        }
    }
    if let Some(epoch) = newest_checkpoint(&run.dir.join(CHECKPOINTS)) {
        files.extend(
            CHECKPOINT_RECORDS.map(|record| Path::new(CHECKPOINTS).join(checkpoint(record, epoch))),
        );
    }
    Ok(files)
}

/// A run folder's own file worth exporting: not a model (`*.bpk`), not Burn's application log,
/// not a temporary or hidden file.
fn keeps_top_level(file: &Path) -> bool {
    let name = file.to_string_lossy();
    !(name.ends_with(".bpk")
        || name == "experiment.log"
        || name.ends_with(".tmp")
        || name.starts_with('.'))
}

/// The regular files of `root/sub` as paths relative to `root`, descending into folders when
/// `deep`.
fn list(root: &Path, sub: &Path, deep: bool) -> Result<Vec<PathBuf>, String> {
    let dir = root.join(sub);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let rel = sub.join(entry.file_name());
        if kind.is_file() {
            files.push(rel);
        } else if kind.is_dir() && deep {
            files.extend(list(root, &rel, true)?);
        }
    }
    files.sort();
    Ok(files)
}

/// The newest epoch whose model, optimizer and scheduler checkpoints are all in `dir`.
fn newest_checkpoint(dir: &Path) -> Option<u64> {
    model_checkpoints(dir)
        .filter(|&epoch| {
            CHECKPOINT_RECORDS
                .iter()
                .all(|record| dir.join(checkpoint(record, epoch)).is_file())
        })
        .max()
}

fn checkpoint(record: &str, epoch: u64) -> String {
    format!("{record}-{epoch}.bpk")
}

/// Removes from the exported run folder `to` the checkpoints and metric logs that are not among
/// `files` (left by an earlier export).
fn prune(to: &Path, files: &[PathBuf]) -> Result<(), String> {
    for sub in METRIC_LOGS.iter().chain([&CHECKPOINTS]) {
        let dir = to.join(sub);
        if !dir.is_dir() {
            continue;
        }
        for stale in list(to, Path::new(sub), true)? {
            if !files.contains(&stale) {
                let path = to.join(&stale);
                std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        remove_empty_dirs(&dir)?;
    }
    Ok(())
}

/// Removes `dir` and the folders below it that hold no file.
fn remove_empty_dirs(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path())?;
        }
    }
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        std::fs::remove_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary file, so that `to` is never half written; an
/// identical `to` is left alone.
fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let bytes = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".export-tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(|e| format!("{}: {e}", to.display()))
}

/// Whether `a` and `b` name the same folder (`b` need not exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The relative paths of every file under `dir`.
    fn tree(dir: &Path) -> Vec<String> {
        let mut files: Vec<String> = list(dir, Path::new(""), true)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        files.sort();
        files
    }

    /// A temporary folder `root` holding a recorded full plan in `out` and room for an
    /// export in `dest`: `(root, out, dest, plan)`.
    fn fixture(name: &str) -> (PathBuf, PathBuf, PathBuf, Plan) {
        let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let (out, dest) = (root.join("out"), root.join("dest"));
        let plan = Plan::new(&settings(&out)).unwrap();
        plan.record().unwrap();
        (root, out, dest, plan)
    }

    /// A finished run keeps its records; a run under way also its metric logs and only its
    /// newest complete checkpoint; exporting again replaces the older export.
    #[test]
    fn an_export_holds_what_continues_the_matrix() {
        let (root, out, dest, plan) = fixture("repro-export");
        for file in [
            "run.json",
            "outcome.json",
            "metrics.csv",
            "scales.safetensors",
        ] {
            write(&out.join("hs").join(file), file);
        }
        write(&out.join("hs/model.bpk"), "model");
        write(&out.join("hs/checkpoint/model-20.bpk"), "m");
        write(&out.join("hs/train/epoch-20/Loss.log"), "l");
        write(&out.join("hs.log"), "log");
        let run = out.join("repopt-s0");
        write(&run.join("run.json"), "r");
        write(&run.join("experiment.log"), "e");
        write(&run.join("train/epoch-1/Loss.log"), "1");
        write(&run.join("valid/epoch-1/Accuracy.log"), "1");
        for (record, epoch) in [("model", 3), ("optim", 3), ("scheduler", 3), ("model", 4)] {
            write(&run.join(format!("checkpoint/{record}-{epoch}.bpk")), "c");
        }
        export(&plan, &dest).unwrap();
        let hs = ["hs/metrics.csv", "hs/outcome.json", "hs/run.json"];
        let expected = |epoch: u64| {
            let mut files: Vec<String> = hs.iter().map(|s| s.to_string()).collect();
            files.extend([
                "hs.log".into(),
                "hs/scales.safetensors".into(),
                "plan.json".into(),
                format!("repopt-s0/checkpoint/model-{epoch}.bpk"),
                format!("repopt-s0/checkpoint/optim-{epoch}.bpk"),
                format!("repopt-s0/checkpoint/scheduler-{epoch}.bpk"),
                "repopt-s0/run.json".into(),
                "repopt-s0/train/epoch-1/Loss.log".into(),
                "repopt-s0/valid/epoch-1/Accuracy.log".into(),
            ]);
            files.sort();
            files
        };
        assert_eq!(tree(&dest), expected(3));
        for record in ["optim", "scheduler"] {
            write(&run.join(format!("checkpoint/{record}-4.bpk")), "c");
        }
        export(&plan, &dest).unwrap();
        assert_eq!(tree(&dest), expected(4));
        let refused = export(&plan, &out).unwrap_err();
        assert!(refused.contains("own folder"), "{refused}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A run that finished after an export loses its metric logs and checkpoint there.
    #[test]
    fn a_run_finished_since_the_last_export_is_pruned() {
        let (root, out, dest, plan) = fixture("repro-export-done");
        let run = out.join("plain-s0");
        write(&run.join("run.json"), "r");
        write(&run.join("train/epoch-1/Loss.log"), "1");
        for record in CHECKPOINT_RECORDS {
            write(&run.join(format!("checkpoint/{record}-1.bpk")), "c");
        }
        export(&plan, &dest).unwrap();
        assert!(dest.join("plain-s0/checkpoint/model-1.bpk").is_file());
        let plain = plan
            .runs()
            .into_iter()
            .find(|r| r.method == "plain")
            .unwrap();
        assert_eq!(unquantized(&plain), None);
        write(&run.join("outcome.json"), "o");
        write(&run.join("metrics.csv"), "m");
        write(&run.join("model.bpk"), "model");
        assert!(unquantized(&plain).is_some_and(|w| w.contains("xtask ptq")));
        write(&run.join("quantization.json"), "q");
        assert_eq!(unquantized(&plain), None);
        export(&plan, &dest).unwrap();
        assert_eq!(
            tree(&dest.join("plain-s0")),
            [
                "metrics.csv",
                "outcome.json",
                "quantization.json",
                "run.json"
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
