//! The run folder is the whole story: a run resumes from its folder alone, its run.json serves
//! as a --config, and the best epoch's checkpoint is kept and can be evaluated, as can any
//! kept epoch's, with its BatchNorm statistics re-estimated and saved as a run folder of its own.

mod common;

use std::path::Path;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `(epoch, valid_top1)` rows of a run's metrics.csv.
fn test_curve(run: &Path) -> Vec<(usize, f64)> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|c| *c == "valid_top1").unwrap();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].parse().unwrap(), cells[column].parse().unwrap())
        })
        .collect()
}

fn read_json(file: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

#[test]
fn a_run_resumes_from_its_folder_alone_and_keeps_its_best_epoch() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let mut args = common::tiny_train("plain", data, [1024, 300, 4, 32], &whole);
    args.extend(["--lr", "0.05", "--seed", "9"].map(String::from));
    common::repopt_ok(&args);

    // The best epoch's checkpoint is kept beside the last two, and `eval --best` scores it.
    let curve = test_curve(&whole);
    let (best, best_top1) = curve
        .iter()
        .copied()
        .fold((0, f64::NEG_INFINITY), |b, c| if c.1 > b.1 { c } else { b });
    let checkpoints = whole.join("checkpoint");
    for epoch in [best, 3, 4] {
        assert!(
            checkpoints.join(format!("model-{epoch}.bpk")).is_file(),
            "epoch {epoch} not kept (best is {best})"
        );
    }
    let report = common::repopt_ok(&["eval", "--run", path(&whole), "--best"]);
    assert!(report.contains(&format!("best epoch: {best}")), "{report}");
    let top1 = common::top1(&report);
    assert!((top1 - best_top1).abs() < 0.01, "{top1} vs {best_top1}");

    // `eval --epoch E` scores a kept epoch's checkpoint and names a missing one in one line.
    let report = common::repopt_ok(&["eval", "--run", path(&whole), "--epoch", "3"]);
    let (_, third) = curve[2];
    assert!(
        (common::top1(&report) - third).abs() < 0.01,
        "{report} vs {third}"
    );
    let gone = (1..=4).find(|e| ![best, 3, 4].contains(e)).unwrap();
    let message = common::fails(&["eval", "--run", path(&whole), "--epoch", &gone.to_string()]);
    assert!(
        message.contains(&format!("model-{gone}.bpk")) && message.contains("no checkpoint"),
        "{message}"
    );

    // `--recalibrate-bn` re-estimates the BatchNorm statistics of the last epoch's model, whose
    // learning rate had fallen to nearly 0: the running statistics were already the model's,
    // so its accuracy stays near the one training measured.
    let (_, last) = curve[3];
    let epoch4 = |extra: &[&'static str]| {
        let mut args = vec!["eval", "--run", path(&whole), "--epoch", "4"];
        args.extend(extra);
        args
    };
    let report = common::repopt_ok(&epoch4(&["--recalibrate-bn", "8"]));
    assert!(
        report.contains("re-estimated on 8 training batches"),
        "{report}"
    );
    assert!(
        (common::top1(&report) - last).abs() < 3.0,
        "{report} vs {last}"
    );

    // Training's own rule over the same batches (the weights fixed), and its refusals.
    let momentum =
        |m: &'static str| epoch4(&["--recalibrate-bn", "8", "--recalibrate-momentum", m]);
    let report = common::repopt_ok(&momentum("0.1"));
    assert!(
        report.contains("re-estimated on 8 training batches (momentum 0.1)"),
        "{report}"
    );
    assert!(
        (common::top1(&report) - last).abs() < 3.0,
        "{report} vs {last}"
    );
    let message = common::fails(&momentum("1.5"));
    assert!(
        message.contains("1.5: a momentum is a number in (0, 1]"),
        "{message}"
    );
    let message = common::fails(&epoch4(&["--recalibrate-momentum", "0.1"]));
    assert!(message.contains("--recalibrate-bn"), "{message}");

    // Some BatchNorms only, and selections the model or the syntax refuses.
    let only = |list: &'static str| epoch4(&["--recalibrate-bn", "8", "--recalibrate-only", list]);
    let report = common::repopt_ok(&only("1-2"));
    assert!(
        report.contains("re-estimated on 8 training batches for BatchNorms 1-2 of "),
        "{report}"
    );
    let message = common::fails(&only("2-999"));
    assert!(
        message.contains("--recalibrate-only: BatchNorm 999 of 2-999"),
        "{message}"
    );
    let message = common::fails(&only("0"));
    assert!(
        message.contains("0: BatchNorms are numbers from 1"),
        "{message}"
    );

    // `--save-run` writes the re-estimated model as a new run folder, which `eval` and
    // `export` read like any run's; an existing one is refused and left as it was.
    let saved = tmp.path().join("recalibrated");
    let mut save: Vec<&str> = epoch4(&["--recalibrate-bn", "8"]);
    save.extend(["--save-run", path(&saved)]);
    let report = common::repopt_ok(&save);
    assert!(report.contains("written as the run folder"), "{report}");
    let recalibrated = common::top1(&report);
    let report = common::repopt_ok(&["eval", "--run", path(&saved)]);
    assert!(
        (common::top1(&report) - recalibrated).abs() < 0.01,
        "{report} vs {recalibrated}"
    );
    let derived = read_json(&saved.join("derived.json"));
    assert_eq!(derived["epoch"], 4, "{derived}");
    assert_eq!(derived["source_run"], path(&whole), "{derived}");
    let how = derived["batch_norms"].as_str().unwrap_or_default();
    assert!(how.contains("on 8 training batches"), "{derived}");
    let exported = tmp.path().join("recalibrated.bpk");
    common::repopt_ok(&["export", "--run", path(&saved), "--out", path(&exported)]);
    let card = read_json(&tmp.path().join("recalibrated.json"));
    let carded = card["test"]["top1"].as_f64().unwrap_or_default();
    assert!((carded - recalibrated).abs() < 0.01, "{card}");
    let model = std::fs::read(saved.join("model.bpk")).unwrap();
    let message = common::fails(&save);
    assert!(message.contains("not empty"), "{message}");
    assert_eq!(std::fs::read(saved.join("model.bpk")).unwrap(), model);

    // Interrupted after epoch 3: `--resume DIR` alone finishes it, bit for bit.
    let resumed = tmp.path().join("resumed");
    common::copy_dir(&whole, &resumed);
    for name in ["model", "optim", "scheduler"] {
        std::fs::remove_file(resumed.join(format!("checkpoint/{name}-4.bpk"))).unwrap();
    }
    for file in ["model.bpk", "outcome.json"] {
        std::fs::remove_file(resumed.join(file)).unwrap();
    }
    let refused = common::repopt(&["train", "--resume", path(&resumed), "--lr", "0.5"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--lr") && message.contains("run.json"),
        "{message}"
    );
    let output = common::repopt(&["train", "--resume", path(&resumed), "--workers", "0"]);
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("resuming at epoch 4"), "{log}");
    assert!(
        common::final_weights(&whole) == common::final_weights(&resumed),
        "the resumed model differs from the uninterrupted one"
    );

    // A run's run.json is a --config for a new run.
    let again = tmp.path().join("again");
    let config = whole.join("run.json");
    common::repopt_ok(&[
        "train",
        "--config",
        path(&config),
        "--epochs",
        "1",
        "--out",
        path(&again),
    ]);
    let record = repopt_train::RunRecord::load(&again).unwrap();
    assert_eq!(record.config.seed, 9);
    assert_eq!(record.config.epochs, 1);
}
