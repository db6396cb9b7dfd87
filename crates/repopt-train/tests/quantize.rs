//! `repopt quantize` end to end on real images: a trained RepVGG (fused) and a plain target (BN
//! folded) are quantized under every scheme and evaluated on the test images.

mod common;

use std::path::Path;

#[test]
fn trained_runs_quantize_and_evaluate_under_every_scheme() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for method in ["repvgg", "plain"] {
        let run = tmp.path().join(method);
        common::repopt_ok(&common::tiny_train(method, data, [1024, 500, 1, 32], &run));
        let run = run.to_str().unwrap();
        let table = common::repopt_ok(&["quantize", "--run", run, "--calibration-images", "64"]);
        assert!(
            table.contains("per channel") && table.contains("percentile 99.99"),
            "{table}"
        );
        let json = std::fs::read_to_string(Path::new(run).join("quantization.json")).unwrap();
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let schemes = report["schemes"].as_array().unwrap();
        assert_eq!(
            schemes.len(),
            8,
            "2 weight × 2 activation × 2 first/last schemes"
        );
        let fp32 = report["fp32"]["top1"].as_f64().unwrap();
        assert!(fp32 > 30.0, "the float model did not learn: {fp32}");
        for scheme in schemes {
            let int8 = scheme["int8"]["top1"].as_f64().unwrap();
            assert_eq!(scheme["int8"]["samples"].as_u64(), Some(500));
            assert!((fp32 - int8 - scheme["drop"].as_f64().unwrap()).abs() < 1e-9);
            assert!(int8 > 10.0, "{method} {scheme}: int8 accuracy {int8}");
        }
        // Int8 weights alone: activations kept in f32 (`null` in the report).
        let weights_only = Path::new(run).join("weights-only.json");
        let table = common::repopt_ok(&[
            "quantize",
            "--run",
            run,
            "--calibration-images",
            "64",
            "--weights",
            "per-channel",
            "--activations",
            "f32",
            "--first-last",
            "int8",
            "--per-layer",
            "--json",
            weights_only.to_str().unwrap(),
        ]);
        assert!(table.contains("| per channel | f32 | int8 |"), "{table}");
        let json = std::fs::read_to_string(&weights_only).unwrap();
        let only_report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let only = only_report["schemes"].as_array().unwrap();
        assert_eq!(only.len(), 1);
        assert!(only[0]["activations"].is_null(), "{}", only[0]);
        let drop = only[0]["drop"].as_f64().unwrap();
        assert!(drop.abs() < 5.0, "{method}: int8 weights alone lose {drop}");
        let layers = report["weight_sqnr_db"].as_array().unwrap();
        // One layer's int8 weights at a time: a row per layer, in the SQNR's order.
        let per_layer = only_report["per_layer"].as_array().unwrap();
        assert_eq!(per_layer.len(), layers.len(), "one granularity asked for");
        for (drop, layer) in per_layer.iter().zip(layers) {
            assert_eq!(drop["layer"], layer["layer"]);
            assert_eq!(drop["weights"], "per-channel");
            let top1 = drop["top1"].as_f64().unwrap();
            let fp32 = only_report["fp32"]["top1"].as_f64().unwrap();
            assert!((fp32 - top1 - drop["drop"].as_f64().unwrap()).abs() < 1e-9);
            assert!(
                drop["drop"].as_f64().unwrap().abs() < 5.0,
                "{method}: {drop}"
            );
            let row = format!("| {} | ", layer["layer"].as_str().unwrap());
            assert!(table.contains(&row), "{row} missing from\n{table}");
        }
        assert!(
            report.get("per_layer").is_none(),
            "not asked for: not in the report"
        );
        assert_eq!(layers.last().unwrap()["layer"], "linear");
        for layer in layers {
            let (c, t) = (
                layer["per_channel"].as_f64().unwrap(),
                layer["per_tensor"].as_f64().unwrap(),
            );
            // Per-channel steps are never coarser than the one per-tensor step, so the error is
            // smaller over a whole layer (up to the luck of rounding).
            assert!(c >= t - 0.5 && t > 10.0, "{layer}");
        }
    }
    let help = common::repopt_ok(&["quantize", "--help"]);
    for word in [
        "per-channel",
        "per-tensor",
        "minmax",
        "percentile",
        "f32",
        "calibration-images",
        "per-layer",
    ] {
        assert!(help.contains(word), "--help does not mention {word}");
    }
}
