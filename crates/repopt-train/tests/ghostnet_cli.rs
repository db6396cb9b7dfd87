//! `repopt train --model ghostnet`: RepOpt-GhostNet through the CLI pipeline on Fashion-MNIST
//! (gray images replicated to RGB): the RepOptimizer from the released 0.5× scales, the RepGhost
//! baseline (fused to evaluate), the hyper-search and its scales file, and the refusals.

mod common;

use std::path::Path;

use repopt_models::ghostnet::{GhostMode, GhostNetScales, RepOptGhostNetConfig};

/// `repopt <command> --model ghostnet` on a small Fashion-MNIST subset, one epoch.
fn ghostnet_args(command: &str, data: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        command,
        "--model",
        "ghostnet",
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(common::short_run(512, 256, 1, 64));
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The outcome's test top-1 of a finished run folder.
fn outcome_top1(out: &Path) -> f64 {
    let text = std::fs::read_to_string(out.join("outcome.json")).unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&text).unwrap();
    outcome["test"]["top1"].as_f64().unwrap()
}

/// The parsed `run.json` of a run folder.
fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

/// The one-line error of a refused command.
fn refused(args: &[String]) -> String {
    let stderr = common::fails(args);
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    stderr
}

#[test]
fn repopt_from_the_released_scales_trains_and_evaluates() {
    let (Some(data), Some(scales)) = (common::fashion_mnist(), common::ghostnet_released_scales())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repopt");
    let scales = scales.to_str().unwrap();
    let args = ghostnet_args(
        "train",
        data,
        &out,
        &["--method", "repopt", "--preset", "0_5x", "--scales", scales],
    );
    let stdout = common::repopt_ok(&args);
    assert!(stdout.contains("repopt finished"), "{stdout}");
    assert!(out.join("model.bpk").is_file());
    let top1 = outcome_top1(&out);
    assert!(top1.is_finite() && (0.0..=100.0).contains(&top1));
    let record = run_json(&out);
    assert_eq!(record["config"]["model"], "ghostnet");
    assert_eq!(record["config"]["preset"], "0_5x");
    let recorded: RepOptGhostNetConfig =
        serde_json::from_value(record["architecture"].clone()).unwrap();
    assert_eq!(recorded.mode, GhostMode::Target);
    assert_eq!(recorded.num_classes, 10);

    let run = out.to_str().unwrap();
    let eval = common::repopt_ok(&["eval", "--run", run]);
    assert!(
        eval.contains("top-1") && eval.contains("on 256 images"),
        "{eval}"
    );
    // The same model evaluated again gives the outcome's accuracy.
    assert!(
        eval.contains(&format!("top-1 {top1:.2} %")),
        "{eval} vs {top1}"
    );
    let best = common::repopt_ok(&["eval", "--run", run, "--best"]);
    assert!(best.contains("best epoch: 1"), "{best}");
    let saved = dir.path().join("recalibrated");
    let saved_run = saved.to_str().unwrap();
    let recalibrated = common::repopt_ok(&[
        "eval",
        "--run",
        run,
        "--recalibrate-bn",
        "2",
        "--save-run",
        saved_run,
    ]);
    assert!(
        recalibrated.contains("re-estimated on 2 training batches")
            && recalibrated.contains("on 256 images"),
        "{recalibrated}"
    );
    // The re-estimated model, kept as a run folder, evaluates as it did when it was saved.
    let again = common::repopt_ok(&["eval", "--run", saved_run]);
    let top1 = common::top1(&recalibrated);
    assert!(
        again.contains(&format!("top-1 {top1:.2} %")),
        "{again} vs {recalibrated}"
    );

    // Commands written for RepOpt-VGG runs refuse it in one line.
    let model = dir.path().join("exported.bpk");
    let args: Vec<String> = ["export", "--run", run, "--out", model.to_str().unwrap()]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let message = refused(&args);
    assert!(
        message.contains("supports RepOpt-VGG runs only"),
        "{message}"
    );
}

#[test]
fn the_repghost_baseline_trains_and_evaluates_fused() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repghost");
    let stdout = common::repopt_ok(&ghostnet_args("train", data, &out, &["--method", "repvgg"]));
    assert!(stdout.contains("repvgg finished"), "{stdout}");
    let top1 = outcome_top1(&out);
    let eval = common::repopt_ok(&["eval", "--run", out.to_str().unwrap()]);
    assert!(
        eval.contains(&format!("top-1 {top1:.2} %")),
        "{eval} vs {top1}"
    );
    let record = run_json(&out);
    assert_eq!(record["architecture"]["mode"], "Rep");
}

#[test]
fn the_hyper_search_writes_scales_that_load_back() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hs");
    common::repopt_ok(&ghostnet_args("hs", data, &out, &[]));
    let target = RepOptGhostNetConfig::preset("0_5x")
        .unwrap()
        .with_num_classes(10)
        .with_mode(GhostMode::Target);
    let searched = GhostNetScales::load(&out.join("scales.safetensors"), &target).unwrap();
    let initial = GhostNetScales::load(&out.join("scales-initial.safetensors"), &target).unwrap();
    assert_eq!(
        searched.modules.len(),
        target.ghost_modules().unwrap().len()
    );
    assert_ne!(
        searched.modules, initial.modules,
        "the search moved no scale"
    );
}

#[test]
fn unsupported_settings_are_refused_in_one_line() {
    let (Some(data), Some(scales)) = (common::fashion_mnist(), common::ghostnet_released_scales())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refused");
    let width = refused(&ghostnet_args(
        "train",
        data,
        &out,
        &["--method", "plain", "--width", "1,1,1,1"],
    ));
    assert!(
        width.contains("--width") && width.contains("--preset"),
        "{width}"
    );
    let blocks = refused(&ghostnet_args(
        "train",
        data,
        &out,
        &["--method", "plain", "--num-blocks", "1,1,1,1"],
    ));
    assert!(blocks.contains("--num-blocks"), "{blocks}");
    let preset = refused(&ghostnet_args(
        "train",
        data,
        &out,
        &["--method", "plain", "--preset", "b1"],
    ));
    assert!(
        preset.contains("`b1`") && preset.contains("0_5x"),
        "{preset}"
    );
    let adamw = refused(&ghostnet_args(
        "train",
        data,
        &out,
        &[
            "--method",
            "repopt",
            "--scales",
            scales.to_str().unwrap(),
            "--optimizer",
            "adamw",
            "--lr",
            "0.001",
        ],
    ));
    assert!(
        adamw.contains("--optimizer adamw") && adamw.contains("10 of the cheap-branch scales ψ"),
        "{adamw}"
    );
    assert!(!out.join("checkpoint").exists(), "a refused run trained");
}

#[test]
fn the_other_methods_train() {
    let (Some(data), Some(scales)) = (common::fashion_mnist(), common::ghostnet_released_scales())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let scales = scales.to_str().unwrap();
    for (method, mode) in [
        ("plain", "Target"),
        ("repopt-ones", "Target"),
        ("reinit-only", "Target"),
        ("mults-only", "Target"),
        ("csla", "Csla"),
    ] {
        let out = dir.path().join(method);
        let mut extra = vec!["--method", method];
        if matches!(method, "reinit-only" | "mults-only" | "csla") {
            extra.extend(["--scales", scales]);
        }
        let stdout = common::repopt_ok(&ghostnet_args("train", data, &out, &extra));
        assert!(stdout.contains(&format!("{method} finished")), "{stdout}");
        let record = run_json(&out);
        assert_eq!(record["architecture"]["mode"], mode, "{method}");
        assert!(outcome_top1(&out).is_finite());
    }
}
