//! A run folder derived from another run's model: what `repopt eval --save-run` writes, so a
//! kept checkpoint, or a model whose BatchNorm statistics were re-estimated, is evaluated,
//! exported and quantized like the final model of any run.

use std::path::{Path, PathBuf};

use burn::module::Module;
use repopt_core::tensor_io::write_atomic;
use serde::{Deserialize, Serialize};

use crate::error::{Result, file_error};
use crate::eval::EvalReport;
use crate::run_folder::{files, write_json};

/// Where a derived run's model came from (`derived.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derivation {
    /// The run folder the model came from.
    pub source_run: PathBuf,
    /// The kept checkpoint's epoch; `None` for the source run's final model.
    pub epoch: Option<usize>,
    /// How its BatchNorm statistics were re-estimated; `None` when they were not.
    pub batch_norms: Option<String>,
    /// The data folder of that evaluation when `--data` named one; `None` for the source
    /// run's own test split.
    pub evaluated_on: Option<PathBuf>,
    /// The model's evaluation when it was saved.
    pub test: EvalReport,
}

/// Refuses `dir` unless it is missing or an empty folder: an earlier run is never overwritten.
pub fn check_new_folder(dir: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return match dir.exists() {
            true => Err(file_error(dir, "--save-run: not a folder")),
            false => Ok(()),
        };
    };
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(file_error(
            dir,
            "--save-run writes a new run folder, and this one is not empty (nothing was written)",
        )),
    }
}

/// Writes `model` as the run folder `dir`: `source`'s `run.json` with `config.out` set to
/// `dir`, the model as `model.bpk`, and `derivation` as `derived.json`, each file atomically.
pub fn save<M: Module>(
    source: &Path,
    dir: &Path,
    model: &M,
    derivation: &Derivation,
) -> Result<()> {
    check_new_folder(dir)?;
    let record = source.join(files::RUN);
    let text = std::fs::read_to_string(&record).map_err(|e| file_error(&record, e))?;
    let mut run: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| file_error(&record, format!("bad run record: {e}")))?;
    let Some(config) = run.get_mut("config").and_then(|c| c.as_object_mut()) else {
        return Err(file_error(&record, "bad run record: no `config`"));
    };
    config.insert("out".into(), serde_json::json!(dir));
    config.insert("resume".into(), serde_json::json!(false));
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    write_json(&dir.join(files::RUN), &run)?;
    let path = dir.join(files::MODEL);
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| file_error(&path, e))?;
    write_atomic(&path, &bytes).map_err(|e| file_error(&path, e))?;
    write_json(&dir.join(files::DERIVED), derivation)
}

/// The test evaluation a run folder records: its training's final one (`outcome.json`), or
/// the one its model was saved with (`derived.json`).
pub fn recorded_test(run: &Path) -> Option<EvalReport> {
    [files::OUTCOME, files::DERIVED].iter().find_map(|name| {
        let text = std::fs::read_to_string(run.join(name)).ok()?;
        let value = serde_json::from_str::<serde_json::Value>(&text).ok()?;
        serde_json::from_value(value.get("test")?.clone()).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check_new_folder(&tmp.path().join("new")).is_ok());
        assert!(check_new_folder(tmp.path()).is_ok());
        let kept = tmp.path().join("model.bpk");
        std::fs::write(&kept, b"earlier").unwrap();
        let message = check_new_folder(tmp.path()).unwrap_err().to_string();
        assert!(message.contains("not empty"), "{message}");
        let message = check_new_folder(&kept).unwrap_err().to_string();
        assert!(message.contains("not a folder"), "{message}");
        assert_eq!(std::fs::read(&kept).unwrap(), b"earlier");
    }

    #[test]
    fn the_recorded_test_prefers_the_training_outcome() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(recorded_test(tmp.path()), None);
        let report = |top1| EvalReport {
            samples: 10,
            top1,
            top5: 100.0,
            loss: 0.5,
        };
        let derived = Derivation {
            source_run: "runs/a".into(),
            epoch: Some(3),
            batch_norms: None,
            evaluated_on: None,
            test: report(40.0),
        };
        write_json(&tmp.path().join(files::DERIVED), &derived).unwrap();
        assert_eq!(recorded_test(tmp.path()), Some(report(40.0)));
        let outcome = serde_json::json!({ "test": report(50.0) });
        write_json(&tmp.path().join(files::OUTCOME), &outcome).unwrap();
        assert_eq!(recorded_test(tmp.path()), Some(report(50.0)));
    }
}
