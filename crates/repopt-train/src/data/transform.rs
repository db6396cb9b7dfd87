//! Augmentation and preprocessing on [`ImageItem`]s (`u8`, HWC), and normalisation.
//!
//! Geometric transforms implement [`Transform`] and take an explicit RNG ([`AugRng`]), so a
//! pipeline is deterministic given the RNG's seed ([`AugmentedDataset`](super::AugmentedDataset)
//! derives one per item and epoch). [`Normalize`] turns a `u8` item into `f32` CHW values and
//! is applied by the [`ImageBatcher`](super::ImageBatcher).
//!
//! Recipes: [`cifar_train`] (random crop 32 with zero padding 4 + horizontal flip),
//! [`cifar_eval`] (nothing), [`imagenet_train`] (RandomResizedCrop + flip), [`imagenet_eval`]
//! (resize the shorter side to `size`, centre crop, as the official default), [`gray_adapter`] (1-channel
//! inputs to 3 channels and/or 32×32).

use std::fmt::Debug;
use std::sync::Arc;

use rand::RngExt;

use super::ImageItem;

/// The RNG type transforms draw from.
pub type AugRng = rand::rngs::StdRng;

/// CIFAR-10 per-channel mean (RGB, on `[0, 1]` values).
pub const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 per-channel standard deviation.
pub const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// CIFAR-100 mean per channel, as the official `data/build.py`.
pub const CIFAR100_MEAN: [f32; 3] = [0.507_075_16, 0.486_548_87, 0.440_917_84];
/// CIFAR-100 std per channel, as the official `data/build.py`.
pub const CIFAR100_STD: [f32; 3] = [0.267_334_29, 0.256_438_46, 0.276_150_47];
/// ImageNet per-channel mean.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Fashion-MNIST mean (1 channel).
pub const FASHION_MNIST_MEAN: [f32; 1] = [0.2860];
/// Fashion-MNIST standard deviation (1 channel).
pub const FASHION_MNIST_STD: [f32; 1] = [0.3530];

/// A (possibly random) transformation of an item.
pub trait Transform: Send + Sync + Debug {
    /// Transforms `item`, drawing any randomness from `rng`.
    fn apply(&self, item: ImageItem, rng: &mut AugRng) -> ImageItem;
}

/// Transforms applied in order.
#[derive(Debug, Clone, Default)]
pub struct Compose(pub Vec<Arc<dyn Transform>>);

impl Compose {
    /// An empty pipeline (the identity).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a transform.
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.0.push(Arc::new(t));
        self
    }

    /// Appends all transforms of `other`.
    pub fn extend(mut self, other: Compose) -> Self {
        self.0.extend(other.0);
        self
    }
}

impl Transform for Compose {
    fn apply(&self, mut item: ImageItem, rng: &mut AugRng) -> ImageItem {
        for t in &self.0 {
            item = t.apply(item, rng);
        }
        item
    }
}

/// Random `size`×`size` crop of the image zero-padded by `padding` on every side
/// (torchvision `RandomCrop(size, padding)`).
#[derive(Debug, Clone, Copy)]
pub struct RandomCrop {
    /// Side of the crop.
    pub size: usize,
    /// Zero padding added on each side before cropping.
    pub padding: usize,
}

impl Transform for RandomCrop {
    fn apply(&self, item: ImageItem, rng: &mut AugRng) -> ImageItem {
        let p = self.padding as isize;
        let range_y = (item.height + 2 * self.padding).saturating_sub(self.size);
        let range_x = (item.width + 2 * self.padding).saturating_sub(self.size);
        let top = rng.random_range(0..=range_y) as isize - p;
        let left = rng.random_range(0..=range_x) as isize - p;
        crop(&item, top, left, self.size, self.size)
    }
}

/// Horizontal flip with probability `p`.
#[derive(Debug, Clone, Copy)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping.
    pub p: f64,
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, item: ImageItem, rng: &mut AugRng) -> ImageItem {
        if rng.random_bool(self.p) {
            hflip(&item)
        } else {
            item
        }
    }
}

/// torchvision's `RandomResizedCrop`: a random region of relative area in `scale` and aspect
/// ratio (w/h) in `ratio` (log-uniform), resized (bilinear) to `size`×`size`.
#[derive(Debug, Clone, Copy)]
pub struct RandomResizedCrop {
    /// Output side.
    pub size: usize,
    /// Range of the region's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the region's aspect ratio (width / height).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// The ImageNet defaults: scale (0.08, 1), ratio (3/4, 4/3).
    pub fn new(size: usize) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, item: ImageItem, rng: &mut AugRng) -> ImageItem {
        let (top, left, h, w) =
            random_resized_crop_params(item.height, item.width, self.scale, self.ratio, rng);
        let region = crop(&item, top as isize, left as isize, h, w);
        resize(&region, self.size, self.size)
    }
}

