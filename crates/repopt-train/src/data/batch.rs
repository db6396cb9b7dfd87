//! Batching for Burn: [`ImageBatch`], [`ImageBatcher`], seeded per-item augmentation
//! ([`AugmentedDataset`]) and data-loader builders ([`train_loader`], [`eval_loader`]).
//!
//! Randomness: Burn's `Batcher` sees neither item indices nor epochs, and with several workers
//! the order in which items reach it is not deterministic, so augmentation is done in the
//! dataset, not the batcher. [`AugmentedDataset::get`] seeds a fresh RNG from
//! `(seed, index, draw)`, where `draw` counts how many times that index has been read (once
//! per epoch in a loader): results are reproducible for a seed whatever the worker count,
//! and differ between epochs. The transform runs on the loader's worker threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;

use super::transform::{AugRng, Transform};
use super::{ImageItem, Normalize};

/// A batch of images and class targets.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Normalised images, `[N, C, H, W]`, `f32` (the device's float type).
    pub images: Tensor<4>,
    /// Class indices, `[N]`.
    pub targets: Tensor<1, Int>,
}

/// Normalises items and stacks them into an [`ImageBatch`] on the loader's device.
///
/// All items of a batch must have the same shape (use a crop/resize transform for sets of
/// varying sizes); the batcher panics otherwise, as Burn's `Batcher` cannot return errors.
#[derive(Debug, Clone)]
pub struct ImageBatcher {
    normalize: Normalize,
}

impl ImageBatcher {
    /// A batcher applying `normalize`.
    pub fn new(normalize: Normalize) -> Self {
        Self { normalize }
    }

    /// The normalisation applied.
    pub fn normalize(&self) -> &Normalize {
        &self.normalize
    }

    /// The normalised CHW values of `items`, stacked, and their labels: the host-side part of
    /// [`Batcher::batch`]. Returns `(values, [n, c, h, w], labels)`.
    ///
    /// # Panics
    /// If `items` is empty or the items' shapes differ.
    pub fn stack(&self, items: &[ImageItem]) -> (Vec<f32>, [usize; 4], Vec<i64>) {
        let first = items.first().expect("ImageBatcher: empty batch");
        let (h, w, c) = first.shape();
        let size = h * w * c;
        let mut values = vec![0f32; items.len() * size];
        for (item, out) in items.iter().zip(values.chunks_exact_mut(size)) {
            assert_eq!(
                item.shape(),
                (h, w, c),
                "ImageBatcher: items of different shapes (HWC) in one batch; \
                 add a crop/resize transform"
            );
            self.normalize.write_chw(item, out);
        }
        let labels = items.iter().map(|i| i.label as i64).collect();
        (values, [items.len(), c, h, w], labels)
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let (values, shape, labels) = self.stack(&items);
        let n = labels.len();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(values, shape), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG [`AugmentedDataset`] uses for `index` at its `draw`-th read, given `seed`.
pub fn item_rng(seed: u64, index: usize, draw: u32) -> AugRng {
    let s = mix64(mix64(mix64(seed) ^ index as u64) ^ u64::from(draw));
    AugRng::seed_from_u64(s)
}

/// A dataset whose items go through a [`Transform`] with a per-item, per-draw RNG.
///
/// `get(index)` uses [`item_rng`]`(seed, index, draw)` where `draw` = the start epoch + the
/// number of earlier reads of `index`; [`get_at`](Self::get_at) picks the draw explicitly.
pub struct AugmentedDataset<D> {
    inner: D,
    transform: Arc<dyn Transform>,
    seed: u64,
    draws: Vec<AtomicU32>,
}

impl<D: Dataset<ImageItem>> AugmentedDataset<D> {
    /// Wraps `inner`, transforming its items with `transform` seeded by `seed`.
    pub fn new(inner: D, transform: impl Transform + 'static, seed: u64) -> Self {
        let draws = (0..inner.len()).map(|_| AtomicU32::new(0)).collect();
        Self {
            inner,
            transform: Arc::new(transform),
            seed,
            draws,
        }
    }

    /// Starts the draw counters at `epoch` (to resume a run at that epoch with the
    /// augmentation it would have had).
    pub fn with_start_epoch(self, epoch: u32) -> Self {
        for d in &self.draws {
            d.store(epoch, Ordering::Relaxed);
        }
        self
    }

    /// The item at `index` transformed with the RNG of draw `draw` (no counter change).
    pub fn get_at(&self, index: usize, draw: u32) -> Result<ImageItem, DatasetError> {
        let item = self.inner.get(index)?;
        let mut rng = item_rng(self.seed, index, draw);
        Ok(self.transform.apply(item, &mut rng))
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset<ImageItem>> Dataset<ImageItem> for AugmentedDataset<D> {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let draw = self.draws[index].fetch_add(1, Ordering::Relaxed);
        self.get_at(index, draw)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

/// Settings of [`train_loader`] / [`eval_loader`].
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Items per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Background worker threads (0: load on the iterating thread).
    pub num_workers: usize,
    /// Seed of the shuffling (train) and of the augmentation.
    pub seed: u64,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            batch_size: 128,
            num_workers: 4,
            seed: 0,
        }
    }
}

/// A shuffling loader of augmented, normalised batches on `device`.
///
/// The order is reshuffled each epoch (Burn: with workers, the set is shuffled once and split
/// between workers, each reshuffling its part each epoch); augmentation as in
/// [`AugmentedDataset`] with a seed derived from `options.seed`.
pub fn train_loader<D>(
    dataset: D,
    transform: impl Transform + 'static,
    normalize: Normalize,
    options: &LoaderOptions,
    device: &Device,
) -> Arc<dyn DataLoader<ImageBatch>>
where
    D: Dataset<ImageItem> + 'static,
{
    let augmented = AugmentedDataset::new(dataset, transform, mix64(options.seed ^ 0xA5A5));
    loader_builder(normalize, options, device)
        .shuffle(options.seed)
        .build(augmented)
}

/// A loader in dataset order (no shuffling) of transformed, normalised batches on `device`.
pub fn eval_loader<D>(
    dataset: D,
    transform: impl Transform + 'static,
    normalize: Normalize,
    options: &LoaderOptions,
    device: &Device,
) -> Arc<dyn DataLoader<ImageBatch>>
where
    D: Dataset<ImageItem> + 'static,
{
    let augmented = AugmentedDataset::new(dataset, transform, mix64(options.seed ^ 0x5A5A));
    loader_builder(normalize, options, device).build(augmented)
}

/// A loader builder of `options`' batch size and worker count whose batches, normalised by
/// `normalize`, land on `device`; in dataset order unless told to shuffle.
fn loader_builder(
    normalize: Normalize,
    options: &LoaderOptions,
    device: &Device,
) -> DataLoaderBuilder<ImageItem, ImageBatch> {
    DataLoaderBuilder::new(ImageBatcher::new(normalize))
        .batch_size(options.batch_size)
        .num_workers(options.num_workers)
        .set_device(device.clone())
}
