//! The data of a run: both splits of the data folder in its format, the transforms of the
//! recipe for the input size, and the normalisation.

use std::path::Path;
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};

use crate::config::{CACHE_IMAGES_AUTO_BYTES, CacheImages, DataFormat, Normalization, RunConfig};
use crate::data::randaug::RandAugment;
use crate::data::transform::{self, Compose, Fit};
use crate::data::{
    CifarDataset, CifarKind, DecodedBudget, IdxDataset, ImageFolder, ImageFolderOptions, ImageItem,
    Normalize, Split, Validation,
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
    let splits = open_splits(config, format)?;
    let class_names = class_names(format, splits.folder_classes, splits.num_classes);
    let input = input_transforms(config, splits.channels);
    let normalize = checked_normalization(config, format, input.channels)?;
    Ok(RunData {
        train: subset(splits.train, config.train_limit, config.seed),
        test: subset(splits.test, config.test_limit, config.seed ^ 1),
        num_classes: splits.num_classes,
        class_names,
        channels: input.channels,
        train_transform: input.train,
        eval_transform: input.eval,
        normalize,
        skipped: splits.skipped,
    })
}

/// Both splits of a data folder, as read from it.
struct Splits {
    train: SharedDataset,
    test: SharedDataset,
    num_classes: usize,
    /// Channels of the images on disk.
    channels: usize,
    /// Images skipped as unreadable.
    skipped: usize,
    /// The class folders' names (image folders only; empty otherwise).
    folder_classes: Vec<String>,
}

impl Splits {
    /// The splits of a format without class folders: no folder names, no image skipped.
    fn without_folders(
        train: impl Dataset<ImageItem> + 'static,
        test: impl Dataset<ImageItem> + 'static,
        num_classes: usize,
        channels: usize,
    ) -> Self {
        Self {
            train: Arc::new(train),
            test: Arc::new(test),
            num_classes,
            channels,
            skipped: 0,
            folder_classes: Vec::new(),
        }
    }
}

/// Opens both splits of `config`'s data folder in `format`.
fn open_splits(config: &RunConfig, format: DataFormat) -> Result<Splits> {
    let dir = &config.data;
    match format {
        DataFormat::Idx => {
            let train = IdxDataset::open(dir, Split::Train)?;
            let test = IdxDataset::open(dir, Split::Test)?;
            let num_classes = train.num_classes().max(test.num_classes());
            Ok(Splits::without_folders(train, test, num_classes, 1))
        }
        DataFormat::Cifar10 | DataFormat::Cifar100 => {
            let kind = if format == DataFormat::Cifar10 {
                CifarKind::Cifar10
            } else {
                CifarKind::Cifar100
            };
            let train = CifarDataset::open(dir, kind, Split::Train)?;
            let test = CifarDataset::open(dir, kind, Split::Test)?;
            Ok(Splits::without_folders(train, test, kind.num_classes(), 3))
        }
        DataFormat::ImageFolder => {
            open_image_folders(dir, config.skip_invalid, config.cache_images)
        }
    }
}

/// The image folders `train/` and `test/` (or `val/`) of `dir`, which must hold the same
/// classes; with `skip_invalid`, every image is decoded once and unreadable ones are skipped;
/// without, every file's header is read, so that an empty or foreign file stops the run before
/// it trains rather than when a batch first reaches it; decoded images kept in memory as
/// `cache` says.
fn open_image_folders(dir: &Path, skip_invalid: bool, cache: CacheImages) -> Result<Splits> {
    let options = ImageFolderOptions {
        validation: if skip_invalid {
            Validation::Decode
        } else {
            Validation::Header
        },
        skip_invalid,
        ..ImageFolderOptions::default()
    };
    let test_dir = ["test", "val"]
        .iter()
        .map(|d| dir.join(d))
        .find(|d| d.is_dir())
        .ok_or_else(|| file_error(dir, "no `test/` or `val/` folder beside `train/`"))?;
    let train = ImageFolder::open_with(dir.join("train"), &options)?;
    let test = ImageFolder::open_with(&test_dir, &options)?;
    let (train, test) = match decoded_budget(cache, &train, &test, CACHE_IMAGES_AUTO_BYTES) {
        Some(budget) => (
            train.keep_decoded(budget.clone()),
            test.keep_decoded(budget),
        ),
        None => (train, test),
    };
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
    Ok(Splits {
        skipped: train.num_skipped() + test.num_skipped(),
        num_classes: train.classes().len(),
        folder_classes: train.classes().to_vec(),
        channels: 3,
        train: Arc::new(train),
        test: Arc::new(test),
    })
}

/// What the two folders may keep of their decoded images, as `cache` says: `auto` shares
/// `auto_limit` bytes between them when both together are estimated to decode to at most that
/// (and keeps nothing otherwise, or when a first image does not decode: its error then comes
/// where it would without keeping), `on` keeps every image, `off` none.
fn decoded_budget(
    cache: CacheImages,
    train: &ImageFolder,
    test: &ImageFolder,
    auto_limit: u64,
) -> Option<DecodedBudget> {
    match cache {
        CacheImages::On => Some(DecodedBudget::unlimited()),
        CacheImages::Off => None,
        CacheImages::Auto => {
            let bytes =
                train.decoded_bytes_estimate().ok()? + test.decoded_bytes_estimate().ok()?;
            (bytes <= auto_limit).then(|| DecodedBudget::new(auto_limit))
        }
    }
}

