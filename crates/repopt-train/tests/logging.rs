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

/// An image whose header reads but whose pixels do not stops training when a batch reaches
/// it: one line on stderr (not also Burn's copy of the error), naming the file, the flag that
/// skips such files and where the checkpoints are; Burn's copy stays in experiment.log.
#[test]
fn an_error_while_training_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mut noise = 7u32;
    common::two_class_folder(&root, 4, || {
        image::RgbImage::from_fn(16, 16, |_, _| {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            image::Rgb([(noise >> 24) as u8, (noise >> 16) as u8, (noise >> 8) as u8])
        })
    });
    let cut = root.join("train/a/2.png");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("run");
    let mut args = vec!["-q".to_string()];
    args.extend(common::tiny_train_folder("plain", &root, 4, &out));
    let output = common::repopt(&args);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("train/a/2.png"), "{stderr}");
    assert!(stderr.contains("--skip-invalid"), "{stderr}");
    assert!(stderr.contains("checkpoints in"), "{stderr}");
    let log = std::fs::read_to_string(out.join("experiment.log")).unwrap();
    assert!(log.contains("Stopped by an error"), "{log}");
}
