//! Per-epoch shuffling that depends only on `(seed, epoch)`, so a resumed run sees the same
//! order as an uninterrupted one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::data::dataset::{Dataset, DatasetError};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::ImageItem;

/// A view of `inner` in an order reshuffled every epoch.
///
/// The epoch is `reads / len`: every item is read exactly once per epoch by a data loader, so
/// the count of reads tells the epoch without any hook. The permutation of epoch `e` is drawn from
/// a generator seeded by `(seed, e)`. Burn's own loader shuffling advances one generator across
/// epochs and forks it when a loader moves to a device, so a run resumed at epoch `e` could not
/// reproduce it; this one can ([`with_start_epoch`](Self::with_start_epoch)).
pub struct EpochShuffled<D> {
    inner: D,
    seed: u64,
    /// Items read per epoch: the first `len` of each epoch's permutation (`drop_last`).
    len: usize,
    reads: AtomicU64,
    order: Mutex<Option<(u64, Arc<Vec<usize>>)>>,
}

impl<D: Dataset<ImageItem>> EpochShuffled<D> {
    /// Shuffles `inner` with `seed`.
    pub fn new(inner: D, seed: u64) -> Self {
        let len = inner.len();
        Self {
            inner,
            seed,
            len,
            reads: AtomicU64::new(0),
            order: Mutex::new(None),
        }
    }

    /// Reads only the first `len` items of each epoch's permutation (at most all of them): with
    /// `len` a multiple of the batch size this is PyTorch's `drop_last=True` under shuffling,
    /// where the left-out images change from epoch to epoch. Call before
    /// [`with_start_epoch`](Self::with_start_epoch).
    pub fn with_epoch_len(mut self, len: usize) -> Self {
        self.len = len.min(self.inner.len());
        self
    }

    /// Starts at epoch `epoch` (for a resumed run).
    pub fn with_start_epoch(self, epoch: u64) -> Self {
        self.reads.store(epoch * self.len as u64, Ordering::Relaxed);
        self
    }

    /// The order of epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Arc<Vec<usize>> {
        let mut cached = self.order.lock().expect("shuffle cache poisoned");
        if let Some((e, order)) = cached.as_ref()
            && *e == epoch
        {
            return order.clone();
        }
        let mut order: Vec<usize> = (0..self.inner.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        order.shuffle(&mut rng);
        let order = Arc::new(order);
        *cached = Some((epoch, order.clone()));
        order
    }
}

impl<D: Dataset<ImageItem>> Dataset<ImageItem> for EpochShuffled<D> {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let len = self.len.max(1) as u64;
        let epoch = self.reads.fetch_add(1, Ordering::Relaxed) / len;
        let order = self.order(epoch);
        match order.get(index) {
            Some(&i) if index < self.len => self.inner.get(i),
            _ => Err(DatasetError::new(std::io::Error::other(format!(
                "index {index} is past the {} items of an epoch",
                self.len
            )))),
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}
