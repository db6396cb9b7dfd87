//! A non-finite loss stops training before its gradients reach the model.

use burn::module::Param;
use burn::tensor::{Device, Distribution, Int, Tensor};
use burn::train::{Interrupter, TrainStep};
use repopt_models::RepOptVggConfig;
use repopt_train::classifier::Classifier;
use repopt_train::data::ImageBatch;

#[test]
fn nan_loss_interrupts_without_gradients() {
    let device = Device::flex().autodiff();
    let config = RepOptVggConfig::preset("tiny")
        .unwrap()
        .with_num_classes(10);
    let mut model = config.init(&device);
    let bias = model.linear.bias.as_ref().unwrap().val();
    model.linear.bias = Some(Param::from_tensor(bias.mul_scalar(f32::NAN).detach()));
    let interrupter = Interrupter::new();
    let classifier = Classifier::new(model, 0.1).with_guard(interrupter.clone());
    let batch = ImageBatch {
        images: Tensor::random([4, 3, 32, 32], Distribution::Default, &device),
        targets: Tensor::<1, Int>::from_ints([1, 2, 3, 4], &device),
    };
    let output = TrainStep::step(&classifier, batch);
    assert!(
        output.grads.is_empty(),
        "no gradient may reach the optimizer"
    );
    assert!(interrupter.should_stop());
    let reason = interrupter.interruption().unwrap().reason.unwrap();
    assert!(
        reason.contains("NaN") && reason.contains("checkpoint"),
        "{reason}"
    );

    // A finite loss trains normally.
    let fine = Classifier::new(config.init(&device), 0.1).with_guard(Interrupter::new());
    let batch = ImageBatch {
        images: Tensor::random([4, 3, 32, 32], Distribution::Default, &device),
        targets: Tensor::<1, Int>::from_ints([1, 2, 3, 4], &device),
    };
    assert!(!TrainStep::step(&fine, batch).grads.is_empty());
}
