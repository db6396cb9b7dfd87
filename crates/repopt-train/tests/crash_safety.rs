//! A crash loses nothing: `repopt train` killed with SIGKILL mid-epoch resumes to the same
//! final weights as an uninterrupted run, bit for bit, and a damaged newest checkpoint makes
//! resume fall back to the previous kept one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The run of every test here: three epochs of 80 batches, so that a kill lands mid-epoch.
fn args(data: &str, out: &Path, resume: bool) -> Vec<String> {
    let mut args = common::tiny_train("repopt-ones", data, [2560, 200, 3, 32], out);
    args.extend(["--seed", "5"].map(String::from));
    if resume {
        args.push("--resume".into());
    }
    args
}

/// The data, and a temporary folder holding the uninterrupted run `whole`, the reference of
/// every test here; `None` when Fashion-MNIST is absent and that is allowed.
fn uninterrupted() -> Option<(&'static str, tempfile::TempDir, PathBuf)> {
    let data = common::fashion_mnist()?;
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    common::repopt_ok(&args(data, &whole, false));
    Some((data, tmp, whole))
}

#[test]
fn killed_mid_epoch_resumes_to_the_same_weights() {
    let Some((data, tmp, whole)) = uninterrupted() else {
        return;
    };

    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_repopt"))
        .args(args(data, &killed, false))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first epoch's checkpoint is complete (its three records, each written to a
    // temporary name and renamed), then kill during the second epoch.
    let first =
        ["model", "optim", "scheduler"].map(|r| killed.join(format!("checkpoint/{r}-1.bpk")));
    let started = Instant::now();
    while !first.iter().all(|record| record.is_file()) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after 5 minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("model.bpk").exists(),
        "the run finished before the kill; make it longer"
    );

    let log = common::repopt(&args(data, &killed, true));
    assert!(log.status.success());
    assert!(
        String::from_utf8_lossy(&log.stderr).contains("resuming at epoch"),
        "the second invocation did not resume"
    );
    assert!(common::final_weights(&whole) == common::final_weights(&killed));
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let Some((data, tmp, whole)) = uninterrupted() else {
        return;
    };

    // Epochs 2 and 3 are kept; truncate epoch 3's optimizer file, as a full disk would.
    let damaged = tmp.path().join("damaged");
    common::copy_dir(&whole, &damaged);
    std::fs::remove_file(damaged.join("model.bpk")).unwrap();
    std::fs::remove_file(damaged.join("outcome.json")).unwrap();
    let optim = damaged.join("checkpoint/optim-3.bpk");
    let bytes = std::fs::read(&optim).unwrap();
    std::fs::write(&optim, &bytes[..bytes.len() / 2]).unwrap();

    let log = common::repopt(&args(data, &damaged, true));
    assert!(log.status.success());
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(
        stderr.contains("epoch 3 is damaged") && stderr.contains("optim-3.bpk"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming at epoch 3"), "{stderr}");
    assert!(common::final_weights(&whole) == common::final_weights(&damaged));
}
