//! Re-estimating BatchNorm running statistics from training batches, the weights unchanged.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use repopt_models::MapBatchNorms;

use crate::error::{Result, TrainError};

/// `model` with the running mean and variance of every BatchNorm re-estimated from `batches`
/// (training images) as the plain average of their batch statistics, and how many batches
/// that took.
///
/// With momentum `m_k = 1/k` at the `k`-th batch the running statistic after `K` batches is
///
/// ```text
/// r_K = (1 − 1/K)·r_{K−1} + b_K / K = (1/K)·Σ_k b_k
/// ```
///
/// whatever it held before: PyTorch's `momentum=None`, as `torch.optim.swa_utils.update_bn`
/// uses it. `b_k` is the batch mean, or the unbiased batch variance. The batches pass through
/// the model in training mode on `device`'s autodiff device, without gradients; the weights
/// are unchanged, the layers' momenta restored, and the model returned for evaluation on
/// `device`.
///
/// `forward` is the model's forward pass. Fails when `batches` is empty or yields an error.
pub fn recalibrate_batch_norms<M>(
    model: M,
    batches: impl IntoIterator<Item = Result<Tensor<4>>>,
    device: &Device,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
) -> Result<(M, usize)>
where
    M: MapBatchNorms + Module,
{
    let training = device.clone().autodiff();
    let (mut model, momenta) = model
        .to_device(&training)
        .train()
        .no_grad()
        .batch_norm_momenta();
    let mut seen = 0usize;
    for images in batches {
        seen += 1;
        model = model.with_batch_norm_momentum(1.0 / seen as f64);
        drop(forward(&model, images?.to_device(&training)));
    }
    if seen == 0 {
        return Err(TrainError::Config(
            "no training batch to re-estimate the BatchNorm statistics on".into(),
        ));
    }
    let model = model.with_batch_norm_momenta(&momenta).valid();
    Ok((model.to_device(device), seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use repopt_models::{BatchNorm2d, BlockMode, RepOptVgg, RepOptVggConfig};

    /// Every BatchNorm's running mean and variance, in forward order, as numbers.
    fn statistics(model: RepOptVgg) -> Vec<Vec<f32>> {
        let mut found = Vec::new();
        model.map_batch_norms(&mut |bn: BatchNorm2d| {
            let (mean, var) = bn.running_stats();
            found.push(mean.into_data().try_to_vec::<f32>().unwrap());
            found.push(var.into_data().try_to_vec::<f32>().unwrap());
            bn
        });
        found
    }

    fn batch(seed: u64) -> Tensor<4> {
        let device = Device::flex();
        let n = 8 * 3 * 16 * 16;
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f32 / 250.0 - 1.5)
            .collect();
        Tensor::<1>::from_floats(values.as_slice(), &device).reshape([8, 3, 16, 16])
    }

    /// The re-estimated statistics of every layer are the average of those one batch alone
    /// gives, the momenta are restored and the weights kept.
    #[test]
    fn the_statistics_are_the_average_over_the_batches() {
        let device = Device::flex();
        for mode in [BlockMode::Target, BlockMode::RepVgg] {
            let config = RepOptVggConfig::preset("tiny")
                .unwrap()
                .with_num_classes(10)
                .with_mode(mode);
            let model = config.init(&device);
            let forward = |m: &RepOptVgg, x: Tensor<4>| m.forward(x);
            let each: Vec<Vec<Vec<f32>>> = (0..3)
                .map(|seed| {
                    let once = [Ok(batch(seed))];
                    let (alone, _) =
                        recalibrate_batch_norms(model.clone(), once, &device, forward).unwrap();
                    statistics(alone)
                })
                .collect();
            let all = (0..3).map(|seed| Ok(batch(seed)));
            let (model_after, seen) =
                recalibrate_batch_norms(model.clone(), all, &device, forward).unwrap();
            assert_eq!(seen, 3);
            let found = statistics(model_after.clone());
            assert_eq!(found.len(), each[0].len());
            for (layer, values) in found.iter().enumerate() {
                for (c, value) in values.iter().enumerate() {
                    let mean = (0..3).map(|s| each[s][layer][c]).sum::<f32>() / 3.0;
                    assert!(
                        (value - mean).abs() <= 1e-4 * (1.0 + mean.abs()),
                        "{mode} {layer} {c}"
                    );
                }
            }
            let (_, momenta) = model_after.clone().batch_norm_momenta();
            assert!(momenta.iter().all(|m| *m == 0.1));
            let weight = |m: &RepOptVgg| {
                m.linear
                    .weight
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            };
            assert_eq!(weight(&model_after), weight(&model));
        }
    }

    #[test]
    fn no_batch_is_a_clear_error() {
        let device = Device::flex();
        let model = RepOptVggConfig::preset("tiny").unwrap().init(&device);
        let none: [Result<Tensor<4>>; 0] = [];
        let err = recalibrate_batch_norms(model, none, &device, |m, x| m.forward(x)).unwrap_err();
        assert!(err.to_string().contains("no training batch"), "{err}");
    }
}