/// Resize so that the shorter side is `size` (torchvision `Resize(int)`; the longer side is
/// `floor(size * long / short)`).
#[derive(Debug, Clone, Copy)]
pub struct ResizeShorter {
    /// Target of the shorter side.
    pub size: usize,
}

impl Transform for ResizeShorter {
    fn apply(&self, item: ImageItem, _rng: &mut AugRng) -> ImageItem {
        resize_shorter(&item, self.size)
    }
}

/// Resize to exactly `height`×`width` (bilinear).
#[derive(Debug, Clone, Copy)]
pub struct Resize {
    /// Output rows.
    pub height: usize,
    /// Output columns.
    pub width: usize,
}

impl Transform for Resize {
    fn apply(&self, item: ImageItem, _rng: &mut AugRng) -> ImageItem {
        resize(&item, self.height, self.width)
    }
}

/// Centre crop to `height`×`width`, zero-padding when the image is smaller (torchvision
/// `CenterCrop`); e.g. 28×28 → 32×32 pads 2 pixels on each side.
#[derive(Debug, Clone, Copy)]
pub struct CenterCrop {
    /// Output rows.
    pub height: usize,
    /// Output columns.
    pub width: usize,
}

impl Transform for CenterCrop {
    fn apply(&self, item: ImageItem, _rng: &mut AugRng) -> ImageItem {
        center_crop(&item, self.height, self.width)
    }
}

/// Replicates a 1-channel image to 3 channels (3-channel images pass unchanged).
#[derive(Debug, Clone, Copy)]
pub struct GrayToRgb;

impl Transform for GrayToRgb {
    fn apply(&self, item: ImageItem, _rng: &mut AugRng) -> ImageItem {
        gray_to_rgb(item)
    }
}

/// CIFAR training augmentation: random crop 32 with zero padding 4, random horizontal flip.
pub fn cifar_train() -> Compose {
    Compose::new()
        .then(RandomCrop {
            size: 32,
            padding: 4,
        })
        .then(RandomHorizontalFlip { p: 0.5 })
}

/// CIFAR evaluation: no transform (normalisation happens in the batcher).
pub fn cifar_eval() -> Compose {
    Compose::new()
}

/// ImageNet training augmentation: RandomResizedCrop to `size` (scale (0.08, 1), ratio
/// (3/4, 4/3), bilinear), random horizontal flip.
pub fn imagenet_train(size: usize) -> Compose {
    Compose::new()
        .then(RandomResizedCrop::new(size))
        .then(RandomHorizontalFlip { p: 0.5 })
}

/// ImageNet evaluation as the official `data/build.py` (its default `TEST.CROP = False`): resize
/// the shorter side to `size` (bilinear), then centre crop `size`×`size`.
pub fn imagenet_eval(size: usize) -> Compose {
    fit(size)
}

/// Any image to `size`×`size`: shorter side resized to `size` (bilinear, antialiased), then a
/// centre crop; an image already `size`×`size` passes unchanged.
pub fn fit(size: usize) -> Compose {
    Compose::new()
        .then(ResizeShorter { size })
        .then(CenterCrop {
            height: size,
            width: size,
        })
}

/// The CIFAR recipe at any input size, for images of any size: [`fit`] to `size`×`size`, then a
/// random crop of `size` with zero padding `size / 8` (4 at 32) and a horizontal flip.
pub fn cifar_train_at(size: usize) -> Compose {
    fit(size)
        .then(RandomCrop {
            size,
            padding: size / 8,
        })
        .then(RandomHorizontalFlip { p: 0.5 })
}

/// How [`gray_adapter`] brings an image to the target size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Zero-pad (or centre crop) to the target size: 28×28 → 32×32 adds 2 pixels per side.
    Pad,
    /// Bilinear resize to the target size.
    Resize,
}

/// Preprocessing for grayscale sets such as Fashion-MNIST: optionally replicate to 3 channels
/// and optionally bring to `size`×`size` (e.g. 32 for CIFAR-shaped networks). Put it before
/// the augmentation recipe (e.g. `gray_adapter(true, Some((32, Fit::Pad))).extend(cifar_train())`).
pub fn gray_adapter(to_rgb: bool, size: Option<(usize, Fit)>) -> Compose {
    let mut c = Compose::new();
    if to_rgb {
        c = c.then(GrayToRgb);
    }
    match size {
        Some((s, Fit::Pad)) => c.then(CenterCrop {
            height: s,
            width: s,
        }),
        Some((s, Fit::Resize)) => c.then(Resize {
            height: s,
            width: s,
        }),
        None => c,
    }
}

