//! Decoded images kept in memory after their first read, within a byte budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::ImageItem;

/// The bytes of decoded pixels that the caches drawing on it may keep, together. Clones share
/// one budget, so a training and a test folder can split it between them.
#[derive(Debug, Clone)]
pub struct DecodedBudget {
    remaining: Arc<AtomicU64>,
}

impl DecodedBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        Self {
            remaining: Arc::new(AtomicU64::new(bytes)),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self::new(u64::MAX)
    }

    /// The bytes not yet taken.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if that many remain.
    fn take(&self, bytes: u64) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                r.checked_sub(bytes)
            })
            .is_ok()
    }

    /// Returns `bytes` taken before.
    fn give_back(&self, bytes: u64) {
        self.remaining.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// One slot per image of a dataset, filled by the image's first read while the budget lasts;
/// clones share the slots.
#[derive(Debug, Clone)]
pub struct DecodedCache {
    slots: Arc<Vec<OnceLock<ImageItem>>>,
    budget: DecodedBudget,
}

impl DecodedCache {
    /// Empty slots for `len` images, drawing on `budget`.
    pub fn new(len: usize, budget: DecodedBudget) -> Self {
        Self {
            slots: Arc::new((0..len).map(|_| OnceLock::new()).collect()),
            budget,
        }
    }

    /// The kept image at `index`, else the one `decode` gives, kept if the budget has room for
    /// its pixels. Two threads may decode one image at once; one copy is kept.
    ///
    /// # Panics
    /// If `index` is not below the number of slots.
    pub fn get_or_decode<E>(
        &self,
        index: usize,
        decode: impl FnOnce() -> Result<ImageItem, E>,
    ) -> Result<ImageItem, E> {
        let slot = &self.slots[index];
        if let Some(item) = slot.get() {
            return Ok(item.clone());
        }
        let item = decode()?;
        let bytes = item.pixels.len() as u64;
        if self.budget.take(bytes) && slot.set(item.clone()).is_err() {
            self.budget.give_back(bytes);
        }
        Ok(item)
    }

    /// How many images are kept.
    pub fn kept(&self) -> usize {
        self.slots.iter().filter(|s| s.get().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;

    fn item(label: usize) -> ImageItem {
        ImageItem::new(vec![label as u8; 12], 2, 2, 3, label)
    }

    #[test]
    fn images_are_kept_while_the_budget_lasts_and_decoded_again_after() {
        let budget = DecodedBudget::new(2 * 12 + 5);
        let cache = DecodedCache::new(3, budget.clone());
        let decodes = Cell::new(0);
        let get = |i: usize| {
            cache
                .get_or_decode(i, || {
                    decodes.set(decodes.get() + 1);
                    Ok::<_, Infallible>(item(i))
                })
                .unwrap()
        };
        for round in 0..2 {
            for i in 0..3 {
                assert_eq!(get(i), item(i), "round {round}, image {i}");
            }
        }
        assert_eq!(cache.kept(), 2);
        assert_eq!(budget.remaining(), 5);
        assert_eq!(
            decodes.get(),
            3 + 1,
            "only the image beyond the budget is decoded again"
        );
    }

    #[test]
    fn a_failed_decode_keeps_nothing_and_takes_nothing() {
        let budget = DecodedBudget::new(100);
        let cache = DecodedCache::new(1, budget.clone());
        assert_eq!(
            cache.get_or_decode(0, || Err("unreadable")),
            Err("unreadable")
        );
        assert_eq!((cache.kept(), budget.remaining()), (0, 100));
        assert_eq!(cache.get_or_decode(0, || Ok::<_, ()>(item(4))), Ok(item(4)));
        assert_eq!((cache.kept(), budget.remaining()), (1, 88));
    }

    #[test]
    fn folders_sharing_a_budget_split_it() {
        let budget = DecodedBudget::new(12);
        let (a, b) = (
            DecodedCache::new(1, budget.clone()),
            DecodedCache::new(1, budget.clone()),
        );
        a.get_or_decode(0, || Ok::<_, ()>(item(1))).unwrap();
        b.get_or_decode(0, || Ok::<_, ()>(item(2))).unwrap();
        assert_eq!((a.kept(), b.kept(), budget.remaining()), (1, 0, 0));
    }
}
