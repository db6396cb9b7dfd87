//! A crash loses nothing: `repopt train` killed with SIGKILL mid-epoch resumes to the same
//! final weights as an uninterrupted run, bit for bit, and a damaged newest checkpoint makes
//! resume fall back to the previous kept one.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn args(data: &str, out: &Path, resume: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--method",
        "repopt-ones",
        "--data",
        data,
        "--preset",
        "tiny",
        "--width",
        "0.25,0.25,0.25,0.25",
        "--train-limit",
        "2560",
        "--test-limit",
        "200",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--workers",
        "0",
        "--seed",
        "5",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--out".into(), out.display().to_string()]);
    if resume {
        args.push("--resume".into());
    }
    args
}

#[test]
fn killed_mid_epoch_resumes_to_the_same_weights() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    common::repopt_ok(&args(data, &whole, false));

    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_repopt"))
        .args(args(data, &killed, false))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first epoch's checkpoint is complete, then kill during the second epoch.
    let first = killed.join("checkpoint/scheduler-1.bpk");
    let started = Instant::now();
    while !first.is_file() {
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
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    common::repopt_ok(&args(data, &whole, false));

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
