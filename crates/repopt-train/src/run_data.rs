//! The data of a run: both splits of the data folder in its format, the transforms of the
//! recipe for the input size, and the normalisation.

use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};

use crate::config::{DataFormat, Normalization, RunConfig};
use crate::data::randaug::RandAugment;
use crate::data::transform::{self, Compose, Fit};
use crate::data::{
    CifarDataset, CifarKind, IdxDataset, ImageFolder, ImageFolderOptions, ImageItem, Normalize,
    Split, Validation,
};
use crate::error::{Result, TrainError, file_error};

/// A dataset behind a shared pointer.
pub type SharedDataset = Arc<dyn Dataset<ImageItem>>;

/// The data of a run: both splits, their transforms and normalisation.
pub struct RunData {
    /// Training images.
    pub train: SharedDataset,
    /// Test images.
    pub test: SharedDataset,
    /// Number of classes.
    pub num_classes: usize,
    /// Class names, by label: folder names, CIFAR-10's names, or the labels as numbers.
    pub class_names: Vec<String>,
    /// Channels of the network input.
    pub channels: usize,
    /// Training augmentation.
    pub train_transform: Compose,
    /// Evaluation transform.
    pub eval_transform: Compose,
    /// Normalisation applied when batching.
    pub normalize: Normalize,
    /// Images skipped as unreadable (with `skip_invalid`).
    pub skipped: usize,
}

fn subset(dataset: SharedDataset, limit: Option<usize>, seed: u64) -> SharedDataset {
    match limit {
        Some(n) if n < dataset.len() => Arc::new(PartialDataset::new(
            ShuffledDataset::new(dataset, seed),
            0,
            n,
        )),
        _ => dataset,
    }
}

/// Opens the data of `config` (format detected when not given).
pub fn open_data(config: &RunConfig) -> Result<RunData> {
    let format = match config.format {
        Some(format) => format,
        None => DataFormat::detect(&config.data)?,
    };
    let dir = &config.data;
    let mut folder_classes = Vec::new();
    let (train, test, num_classes, channels, skipped): (SharedDataset, SharedDataset, _, _, _) =
        match format {
            DataFormat::Idx => {
                let train = IdxDataset::open(dir, Split::Train)?;
                let test = IdxDataset::open(dir, Split::Test)?;
                let classes = train.num_classes().max(test.num_classes());
                (Arc::new(train), Arc::new(test), classes, 1, 0)
            }
            DataFormat::Cifar10 | DataFormat::Cifar100 => {
                let kind = if format == DataFormat::Cifar10 {
                    CifarKind::Cifar10
                } else {
                    CifarKind::Cifar100
                };
                let train = CifarDataset::open(dir, kind, Split::Train)?;
                let test = CifarDataset::open(dir, kind, Split::Test)?;
                (Arc::new(train), Arc::new(test), kind.num_classes(), 3, 0)
            }
            DataFormat::ImageFolder => {
                let options = ImageFolderOptions {
                    validation: if config.skip_invalid {
                        Validation::Decode
                    } else {
                        Validation::None
                    },
                    skip_invalid: config.skip_invalid,
                    ..ImageFolderOptions::default()
                };
                let test_dir = ["test", "val"]
                    .iter()
                    .map(|d| dir.join(d))
                    .find(|d| d.is_dir())
                    .ok_or_else(|| {
                        file_error(dir, "no `test/` or `val/` folder beside `train/`")
                    })?;
                let train = ImageFolder::open_with(dir.join("train"), &options)?;
                let test = ImageFolder::open_with(&test_dir, &options)?;
                if train.classes() != test.classes() {
                    return Err(file_error(
                        &test_dir,
                        format!(
                            "its classes {:?} differ from the training classes {:?}",
                            test.classes(),
                            train.classes()
                        ),
                    ));
                }
                let skipped = train.num_skipped() + test.num_skipped();
                let classes = train.classes().len();
                folder_classes = train.classes().to_vec();
                (Arc::new(train), Arc::new(test), classes, 3, skipped)
            }
        };
    let class_names = match format {
        DataFormat::Cifar10 => crate::data::CIFAR10_CLASSES
            .iter()
            .map(|c| c.to_string())
            .collect(),
        _ => folder_classes,
    };
    let class_names = match class_names.len() == num_classes {
        true => class_names,
        false => (0..num_classes).map(|c| c.to_string()).collect(),
    };
    let (mut train_transform, mut eval_transform) = recipe(config.image_size, channels);
    let mut channels = channels;
    if config.model == crate::config::ModelKind::Ghostnet && channels == 1 {
        // RepOpt-GhostNet's stem takes 3 channels: gray images are replicated to RGB first (the
        // one-channel normalisation applies to each copy).
        let rgb = || transform::gray_adapter(true, None);
        train_transform = rgb().extend(train_transform);
        eval_transform = rgb().extend(eval_transform);
        channels = 3;
    }
    if let Some(magnitude) = config.randaugment {
        train_transform = train_transform.then(RandAugment::new(magnitude));
    }
    let normalize = normalization(config.normalize, format, config.image_size);
    if !normalize.supports(channels) {
        return Err(TrainError::Config(format!(
            "--normalize {:?} is for {}-channel images, but {} holds {channels}-channel ones",
            config.normalize,
            normalize.mean.len(),
            config.data.display()
        )));
    }
    Ok(RunData {
        train: subset(train, config.train_limit, config.seed),
        test: subset(test, config.test_limit, config.seed ^ 1),
        num_classes,
        class_names,
        channels,
        train_transform,
        eval_transform,
        normalize,
        skipped,
    })
}