/// Per-channel normalisation `(x / 255 - mean[c]) / std[c]`, producing CHW `f32` values.
///
/// `mean` / `std` have one value per channel, or a single value used for all channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// Per-channel mean, on `[0, 1]` values.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, on `[0, 1]` values.
    pub std: Vec<f32>,
}

impl Normalize {
    /// Normalisation with the given mean and std.
    ///
    /// # Panics
    /// If the lengths differ, are 0, or a std is not positive.
    pub fn new(mean: impl Into<Vec<f32>>, std: impl Into<Vec<f32>>) -> Self {
        let (mean, std) = (mean.into(), std.into());
        assert!(
            !mean.is_empty() && mean.len() == std.len(),
            "Normalize: mean {mean:?} and std {std:?} must be non-empty and of the same length"
        );
        assert!(
            std.iter().all(|&s| s > 0.0),
            "Normalize: std {std:?} must be positive"
        );
        Self { mean, std }
    }

    /// The CIFAR defaults: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
    pub fn cifar() -> Self {
        Self::new(CIFAR_MEAN, CIFAR_STD)
    }

    /// CIFAR-100 (the official values): mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564,
    /// 0.2762).
    pub fn cifar100() -> Self {
        Self::new(CIFAR100_MEAN, CIFAR100_STD)
    }

    /// The ImageNet defaults: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    pub fn imagenet() -> Self {
        Self::new(IMAGENET_MEAN, IMAGENET_STD)
    }

    /// Fashion-MNIST (1 channel): mean 0.2860, std 0.3530.
    pub fn fashion_mnist() -> Self {
        Self::new(FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    }

    /// Only scales to `[0, 1]` (mean 0, std 1).
    pub fn unit() -> Self {
        Self::new([0.0], [1.0])
    }

    /// Whether this normalisation applies to images with `channels` channels.
    pub fn supports(&self, channels: usize) -> bool {
        self.mean.len() == 1 || self.mean.len() == channels
    }

    /// Writes the normalised CHW values of `item` to `out` (`out.len()` = the item's size).
    ///
    /// # Panics
    /// If the channel counts don't match (see [`supports`](Self::supports)) or `out` has the
    /// wrong length.
    pub fn write_chw(&self, item: &ImageItem, out: &mut [f32]) {
        let (h, w, c) = item.shape();
        assert!(
            self.supports(c),
            "Normalize has {} channel(s) but the image has {c} (add GrayToRgb?)",
            self.mean.len()
        );
        assert_eq!(out.len(), h * w * c, "Normalize: output buffer size");
        let plane = h * w;
        for ch in 0..c {
            let k = if self.mean.len() == 1 { 0 } else { ch };
            // (x / 255 - mean) / std = x * a + b
            let a = 1.0 / (255.0 * self.std[k]);
            let b = -self.mean[k] / self.std[k];
            let dst = &mut out[ch * plane..(ch + 1) * plane];
            for (d, px) in dst.iter_mut().zip(item.pixels.chunks_exact(c)) {
                *d = f32::from(px[ch]) * a + b;
            }
        }
    }

    /// The normalised CHW values of `item`.
    pub fn to_chw(&self, item: &ImageItem) -> Vec<f32> {
        let mut out = vec![0.0; item.pixels.len()];
        self.write_chw(item, &mut out);
        out
    }
}

/// Mirrors the image left-right.
pub fn hflip(item: &ImageItem) -> ImageItem {
    let (h, w, c) = item.shape();
    let mut pixels = Vec::with_capacity(item.pixels.len());
    for row in item.pixels.chunks_exact(w * c) {
        for px in row.chunks_exact(c).rev() {
            pixels.extend_from_slice(px);
        }
    }
    ImageItem::new(pixels, h, w, c, item.label)
}

/// The `height`×`width` region whose top-left corner is (`top`, `left`); the region may extend
/// past the image, where it is zero (so `crop(item, -p, -p, h + 2p, w + 2p)` zero-pads).
pub fn crop(item: &ImageItem, top: isize, left: isize, height: usize, width: usize) -> ImageItem {
    let (h, w, c) = item.shape();
    let mut pixels = vec![0u8; height * width * c];
    // Columns of the output that fall inside the source.
    let x0 = (-left).clamp(0, width as isize) as usize;
    let x1 = (w as isize - left).clamp(0, width as isize) as usize;
    if x0 < x1 {
        for y in 0..height {
            let sy = top + y as isize;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            let sx0 = (left + x0 as isize) as usize;
            let src =
                &item.pixels[(sy as usize * w + sx0) * c..(sy as usize * w + sx0 + x1 - x0) * c];
            pixels[(y * width + x0) * c..(y * width + x1) * c].copy_from_slice(src);
        }
    }
    ImageItem::new(pixels, height, width, c, item.label)
}

