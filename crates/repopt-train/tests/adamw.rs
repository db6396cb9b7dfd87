//! `repopt train --optimizer adamw`: the official AdamW RepOptimizer trains, and scales whose
//! signs break its equivalence with the multi-branch model are refused unless allowed.

mod common;

use std::path::Path;

use repopt_models::VggScales;

/// A scales file for the 1-channel tiny model, with `negative` values of `s` below 0.
fn scales_file(dir: &Path, negative: usize) -> String {
    let mut scales = VggScales::constant(&common::tiny_gray(), 0.8);
    let block = scales
        .blocks
        .iter_mut()
        .find(|b| b.spec.name == "stage2.0")
        .unwrap();
    block.conv.iter_mut().take(negative).for_each(|s| *s = -0.3);
    let path = dir.join(format!("scales-{negative}.safetensors"));
    scales.save(&path).unwrap();
    path.to_str().unwrap().to_string()
}

fn train(data: &str, scales: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = [
        "train",
        "--method",
        "repopt",
        "--optimizer",
        "adamw",
        "--lr",
        "0.001",
        "--weight-decay",
        "0.05",
        "--data",
        data,
        "--scales",
        scales,
        "--preset",
        "tiny",
    ]
    .map(String::from)
    .to_vec();
    args.extend(common::short_run(256, 128, 1, 64));
    args.extend(["--out", out.to_str().unwrap()].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    common::repopt(&args)
}

#[test]
fn adamw_trains_and_refuses_negative_scales_unless_allowed() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let positive = scales_file(tmp.path(), 0);
    let out = tmp.path().join("adamw");
    let output = train(data, &positive, &out, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record = repopt_train::RunRecord::load(&out).unwrap();
    assert_eq!(
        record.config.optimizer,
        repopt_train::config::OptimizerKind::Adamw
    );

    let negative = scales_file(tmp.path(), 3);
    let refused = train(data, &negative, &tmp.path().join("refused"), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("3 of the scales") && stderr.contains("stage2.0"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-negative-scales"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let allowed = train(
        data,
        &negative,
        &tmp.path().join("allowed"),
        &["--allow-negative-scales"],
    );
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}
