//! What `repopt` says where: results on stdout, progress on stderr at the level -q / -v choose,
//! and the progress always in the run folder's experiment.log.

mod common;

use std::path::Path;

/// A one-epoch run on 128 Fashion-MNIST images, with `flags` before the subcommand.
fn train(data: &str, out: &Path, flags: &[&str]) -> std::process::Output {
    let run = common::short_run(128, 64, 1, 32);
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["train", "--data", data, "--preset", "tiny"]);
    args.extend(run.iter().map(String::as_str));
    args.extend(["--method", "plain", "--out", out.to_str().unwrap()]);
    let output = common::repopt(&args);
    assert!(output.status.success(), "repopt {args:?} failed");
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quiet_and_verbose_change_stderr_only() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let progress = "epoch 1/1 train";

    let normal = train(data, &tmp.path().join("normal"), &[]);
    assert!(
        text(&normal.stderr).contains(progress),
        "{}",
        text(&normal.stderr)
    );
    assert!(text(&normal.stdout).contains("plain finished"));
    assert!(
        !text(&normal.stdout).contains(progress),
        "progress leaked to stdout"
    );

    let quiet = train(data, &tmp.path().join("quiet"), &["-q"]);
    assert_eq!(text(&quiet.stderr).trim(), "", "-q printed on stderr");
    assert!(text(&quiet.stdout).contains("plain finished"));

    // -v adds Burn's own progress messages (its per-iteration events).
    let verbose = train(data, &tmp.path().join("verbose"), &["-v"]);
    let (said, normally) = (text(&verbose.stderr), text(&normal.stderr));
    assert!(said.contains("Iteration"), "{said}");
    assert!(!normally.contains("Iteration"), "{normally}");

    // Whatever stderr shows, the run log keeps the progress, Burn's events included.
    for run in ["normal", "quiet", "verbose"] {
        let log = std::fs::read_to_string(tmp.path().join(run).join("experiment.log")).unwrap();
        assert!(log.contains(progress), "{run}: {log}");
        assert!(log.contains("burn_train"), "{run}: {log}");
    }
}
