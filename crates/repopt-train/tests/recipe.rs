//! The official recipe, piece by piece: `drop_last`, normalisation per data set, the ImageNet
//! evaluation transform, `--image-size` on image folders of mixed sizes and colour types, and
//! the hyper-search's global-norm clipping through the CLI.

mod common;

use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, InMemDataset};
use image::{DynamicImage, ImageFormat, imageops::FilterType};
use repopt_train::config::{DataFormat, Normalization};
use repopt_train::data::transform::{self, Normalize, center_crop, resize_shorter};
use repopt_train::data::{EpochShuffled, ImageItem};
use repopt_train::run_data::{normalization, recipe};
use repopt_train::schedule::iterations_per_epoch;

fn item(height: usize, width: usize, channels: usize, label: usize) -> ImageItem {
    let pixels = (0..height * width * channels)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    ImageItem::new(pixels, height, width, channels, label)
}

/// Iterations per epoch as PyTorch's loader: floor with drop_last, ceil without.
#[test]
fn drop_last_counts_whole_batches() {
    assert_eq!(iterations_per_epoch(50_000, 128, true), 390);
    assert_eq!(iterations_per_epoch(50_000, 128, false), 391);
    assert_eq!(iterations_per_epoch(256, 128, true), 2);
    // A set smaller than one batch still trains (one short batch), rather than not at all.
    assert_eq!(iterations_per_epoch(100, 128, true), 1);
}

/// With drop_last the shuffled view reads `iters × batch` items per epoch, a different subset
/// every epoch, each item at most once per epoch.
#[test]
fn drop_last_leaves_out_a_different_remainder_each_epoch() {
    let items: Vec<ImageItem> = (0..10).map(|label| item(1, 1, 1, label)).collect();
    let view = EpochShuffled::new(InMemDataset::new(items), 7).with_epoch_len(8);
    assert_eq!(view.len(), 8);
    let mut left_out = Vec::new();
    for _epoch in 0..4 {
        let mut labels: Vec<usize> = (0..8).map(|i| view.get(i).unwrap().label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), 8, "an item twice in one epoch");
        left_out.push((0..10).filter(|l| !labels.contains(l)).collect::<Vec<_>>());
    }
    assert!(
        left_out.windows(2).any(|w| w[0] != w[1]),
        "the same images were left out every epoch: {left_out:?}"
    );
    assert!(view.get(8).is_err());
}

/// A resumed view continues at its epoch: epoch 2 of a fresh view equals the third epoch read.
#[test]
fn drop_last_resumes_at_its_epoch() {
    let items: Vec<ImageItem> = (0..10).map(|label| item(1, 1, 1, label)).collect();
    let whole = EpochShuffled::new(InMemDataset::new(items.clone()), 3).with_epoch_len(8);
    let read = |v: &EpochShuffled<InMemDataset<ImageItem>>| -> Vec<usize> {
        (0..8).map(|i| v.get(i).unwrap().label).collect()
    };
    let epochs: Vec<Vec<usize>> = (0..3).map(|_| read(&whole)).collect();
    let resumed = EpochShuffled::new(InMemDataset::new(items), 3)
        .with_epoch_len(8)
        .with_start_epoch(2);
    assert_eq!(read(&resumed), epochs[2]);
}

/// The official statistics: CIFAR-100's from `data/build.py`, CIFAR-10's and ImageNet's.
#[test]
fn normalisation_follows_the_data_set() {
    let cifar100 = normalization(Normalization::Auto, DataFormat::Cifar100, 32);
    assert_eq!(
        cifar100,
        Normalize::new(
            [0.507_075_16, 0.486_548_87, 0.440_917_84],
            [0.267_334_29, 0.256_438_46, 0.276_150_47]
        )
    );
    assert_eq!(
        normalization(Normalization::Auto, DataFormat::Cifar10, 32),
        Normalize::cifar()
    );
    assert_eq!(
        normalization(Normalization::Auto, DataFormat::ImageFolder, 224),
        Normalize::imagenet()
    );
    assert_eq!(
        normalization(Normalization::Auto, DataFormat::Idx, 32),
        Normalize::fashion_mnist()
    );
    // An explicit choice wins over the format.
    assert_eq!(
        normalization(Normalization::Cifar100, DataFormat::ImageFolder, 32),
        cifar100
    );
    assert_ne!(cifar100, Normalize::cifar());
}

/// `data/build.py` (TEST.CROP = False): Resize(size) on the shorter side, CenterCrop(size).
#[test]
fn imagenet_evaluation_is_resize_then_centre_crop() {
    let image = item(300, 400, 3, 0);
    let official = center_crop(&resize_shorter(&image, 224), 224, 224);
    let mut rng = rand::SeedableRng::seed_from_u64(0);
    let ours = transform::Transform::apply(&transform::imagenet_eval(224), image, &mut rng);
    assert_eq!(ours, official);
}

