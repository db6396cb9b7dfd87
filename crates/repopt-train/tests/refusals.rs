//! Settings that cannot work are refused before training starts, in one line naming the flag;
//! a two-class data set trains (no top-5 metric where it has no meaning).

mod common;

/// The one-line error of a command that must fail before any training.
fn refused(extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut args = vec![
        "train",
        "--method",
        "plain",
        "--data",
        common::FASHION_MNIST_DIR,
        "--preset",
        "tiny",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let stderr = common::fails(&args);
    assert!(
        !out.join("checkpoint").exists(),
        "{extra:?} started training"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn impossible_settings_are_refused_naming_the_flag() {
    if common::fashion_mnist().is_none() {
        return;
    }
    for (flags, named) in [
        (&["--width", "0,0,0,0"][..], "--width"),
        (&["--width", "1,-1,1,1"][..], "--width"),
        (&["--width", "NaN,1,1,1"][..], "--width"),
        (&["--width", "1,1,1"][..], "--width"),
        (&["--num-blocks", "1,1,1,1,1"][..], "--num-blocks"),
        (&["--num-blocks", "1,0,1,1"][..], "--num-blocks"),
        (&["--momentum", "1.5"][..], "--momentum"),
        (&["--momentum", "-0.1"][..], "--momentum"),
        (&["--weight-decay", "-1e-4"][..], "--weight-decay"),
        (&["--lr", "0"][..], "--lr"),
        (&["--lr", "NaN"][..], "--lr"),
        (&["--label-smoothing", "inf"][..], "--label-smoothing"),
        (&["--min-lr", "0.5", "--lr", "0.1"][..], "--min-lr"),
        (&["--image-size", "2"][..], "--image-size"),
        (&["--clip-grad-norm", "5"][..], "clipping"),
        (&["--threads", "0"][..], "--threads"),
    ] {
        let message = refused(flags);
        assert!(message.contains(named), "{flags:?}: {message}");
    }
}

/// Learning rates above 1 are legitimate for large-batch recipes.
#[test]
fn large_learning_rates_are_allowed() {
    let config = repopt_train::RunConfig {
        data: "x".into(),
        method: repopt_train::Method::Plain,
        lr: 2.4,
        ..Default::default()
    };
    if let Err(e) = config.validate() {
        panic!("lr 2.4 refused: {e}");
    }
}

/// A two-class image folder (cats vs dogs) trains and evaluates: top-5 is not reported there.
#[test]
fn two_classes_train_without_a_top5_metric() {
    let Some(archive) = common::cifar10_jpg() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let test = common::extract_cifar10_subset(&archive, tmp.path(), "test", &["00"]);
    let root = tmp.path().join("cats-dogs");
    for split in ["train", "test"] {
        for class in ["cat", "dog"] {
            common::copy_dir(&test.join(class), &root.join(split).join(class));
        }
    }
    let out = tmp.path().join("run");
    let output = common::repopt(&common::tiny_train_folder("plain", &root, 16, &out));
    assert!(output.status.success());
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.contains("valid_top1") && !csv.contains("top5"), "{csv}");
}

/// An empty class folder is an error naming it: skipping it would shift the labels after it.
#[test]
fn an_empty_class_folder_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    for split in ["train", "test"] {
        for class in ["a", "b", "c"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            if class != "b" || split == "test" {
                image::RgbImage::new(8, 8).save(dir.join("x.png")).unwrap();
            }
        }
    }
    let out = tmp.path().join("run");
    let output = common::repopt(&[
        "train",
        "--method",
        "plain",
        "--data",
        root.to_str().unwrap(),
        "--preset",
        "tiny",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("train/b"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
}

/// An empty or foreign file among the images stops the run before it trains (every header is
/// read at opening), in one line naming the file and the flag that leaves such files out; with
/// that flag the run trains on the others.
#[test]
fn an_unreadable_image_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    common::two_class_folder(&root, 4, || image::RgbImage::new(8, 8));
    let empty = root.join("train/b/empty.png");
    std::fs::write(&empty, b"").unwrap();
    let run = |out: &std::path::Path, extra: &[&str]| {
        let mut args = common::tiny_train_folder("plain", &root, 4, out);
        args.extend(extra.iter().map(|a| a.to_string()));
        common::repopt(&args)
    };
    let out = tmp.path().join("run");
    let output = run(&out, &[]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("train/b/empty.png"), "{message}");
    assert!(message.contains("--skip-invalid"), "{message}");
    assert!(!out.join("checkpoint").exists(), "it started training");
    let skipped = run(&tmp.path().join("skipped"), &["--skip-invalid", "-q"]);
    assert!(skipped.status.success(), "{skipped:?}");
}
