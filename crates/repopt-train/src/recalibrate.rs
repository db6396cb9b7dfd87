//! Re-estimating BatchNorm running statistics from training batches, the weights unchanged.

use std::fmt;
use std::ops::RangeInclusive;

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
    let all = BatchNormSelection::All;
    reestimate_selected_batch_norms(model, batches, device, forward, estimate, &all)
}

/// [`reestimate_batch_norms`] for the BatchNorms `selection` names only; the others keep
/// their running statistics (their momentum is 0 while the batches pass, `r ← 1·r + 0·b`).
///
/// Fails when `selection` names a BatchNorm beyond the model's.
pub fn reestimate_selected_batch_norms<M>(
    model: M,
    batches: impl IntoIterator<Item = Result<Tensor<4>>>,
    device: &Device,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
    estimate: Estimate,
    selection: &BatchNormSelection,
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
    let chosen = selection.mask(momenta.len()).map_err(TrainError::Config)?;
    let mut seen = 0usize;
    for images in batches {
        seen += 1;
        let momentum = match estimate {
            Estimate::Average => 1.0 / seen as f64,
            Estimate::Momentum(m) => m,
        };
        let each: Vec<f64> = chosen
            .iter()
            .map(|&c| if c { momentum } else { 0.0 })
            .collect();
        model = model.with_batch_norm_momenta(&each);
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

/// Which of a model's BatchNorms re-estimation changes, numbered from 1 in forward order
/// (`MapBatchNorms`' order), written `9-21` or `1-8,22`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BatchNormSelection {
    /// Every BatchNorm.
    #[default]
    All,
    /// Those in these ranges, each within `1..=count`.
    Only(Vec<RangeInclusive<usize>>),
}

impl BatchNormSelection {
    /// Whether each of `count` BatchNorms, in forward order, is selected; an error naming
    /// the selection and `count` when it reaches beyond them.
    pub fn mask(&self, count: usize) -> std::result::Result<Vec<bool>, String> {
        let Self::Only(ranges) = self else {
            return Ok(vec![true; count]);
        };
        if let Some(beyond) = ranges.iter().map(|r| *r.end()).find(|&end| end > count) {
            return Err(format!(
                "BatchNorm {beyond} of {self} selected for re-estimation, but the model has {count}"
            ));
        }
        Ok((1..=count)
            .map(|n| ranges.iter().any(|r| r.contains(&n)))
            .collect())
    }
}

impl std::str::FromStr for BatchNormSelection {
    type Err = String;

    /// `9-21`, `1-8,22`: numbers from 1, ranges inclusive and ascending.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{text}: BatchNorms are numbers from 1 in forward order or ranges of them, e.g. 9-21 or 1-8,22"
            )
        };
        let number = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n >= 1);
        let range = |part: &str| match part.split_once('-') {
            Some((a, b)) => Some(number(a)?..=number(b)?).filter(|r| r.start() <= r.end()),
            None => number(part).map(|n| n..=n),
        };
        let ranges: Option<Vec<_>> = text.split(',').map(range).collect();
        ranges.map(Self::Only).ok_or_else(bad)
    }
}

impl fmt::Display for BatchNormSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self::Only(ranges) = self else {
            return f.write_str("all");
        };
        let parts: Vec<String> = ranges
            .iter()
            .map(|r| match r.start() == r.end() {
                true => r.start().to_string(),
                false => format!("{}-{}", r.start(), r.end()),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
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

    /// Selected BatchNorms get what re-estimating every one gives them; the others keep the
    /// model's statistics exactly.
    #[test]
    fn a_selection_re_estimates_those_layers_only() {
        let device = Device::flex();
        let config = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_num_classes(10)
            .with_mode(BlockMode::RepVgg);
        let forward = |m: &RepOptVgg, x: Tensor<4>| m.forward(x);
        let (model, _) =
            recalibrate_batch_norms(config.init(&device), [Ok(batch(7))], &device, forward)
                .unwrap();
        let two = || [Ok(batch(1)), Ok(batch(2))];
        let (every, _) = recalibrate_batch_norms(model.clone(), two(), &device, forward).unwrap();
        let selection: BatchNormSelection = "2-3,5".parse().unwrap();
        let (some, seen) = reestimate_selected_batch_norms(
            model.clone(),
            two(),
            &device,
            forward,
            Estimate::Average,
            &selection,
        )
        .unwrap();
        assert_eq!(seen, 2);
        let (before, every, some) = (statistics(model), statistics(every), statistics(some));
        assert!(before.len() >= 2 * 6, "{} statistics", before.len());
        for (i, values) in some.iter().enumerate() {
            let number = i / 2 + 1;
            let want = match [2, 3, 5].contains(&number) {
                true => &every[i],
                false => &before[i],
            };
            assert_eq!(values, want, "BatchNorm {number}");
            assert_ne!(
                every[i], before[i],
                "BatchNorm {number} unchanged by re-estimation"
            );
        }
    }

    #[test]
    fn a_selection_is_read_written_and_checked_against_the_model() {
        let parsed: BatchNormSelection = "9-21, 1 ,22-22".parse().unwrap();
        assert_eq!(
            parsed,
            BatchNormSelection::Only(vec![9..=21, 1..=1, 22..=22])
        );
        assert_eq!(parsed.to_string(), "9-21,1,22");
        assert_eq!(BatchNormSelection::All.to_string(), "all");
        for bad in ["", "0", "3-2", "1-", "x", "1,,2", "-4"] {
            let err = bad.parse::<BatchNormSelection>().unwrap_err();
            assert!(err.contains("e.g. 9-21"), "{bad}: {err}");
        }
        let mask = "2-3"
            .parse::<BatchNormSelection>()
            .unwrap()
            .mask(4)
            .unwrap();
        assert_eq!(mask, [false, true, true, false]);
        assert_eq!(BatchNormSelection::All.mask(2).unwrap(), [true, true]);
        let err = parsed.mask(21).unwrap_err();
        assert!(
            err.contains("BatchNorm 22 of 9-21,1,22") && err.contains("has 21"),
            "{err}"
        );
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