/// The training and evaluation transforms for `size`×`size` inputs of `channels` channels.
///
/// Every image is brought to `size`×`size` for training and evaluation alike, whatever its own
/// size: above 64 px the official ImageNet recipe (RandomResizedCrop + flip; shorter side to
/// `size` + centre crop), otherwise the CIFAR recipe after resizing the shorter side to `size`
/// and centre cropping (random crop with `size / 8` zero padding + flip). One-channel sets
/// (MNIST, Fashion-MNIST) are zero-padded or centre-cropped to `size` (28 → 32 adds 2 px a side).
pub fn recipe(size: usize, channels: usize) -> (Compose, Compose) {
    if channels == 1 {
        let adapt = || transform::gray_adapter(false, Some((size, Fit::Pad)));
        let padding = size / 8;
        let train = adapt().then(transform::RandomCrop { size, padding });
        (train, adapt())
    } else if size > 64 {
        (
            transform::imagenet_train(size),
            transform::imagenet_eval(size),
        )
    } else {
        (transform::cifar_train_at(size), transform::fit(size))
    }
}

/// The input normalisation of `choice` for data of `format` at `size` px.
///
/// `auto`: CIFAR-10 and CIFAR-100 binaries their own statistics (the official ones for
/// CIFAR-100), IDX files Fashion-MNIST's, image folders CIFAR-10's at ≤ 64 px and ImageNet's
/// above.
pub fn normalization(choice: Normalization, format: DataFormat, size: usize) -> Normalize {
    match choice {
        Normalization::Cifar10 => Normalize::cifar(),
        Normalization::Cifar100 => Normalize::cifar100(),
        Normalization::Imagenet => Normalize::imagenet(),
        Normalization::FashionMnist => Normalize::fashion_mnist(),
        Normalization::Auto => match format {
            DataFormat::Cifar10 => Normalize::cifar(),
            DataFormat::Cifar100 => Normalize::cifar100(),
            DataFormat::Idx => Normalize::fashion_mnist(),
            DataFormat::ImageFolder if size > 64 => Normalize::imagenet(),
            DataFormat::ImageFolder => Normalize::cifar(),
        },
    }
}
