//! Augmentation and normalisation: shapes, determinism, seeds, crop geometry, the math.

use burn::data::dataset::{Dataset, InMemDataset};
use rand::{RngExt, SeedableRng};
use repopt_train::data::transform::{
    self, AugRng, CenterCrop, Fit, RandomCrop, RandomResizedCrop, Transform, center_crop, crop,
    hflip, random_resized_crop_params, resize, resize_shorter,
};
use repopt_train::data::{AugmentedDataset, ImageItem, Normalize};

/// A random-content image.
fn noise(h: usize, w: usize, c: usize, seed: u64) -> ImageItem {
    let mut rng = AugRng::seed_from_u64(seed);
    let pixels = (0..h * w * c).map(|_| rng.random::<u8>()).collect();
    ImageItem::new(pixels, h, w, c, 3)
}

fn apply(t: &impl Transform, item: &ImageItem, seed: u64) -> ImageItem {
    t.apply(item.clone(), &mut AugRng::seed_from_u64(seed))
}

#[test]
fn cifar_crop_flip_keeps_shape_is_seeded_and_is_a_padded_window() {
    let item = noise(32, 32, 3, 1);
    let recipe = transform::cifar_train();
    let out = apply(&recipe, &item, 42);
    assert_eq!(out.shape(), (32, 32, 3));
    assert_eq!(out.label, 3);
    assert_eq!(out, apply(&recipe, &item, 42), "same seed, same output");
    let distinct = (0..20)
        .map(|s| apply(&recipe, &item, s).pixels)
        .collect::<std::collections::HashSet<_>>();
    assert!(distinct.len() > 10, "seeds give different crops/flips");
    // Every output is some window of the zero-padded image, maybe mirrored.
    for seed in 0..20 {
        let out = apply(&recipe, &item, seed);
        let found = (-4..=4).any(|t| {
            (-4..=4).any(|l| {
                let w = crop(&item, t, l, 32, 32);
                w == out || hflip(&w) == out
            })
        });
        assert!(found, "seed {seed}: not a window of the padded image");
    }
}

#[test]
fn crop_pads_with_zeros_and_flip_mirrors() {
    let item = noise(5, 7, 3, 2);
    let padded = crop(&item, -2, -3, 9, 13);
    assert_eq!(padded.shape(), (9, 13, 3));
    for y in 0..9 {
        for x in 0..13 {
            for c in 0..3 {
                let inside = (2..7).contains(&y) && (3..10).contains(&x);
                let want = if inside { item.at(y - 2, x - 3, c) } else { 0 };
                assert_eq!(padded.at(y, x, c), want);
            }
        }
    }
    let f = hflip(&item);
    assert_eq!(f.at(1, 0, 2), item.at(1, 6, 2));
    assert_eq!(hflip(&f), item);
    // A crop fully outside is all zero.
    assert!(crop(&item, 10, 10, 3, 3).pixels.iter().all(|&p| p == 0));
    let _ = RandomCrop {
        size: 4,
        padding: 0,
    };
}

