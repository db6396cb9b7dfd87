//! `repopt export`: the deployed model of a run computes what the trained model computes, and
//! its card describes it.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

#[test]
fn exported_models_compute_what_the_trained_ones_do() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    for method in ["repvgg", "repopt-ones"] {
        let run = tmp.path().join(method);
        common::repopt_ok(&common::tiny_train(method, data, [512, 100, 1, 32], &run));
        let out = tmp.path().join(format!("{method}.bpk"));
        common::repopt_ok(&[
            "export",
            "--run",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);

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