/// Class names by label: CIFAR-10's names, the class folders' names, or else (also when their
/// number is not `num_classes`) the labels as numbers.
fn class_names(format: DataFormat, folder_classes: Vec<String>, num_classes: usize) -> Vec<String> {
    let names = match format {
        DataFormat::Cifar10 => crate::data::CIFAR10_CLASSES
            .iter()
            .map(|c| c.to_string())
            .collect(),
        _ => folder_classes,
    };
    match names.len() == num_classes {
        true => names,
        false => (0..num_classes).map(|c| c.to_string()).collect(),
    }
}

/// The transforms of a run and the channels of the network input they make.
struct InputTransforms {
    train: Compose,
    eval: Compose,
    channels: usize,
}

/// The recipe's transforms for images of `channels` channels at `config`'s input size; for
/// RepOpt-GhostNet gray images become RGB, and `--randaugment` adds RandAugment to training.
fn input_transforms(config: &RunConfig, channels: usize) -> InputTransforms {
    let (mut train, mut eval) = recipe(config.image_size, channels);
    let mut channels = channels;
    if config.model == crate::config::ModelKind::Ghostnet && channels == 1 {
        // RepOpt-GhostNet's stem takes 3 channels: gray images are replicated to RGB first (the
        // one-channel normalisation applies to each copy).
        let rgb = || transform::gray_adapter(true, None);
        train = rgb().extend(train);
        eval = rgb().extend(eval);
        channels = 3;
    }
    if let Some(magnitude) = config.randaugment {
        train = train.then(RandAugment::new(magnitude));
    }
    InputTransforms {
        train,
        eval,
        channels,
    }
}

/// The normalisation of `config` for data in `format`, refused unless it is made for inputs of
/// `channels` channels.
fn checked_normalization(
    config: &RunConfig,
    format: DataFormat,
    channels: usize,
) -> Result<Normalize> {
    let normalize = normalization(config.normalize, format, config.image_size);
    if !normalize.supports(channels) {
        return Err(TrainError::Config(format!(
            "--normalize {:?} is for {}-channel images, but {} holds {channels}-channel ones",
            config.normalize,
            normalize.mean.len(),
            config.data.display()
        )));
    }
    Ok(normalize)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A class folder `root/a` with one RGB image of `size`×`size` pixels per entry of `sizes`.
    fn folder(root: &Path, sizes: &[u32]) -> ImageFolder {
        let class = root.join("a");
        std::fs::create_dir_all(&class).unwrap();
        for (i, &size) in sizes.iter().enumerate() {
            image::RgbImage::from_pixel(size, size, image::Rgb([i as u8, 7, 9]))
                .save(class.join(format!("{i}.png")))
                .unwrap();
        }
        ImageFolder::open(root).unwrap()
    }

    #[test]
    fn auto_keeps_decoded_images_up_to_the_limit_on_and_off_as_told() {
        let tmp = tempfile::tempdir().unwrap();
        let train = folder(&tmp.path().join("train"), &[10; 3]);
        let test = folder(&tmp.path().join("test"), &[10; 2]);
        let bytes = (3 + 2) * 10 * 10 * 3;
        let budget =
            |cache, limit| decoded_budget(cache, &train, &test, limit).map(|b| b.remaining());
        assert_eq!(budget(CacheImages::Auto, bytes), Some(bytes));
        assert_eq!(budget(CacheImages::Auto, bytes - 1), None);
        assert_eq!(budget(CacheImages::On, 0), Some(u64::MAX));
        assert_eq!(budget(CacheImages::Off, u64::MAX), None);
    }

    /// A first image that does not decode keeps `auto` from keeping anything, and does not fail
    /// the open: the error comes when the image is read, as without keeping.
    #[test]
    fn auto_keeps_nothing_when_a_first_image_does_not_decode() {
        let tmp = tempfile::tempdir().unwrap();
        let train = folder(&tmp.path().join("train"), &[8; 2]);
        let test = folder(&tmp.path().join("test"), &[8; 2]);
        std::fs::write(&test.samples()[0].0, b"not an image").unwrap();
        assert!(decoded_budget(CacheImages::Auto, &train, &test, u64::MAX).is_none());
        assert!(decoded_budget(CacheImages::On, &train, &test, 0).is_some());
    }

    /// Images of other sizes than the first one's can make the estimate too low: `auto` still
    /// keeps no more than its limit, the rest are decoded from their files each time.
    #[test]
    fn auto_keeps_no_more_than_its_limit_when_the_estimate_is_low() {
        let tmp = tempfile::tempdir().unwrap();
        let train = folder(&tmp.path().join("train"), &[4, 20, 20]);
        let test = folder(&tmp.path().join("test"), &[4]);
        let limit = 4 * 4 * 3 * 4;
        let budget = decoded_budget(CacheImages::Auto, &train, &test, limit)
            .expect("the estimate (3 + 1 images of 4×4) fits");
        let train = train.keep_decoded(budget.clone());
        for i in 0..3 {
            train.load(i).unwrap();
        }
        assert_eq!(train.kept_decoded(), 1, "the 20×20 images exceed the limit");
        assert_eq!(budget.remaining(), limit - 4 * 4 * 3);
    }
}