/// Python's `round` (half to even), as torchvision's centre crop uses it.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// Centre crop to `height`×`width`, zero-padding where the image is smaller (torchvision
/// `CenterCrop` offsets).
pub fn center_crop(item: &ImageItem, height: usize, width: usize) -> ImageItem {
    let top = round_half_even((item.height as f64 - height as f64) / 2.0) as isize;
    let left = round_half_even((item.width as f64 - width as f64) / 2.0) as isize;
    crop(item, top, left, height, width)
}

/// Resize so that the shorter side is `size` (the longer one is `floor(size * long / short)`).
pub fn resize_shorter(item: &ImageItem, size: usize) -> ImageItem {
    let (h, w) = (item.height, item.width);
    if h <= w {
        resize(item, size, (size * w / h).max(1))
    } else {
        resize(item, (size * h / w).max(1), size)
    }
}

/// Replicates a 1-channel image to 3 channels; other images are returned unchanged.
pub fn gray_to_rgb(item: ImageItem) -> ImageItem {
    if item.channels != 1 {
        return item;
    }
    let pixels = item.pixels.iter().flat_map(|&v| [v, v, v]).collect();
    ImageItem::new(pixels, item.height, item.width, 3, item.label)
}

/// torchvision's `RandomResizedCrop.get_params`: `(top, left, height, width)` of a region of
/// an `height`×`width` image (10 random tries, then a centre-crop fallback).
pub fn random_resized_crop_params(
    height: usize,
    width: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut AugRng,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    // Fallback: the whole image, clamped to the ratio range, centred.
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio.0.min(ratio.1) {
        (
            ((width as f64) / ratio.0.min(ratio.1)).round() as usize,
            width,
        )
    } else if in_ratio > ratio.0.max(ratio.1) {
        (
            height,
            ((height as f64) * ratio.0.max(ratio.1)).round() as usize,
        )
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height), w.clamp(1, width));
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// A uniform draw on `[lo, hi)` (`lo` when the range is empty).
fn uniform(rng: &mut AugRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Bilinear resize to `height`×`width` with PIL's resampling: a triangle filter whose support
/// grows with the shrink factor (antialiased when shrinking), pixel centres at `+0.5`.
pub fn resize(item: &ImageItem, height: usize, width: usize) -> ImageItem {
    let (h, w, c) = item.shape();
    if (h, w) == (height, width) {
        return item.clone();
    }
    assert!(
        h > 0 && w > 0 && height > 0 && width > 0,
        "resize: {h}x{w} -> {height}x{width}"
    );
    let wx = filter_weights(w, width);
    let wy = filter_weights(h, height);
    // Horizontal pass: h × width × c floats.
    let mut tmp = vec![0f32; h * width * c];
    for y in 0..h {
        let src = &item.pixels[y * w * c..(y + 1) * w * c];
        let dst = &mut tmp[y * width * c..(y + 1) * width * c];
        for (x, (start, weights)) in wx.iter().enumerate() {
            for ch in 0..c {
                let mut acc = 0f32;
                for (k, &wt) in weights.iter().enumerate() {
                    acc += wt * f32::from(src[(start + k) * c + ch]);
                }
                dst[x * c + ch] = acc;
            }
        }
    }
    // Vertical pass.
    let mut pixels = vec![0u8; height * width * c];
    for (y, (start, weights)) in wy.iter().enumerate() {
        let dst = &mut pixels[y * width * c..(y + 1) * width * c];
        for (i, d) in dst.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (k, &wt) in weights.iter().enumerate() {
                acc += wt * tmp[(start + k) * width * c + i];
            }
            *d = acc.round().clamp(0.0, 255.0) as u8;
        }
    }
    ImageItem::new(pixels, height, width, c, item.label)
}

/// For each output index: the first input index and the normalised weights (PIL bilinear).
fn filter_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // triangle support 1, scaled
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(in_size);
            let lo = lo.min(hi.saturating_sub(1));
            let mut weights: Vec<f64> = (lo..hi)
                .map(|x| (1.0 - ((x as f64 - center + 0.5) / filter_scale).abs()).max(0.0))
                .collect();
            let sum: f64 = weights.iter().sum();
            if sum <= 0.0 {
                // Degenerate (can't happen for sane sizes): take the nearest pixel.
                return (lo, vec![1.0]);
            }
            weights.iter_mut().for_each(|v| *v /= sum);
            (lo, weights.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}