/// Any input size reaches the network at `size`×`size`, for training and evaluation alike.
#[test]
fn every_recipe_brings_images_to_the_requested_size() {
    let mut rng = rand::SeedableRng::seed_from_u64(1);
    for size in [24, 32, 48, 64, 96] {
        let (train, eval) = recipe(size, 3);
        for (h, w) in [(17, 90), (32, 32), (224, 160), (1, 1)] {
            for t in [&train, &eval] {
                let out = transform::Transform::apply(t, item(h, w, 3, 0), &mut rng);
                assert_eq!((out.height, out.width), (size, size), "{h}x{w} at {size}");
            }
        }
    }
}

/// A file name, how the photograph is changed, and the format it is saved in.
type Variant = (&'static str, fn(DynamicImage) -> DynamicImage, ImageFormat);

/// Real CIFAR-10 photographs re-saved at several sizes and colour types: odd sizes, upscaled,
/// grayscale JPEG, RGBA PNG, 16-bit PNG.
fn mixed_folder(archive: &Path, dest: &Path) -> PathBuf {
    let test = common::extract_cifar10_subset(archive, dest, "test", &["000"]);
    let root = dest.join("mixed");
    let variants: [Variant; 5] = [
        (
            "a.jpg",
            |i| i.resize_exact(45, 27, FilterType::Triangle),
            ImageFormat::Jpeg,
        ),
        (
            "b.jpg",
            |i| i.resize_exact(96, 96, FilterType::Triangle),
            ImageFormat::Jpeg,
        ),
        (
            "c.jpg",
            |i| DynamicImage::ImageLuma8(i.to_luma8()),
            ImageFormat::Jpeg,
        ),
        (
            "d.png",
            |i| DynamicImage::ImageRgba8(i.to_rgba8()),
            ImageFormat::Png,
        ),
        (
            "e.png",
            |i| DynamicImage::ImageRgb16(i.resize_exact(20, 33, FilterType::Triangle).to_rgb16()),
            ImageFormat::Png,
        ),
    ];
    for class in std::fs::read_dir(&test).unwrap() {
        let class = class.unwrap().path();
        let name = class.file_name().unwrap().to_owned();
        for split in ["train", "test"] {
            std::fs::create_dir_all(root.join(split).join(&name)).unwrap();
        }
        for (n, file) in std::fs::read_dir(&class).unwrap().enumerate() {
            let image = image::open(file.unwrap().path()).unwrap();
            let (file_name, make, format) = &variants[n % variants.len()];
            let split = if n % 3 == 2 { "test" } else { "train" };
            let path = root.join(split).join(&name).join(format!("{n}{file_name}"));
            make(image).save_with_format(path, *format).unwrap();
        }
    }
    root
}

/// An image folder of mixed sizes and colour types trains and evaluates at a small size (CIFAR
/// recipe) and a large one (ImageNet recipe with RandAugment), and the run records the size and
/// the augmentation it used.
#[test]
fn mixed_size_image_folder_trains_at_any_size() {
    let Some(archive) = common::cifar10_jpg() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = mixed_folder(&archive, tmp.path());
    for size in ["40", "72"] {
        let out = tmp.path().join(format!("run{size}"));
        // The large size also takes the official ImageNet recipe's RandAugment (raug15).
        let augment: &[&str] = if size == "72" {
            &["--randaugment", "15"]
        } else {
            &[]
        };
        let mut args = common::tiny_train_folder("plain", &data, 16, &out);
        args.extend(["--image-size", size].map(String::from));
        args.extend(augment.iter().map(|a| a.to_string()));
        let output = common::repopt(&args);
        assert!(output.status.success(), "--image-size {size} failed");
        let eval = common::repopt(&["eval", "--run", out.to_str().unwrap()]);
        assert!(eval.status.success(), "eval at {size} failed");
        let record = repopt_train::RunRecord::load(&out).unwrap();
        assert_eq!(record.config.image_size.to_string(), size);
        assert_eq!(record.config.randaugment, (size == "72").then_some(15));
    }
}

/// The hyper-search clips by the global norm through `--clip-grad-norm`, and the RepOptimizer
/// refuses any clipping.
#[test]
fn clipping_is_for_the_hyper_search_only() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut common_args: Vec<String> = ["--data", data]
        .into_iter()
        .chain(common::TINY_QUARTER)
        .map(String::from)
        .collect();
    common_args.extend(common::short_run(256, 64, 1, 64));
    common_args.extend(["--clip-grad-norm", "5"].map(String::from));
    let hs = tmp.path().join("hs");
    let mut args = vec!["hs"];
    args.extend(common_args.iter().map(String::as_str));
    args.extend(["--out", hs.to_str().unwrap()]);
    assert!(common::repopt(&args).status.success());
    assert!(hs.join("scales-initial.safetensors").is_file());
    let mut args = vec!["train", "--method", "repopt-ones"];
    args.extend(common_args.iter().map(String::as_str));
    let out = tmp.path().join("refused");
    args.extend(["--out", out.to_str().unwrap()]);
    let refused = common::repopt(&args);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("clipping"));
}
