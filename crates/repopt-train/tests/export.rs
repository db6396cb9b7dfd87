//! `repopt export`: the deployed model of a run computes what the trained model computes, and
//! its card describes it.

mod common;

use std::path::Path;
use std::process::Command;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

#[test]
fn exported_models_compute_what_the_trained_ones_do() {
    let data = common::FASHION_MNIST_DIR;
    if !common::require_data(
        Path::new(data),
        "Fashion-MNIST (apt-get install dataset-fashion-mnist)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    for method in ["repvgg", "repopt-ones"] {
        let run = tmp.path().join(method);
        let status = Command::new(env!("CARGO_BIN_EXE_repopt"))
            .args([
                "train",
                "--method",
                method,
                "--data",
                data,
                "--preset",
                "tiny",
                "--width",
                "0.25,0.25,0.25,0.25",
                "--train-limit",
                "512",
                "--test-limit",
                "100",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--workers",
                "0",
                "--out",
            ])
            .arg(&run)
            .status()
            .unwrap();
        assert!(status.success());
        let out = tmp.path().join(format!("{method}.bpk"));
        let status = Command::new(env!("CARGO_BIN_EXE_repopt"))
            .args(["export", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());

        let (card, deployed) = repopt_train::export::load(&out, &device).unwrap();
        assert_eq!(card.architecture.mode, repopt_models::BlockMode::Deploy);
        assert_eq!(card.classes.len(), 10);
        assert_eq!((card.image_size, card.mean.len()), (32, 1));
        assert!(card.test.is_some_and(|t| t.samples == 100));
        let trained = repopt_train::RunRecord::load(&run)
            .unwrap()
            .load_model(&run, &device)
            .unwrap()
            .valid();
        let x = Tensor::<4>::random([4, 1, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (trained.forward(x.clone()), deployed.forward(x));
        let scale = a.clone().abs().max().into_scalar::<f32>();
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{method}: {diff} against {scale}"
        );
    }
}
