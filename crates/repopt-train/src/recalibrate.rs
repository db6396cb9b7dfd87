//! Re-estimating BatchNorm running statistics from training batches, the weights unchanged.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use repopt_models::MapBatchNorms;

use crate::error::{Result, TrainError};

/// How re-estimation folds each batch's statistics `b_k` into the running ones `r`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimate {
    /// The plain average of the batches' statistics, whatever the running statistics held:
    /// momentum `m_k = 1/k` at the `k`-th batch,
    ///
    /// ```text
    /// r_K = (1 − 1/K)·r_{K−1} + b_K / K = (1/K)·Σ_k b_k
    /// ```
    ///
    /// PyTorch's `momentum=None`, as `torch.optim.swa_utils.update_bn` uses it.
    Average,
    /// Training's exponential average with momentum `m`, from the statistics the model holds:
    ///
    /// ```text
    /// r_k = (1 − m)·r_{k−1} + m·b_k
    /// ```
    ///
    /// With the weights fixed, this shows what training's running statistics would be
    /// without the weights moving under them (Burn's and PyTorch's `m` is 0.1).
    Momentum(f64),
}

/// `model` with the running mean and variance of every BatchNorm re-estimated from `batches`
/// (training images) as the plain average of their batch statistics ([`Estimate::Average`]),
/// and how many batches that took.
///
/// `b_k` is the batch mean, or the unbiased batch variance. The batches pass through the model
/// in training mode on `device`'s autodiff device, without gradients; the weights are
/// unchanged, the layers' momenta restored, and the model returned for evaluation on `device`.
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
    reestimate_batch_norms(model, batches, device, forward, Estimate::Average)
}

/// [`recalibrate_batch_norms`] with the running statistics folded as `estimate` says.
pub fn reestimate_batch_norms<M>(
    model: M,
    batches: impl IntoIterator<Item = Result<Tensor<4>>>,
    device: &Device,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
    estimate: Estimate,
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
        let momentum = match estimate {
            Estimate::Average => 1.0 / seen as f64,
            Estimate::Momentum(m) => m,
        };
        model = model.with_batch_norm_momentum(momentum);
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

    /// Training's rule from the model's own statistics `r_0`, over two batches whose
    /// statistics alone are `b_1`, `b_2`: `(1 − m)²·r_0 + m(1 − m)·b_1 + m·b_2`.
    #[test]
    fn momentum_folds_the_batches_into_the_held_statistics() {
        let device = Device::flex();
        let config = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10);
        // A model that has seen one batch already, so that r_0 is not the initial 0 and 1.
        let once = [Ok(batch(7))];
        let forward = |m: &RepOptVgg, x: Tensor<4>| m.forward(x);
        let (model, _) =
            recalibrate_batch_norms(config.init(&device), once, &device, forward).unwrap();
        let alone = |seed| {
            let (m, _) =
                recalibrate_batch_norms(model.clone(), [Ok(batch(seed))], &device, forward)
                    .unwrap();
            statistics(m)
        };
        let (r0, b1, b2) = (statistics(model.clone()), alone(1), alone(2));
        let m = 0.3f32;
        let both = [Ok(batch(1)), Ok(batch(2))];
        let estimate = Estimate::Momentum(m as f64);
        let (after, seen) =
            reestimate_batch_norms(model, both, &device, forward, estimate).unwrap();
        assert_eq!(seen, 2);
        for (layer, values) in statistics(after).iter().enumerate() {
            for (c, value) in values.iter().enumerate() {
                let want = (1.0 - m) * (1.0 - m) * r0[layer][c]
                    + m * (1.0 - m) * b1[layer][c]
                    + m * b2[layer][c];
                assert!(
                    (value - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{layer} {c}: {value} vs {want}"
                );
            }
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