#[test]
fn centre_crop_and_imagenet_eval_sizes() {
    let item = noise(300, 400, 3, 3);
    let c = center_crop(&item, 224, 224);
    assert_eq!(c.shape(), (224, 224, 3));
    assert_eq!(c.at(0, 0, 1), item.at(38, 88, 1));
    let r = resize_shorter(&item, 256);
    assert_eq!((r.height, r.width), (256, 341));
    let tall = resize_shorter(&noise(400, 300, 1, 4), 256);
    assert_eq!((tall.height, tall.width), (341, 256));
    let e = apply(&transform::imagenet_eval(224), &item, 0);
    assert_eq!(e.shape(), (224, 224, 3));
    // Pad 28 → 32: 2 zero pixels on each side.
    let small = noise(28, 28, 1, 5);
    let p = apply(
        &CenterCrop {
            height: 32,
            width: 32,
        },
        &small,
        0,
    );
    assert_eq!(p.shape(), (32, 32, 1));
    assert_eq!(p.at(2, 2, 0), small.at(0, 0, 0));
    assert_eq!(p.at(29, 29, 0), small.at(27, 27, 0));
    assert_eq!((p.at(1, 5, 0), p.at(30, 5, 0), p.at(5, 31, 0)), (0, 0, 0));
    // Gray → RGB, resize to 32.
    let g = apply(
        &transform::gray_adapter(true, Some((32, Fit::Resize))),
        &small,
        0,
    );
    assert_eq!(g.shape(), (32, 32, 3));
    assert!(g.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn random_resized_crop_params_respect_scale_and_ratio() {
    let mut rng = AugRng::seed_from_u64(9);
    for _ in 0..500 {
        let (t, l, h, w) =
            random_resized_crop_params(300, 400, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert!(t + h <= 300 && l + w <= 400 && h > 0 && w > 0);
        let area = (h * w) as f64 / 120_000.0;
        let ratio = w as f64 / h as f64;
        assert!(area > 0.07 && area <= 1.0, "area {area}");
        assert!(ratio > 0.7 && ratio < 1.4, "ratio {ratio}");
    }
    // Impossible ratio → centred fallback clamped to the ratio range.
    let (t, l, h, w) = random_resized_crop_params(100, 1000, (0.9, 1.0), (1.0, 2.0), &mut rng);
    assert_eq!((t, l, h, w), (0, 400, 100, 200));
    let item = noise(60, 90, 3, 6);
    let rrc = RandomResizedCrop::new(48);
    let a = apply(&rrc, &item, 1);
    assert_eq!(a.shape(), (48, 48, 3));
    assert_eq!(a, apply(&rrc, &item, 1));
    assert_ne!(a, apply(&rrc, &item, 2));
    assert_eq!(
        apply(&transform::imagenet_train(32), &item, 3).shape(),
        (32, 32, 3)
    );
}

#[test]
fn bilinear_resize_basics() {
    let flat = ImageItem::new(vec![77; 10 * 13 * 3], 10, 13, 3, 0);
    for (h, w) in [(5, 6), (20, 31), (1, 1), (10, 13)] {
        let r = resize(&flat, h, w);
        assert_eq!(r.shape(), (h, w, 3));
        assert!(r.pixels.iter().all(|&p| p == 77));
    }
    // Halving averages neighbouring pixels (2×2 blocks of a 0/200 checkerboard → ~100).
    let pixels = (0..8 * 8)
        .map(|i| if (i / 8 + i % 8) % 2 == 0 { 0 } else { 200 })
        .collect();
    let board = ImageItem::new(pixels, 8, 8, 1, 0);
    let half = resize(&board, 4, 4);
    assert!(
        half.pixels.iter().all(|&p| (90..=110).contains(&p)),
        "{:?}",
        half.pixels
    );
    // Upscaling a horizontal ramp stays monotonic.
    let ramp = ImageItem::new((0..16).map(|x| x * 16).collect(), 1, 16, 1, 0);
    let up = resize(&ramp, 1, 40);
    assert!(up.pixels.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn normalisation_math_and_layout() {
    let item = ImageItem::new(vec![0, 128, 255, 10, 20, 30], 1, 2, 3, 0);
    let n = Normalize::new([0.5, 0.25, 0.0], [0.5, 0.25, 2.0]);
    let out = n.to_chw(&item);
    // CHW: channel 0 = [0, 10], channel 1 = [128, 20], channel 2 = [255, 30].
    let want = [
        (0.0 / 255.0 - 0.5) / 0.5,
        (10.0 / 255.0 - 0.5) / 0.5,
        (128.0 / 255.0 - 0.25) / 0.25,
        (20.0 / 255.0 - 0.25) / 0.25,
        (255.0 / 255.0 - 0.0) / 2.0,
        (30.0 / 255.0 - 0.0) / 2.0,
    ];
    for (g, w) in out.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
    // One value broadcasts; unit() maps to [0, 1].
    let unit = Normalize::unit().to_chw(&item);
    assert!((unit[4] - 1.0).abs() < 1e-7 && unit[0] == 0.0);
    assert!(Normalize::cifar().supports(3) && !Normalize::cifar().supports(1));
    assert!(Normalize::fashion_mnist().supports(3));
}

#[test]
fn augmented_dataset_varies_per_draw_and_is_reproducible() {
    let items: Vec<ImageItem> = (0..4).map(|i| noise(32, 32, 3, 100 + i)).collect();
    let ds = AugmentedDataset::new(
        InMemDataset::new(items.clone()),
        transform::cifar_train(),
        5,
    );
    let first: Vec<ImageItem> = (0..20).map(|_| ds.get(2).unwrap()).collect();
    assert_eq!(first[0], ds.get_at(2, 0).unwrap());
    assert_eq!(first[7], ds.get_at(2, 7).unwrap());
    let distinct = first
        .iter()
        .map(|i| &i.pixels)
        .collect::<std::collections::HashSet<_>>();
    assert!(
        distinct.len() > 10,
        "draws (epochs) give different augmentations"
    );
    // Resuming at epoch 7 reproduces draw 7.
    let resumed = AugmentedDataset::new(InMemDataset::new(items), transform::cifar_train(), 5)
        .with_start_epoch(7);
    assert_eq!(resumed.get(2).unwrap(), first[7]);
    assert_eq!(resumed.len(), 4);
}
