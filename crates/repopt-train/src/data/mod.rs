//! The data pipeline: datasets from real files, augmentation, batching and data loaders.
//!
//! * Datasets implement Burn's [`Dataset<ImageItem>`](burn::data::dataset::Dataset):
//!   [`ImageFolder`] (ImageNet layout `root/<class>/<image>`, decoded lazily),
//!   [`CifarDataset`] (CIFAR-10 / CIFAR-100 binary batches, in memory) and [`IdxDataset`]
//!   (MNIST / Fashion-MNIST IDX files, gzipped or not, in memory).
//! * [`transform`] holds the augmentation recipes (CIFAR random crop + flip, ImageNet
//!   RandomResizedCrop + flip, resize + centre crop for evaluation, grayscale helpers) working
//!   on `u8` [`ImageItem`]s, and [`Normalize`], applied when batching.
//! * [`AugmentedDataset`] applies a transform with a per-item, per-epoch seeded RNG;
//!   [`ImageBatcher`] turns items into an [`ImageBatch`] (`[N, C, H, W]` f32 + `[N]` int
//!   targets); [`train_loader`] / [`eval_loader`] build Burn data loaders.
//!
//! Failures are [`DataError`]s naming the file and the problem. Inside a Burn data loader they
//! travel as [`DatasetError`](burn::data::dataset::DatasetError) with the same message.

pub mod batch;
pub mod cifar;
pub mod decoded_cache;
pub mod epoch_shuffle;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod pil_ops;
pub mod randaug;
pub mod transform;

pub use batch::{
    AugmentedDataset, ImageBatch, ImageBatcher, LoaderOptions, eval_loader, item_rng, train_loader,
};
pub use cifar::{CIFAR10_CLASSES, CifarDataset, CifarKind, write_cifar10};
pub use decoded_cache::DecodedBudget;
pub use epoch_shuffle::EpochShuffled;
pub use error::DataError;
pub use idx::{IdxArray, IdxDataset, read_idx};
pub use image_folder::{ColorMode, ImageFolder, ImageFolderOptions, SkippedFile, Validation};
pub use transform::Normalize;

/// Which part of a dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The test (evaluation) set.
    Test,
}

/// One image with its label: `u8` pixels in HWC order (row-major, channels interleaved).
///
/// `pixels.len() == height * width * channels`; `channels` is 1 (gray) or 3 (RGB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// Pixel values, `pixels[(y * width + x) * channels + c]`.
    pub pixels: Vec<u8>,
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
    /// Number of channels (1 or 3).
    pub channels: usize,
    /// Class index.
    pub label: usize,
}

impl ImageItem {
    /// An item from its parts.
    ///
    /// # Panics
    /// If `pixels.len() != height * width * channels`.
    pub fn new(
        pixels: Vec<u8>,
        height: usize,
        width: usize,
        channels: usize,
        label: usize,
    ) -> Self {
        assert_eq!(
            pixels.len(),
            height * width * channels,
            "ImageItem: {} pixel values for {height}x{width}x{channels}",
            pixels.len()
        );
        Self {
            pixels,
            height,
            width,
            channels,
            label,
        }
    }

    /// An all-zero image.
    pub fn zeros(height: usize, width: usize, channels: usize, label: usize) -> Self {
        Self::new(
            vec![0; height * width * channels],
            height,
            width,
            channels,
            label,
        )
    }

    /// The value at row `y`, column `x`, channel `c`.
    pub fn at(&self, y: usize, x: usize, c: usize) -> u8 {
        self.pixels[(y * self.width + x) * self.channels + c]
    }

    /// `(height, width, channels)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.height, self.width, self.channels)
    }
}
