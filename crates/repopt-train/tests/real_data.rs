//! Real-file tests: CIFAR-10 JPEGs from the shared archive (image folder, batches, loaders,
//! CIFAR binary round trip) and Fashion-MNIST from Debian's `dataset-fashion-mnist`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Element, TensorData};
use repopt_train::data::transform::{self, CIFAR_MEAN, CIFAR_STD, Fit};
use repopt_train::data::{
    CIFAR10_CLASSES, CifarDataset, CifarKind, DecodedBudget, IdxDataset, ImageBatcher, ImageFolder,
    ImageFolderOptions, ImageItem, LoaderOptions, Normalize, Split, Validation, eval_loader,
    train_loader, write_cifar10,
};

/// Extracts files `0000`–`0004` of each test class; `None` when the archive is absent and
/// that is allowed.
fn cifar_subset(tmp: &tempfile::TempDir) -> Option<PathBuf> {
    let archive = common::cifar10_jpg()?;
    Some(common::extract_cifar10_subset(
        &archive,
        tmp.path(),
        "test",
        &["0000", "0001", "0002", "0003", "0004"],
    ))
}

/// The values of `data`, as `E`.
fn values<E: Element>(data: TensorData) -> Vec<E> {
    data.convert::<E>().try_into_vec().unwrap()
}

fn all_items(ds: &impl Dataset<ImageItem>) -> Vec<ImageItem> {
    (0..ds.len()).map(|i| ds.get(i).unwrap()).collect()
}

#[test]
fn cifar10_jpeg_folder_classes_labels_shapes_and_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(root) = cifar_subset(&tmp) else {
        return;
    };
    let options = ImageFolderOptions {
        validation: Validation::Decode,
        skip_invalid: true,
        ..Default::default()
    };
    let folder = ImageFolder::open_with(&root, &options).unwrap();
    assert_eq!(folder.classes(), CIFAR10_CLASSES);
    assert_eq!(folder.num_skipped(), 0);
    assert_eq!(folder.len(), 50);
    let items = all_items(&folder);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.shape(), (32, 32, 3), "item {i}");
        assert_eq!(item.label, i / 5, "item {i}");
        assert_eq!(folder.samples()[i].1, i / 5);
    }
    // Real photos: not constant.
    assert!(
        items
            .iter()
            .all(|it| it.pixels.iter().any(|&p| p != it.pixels[0]))
    );

    // A subset from an explicit list keeps paths and labels.
    let subset = ImageFolder::from_samples(
        folder.samples().iter().step_by(5).cloned().collect(),
        folder.classes().to_vec(),
    );
    assert_eq!(subset.len(), 10);
    assert_eq!(subset.get(3).unwrap(), items[15]);

    // A batch: shape, targets, normalisation values.
    let device = Device::flex();
    let batch = ImageBatcher::new(Normalize::cifar()).batch(items[..8].to_vec(), &device);
    assert_eq!(batch.images.dims(), [8, 3, 32, 32]);
    assert_eq!(batch.targets.dims(), [8]);
    let targets: Vec<i64> = values(batch.targets.into_data());
    assert_eq!(targets, vec![0, 0, 0, 0, 0, 1, 1, 1]);
    let pixels: Vec<f32> = values(batch.images.into_data());
    for (n, item) in items[..8].iter().enumerate() {
        for (c, (m, s)) in CIFAR_MEAN.iter().zip(CIFAR_STD).enumerate() {
            for (y, x) in [(0, 0), (5, 17), (31, 31)] {
                let expected = (f32::from(item.at(y, x, c)) / 255.0 - m) / s;
                let got = pixels[((n * 3 + c) * 32 + y) * 32 + x];
                assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
            }
        }
    }
}

/// A folder that keeps decoded images returns the pixels of a fresh decode, and after the
/// first read neither needs the file nor decodes again (its clones share the kept images).
#[test]
fn kept_decoded_images_are_the_decoded_ones_and_outlive_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(root) = cifar_subset(&tmp) else {
        return;
    };
    let fresh = ImageFolder::open(&root).unwrap();
    assert_eq!(fresh.decoded_bytes_estimate().unwrap(), 32 * 32 * 3 * 50);
    let budget = DecodedBudget::unlimited();
    let kept = ImageFolder::open(&root)
        .unwrap()
        .keep_decoded(budget.clone());
    let expected = all_items(&fresh);
    let clone = kept.clone();
    assert_eq!(all_items(&kept), expected);
    assert_eq!((kept.kept_decoded(), fresh.kept_decoded()), (50, 0));
    assert_eq!(budget.remaining(), u64::MAX - 32 * 32 * 3 * 50);
    for (path, _) in fresh.samples() {
        std::fs::remove_file(path).unwrap();
    }
    assert!(fresh.get(7).is_err(), "the files are gone");
    assert_eq!(all_items(&clone), expected, "kept images need no file");
}

#[test]
fn cifar10_binary_written_from_real_jpegs_reads_back_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(root) = cifar_subset(&tmp) else {
        return;
    };
    let items = all_items(&ImageFolder::open(&root).unwrap());
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    write_cifar10(bin_dir.join("test_batch.bin"), &items).unwrap();
    assert_eq!(
        std::fs::metadata(bin_dir.join("test_batch.bin"))
            .unwrap()
            .len(),
        50 * 3073
    );
    let cifar = CifarDataset::open(&bin_dir, CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!(cifar.len(), 50);
    assert_eq!(all_items(&cifar), items);

    // The same pixels as CIFAR-100 records (coarse label 19 - fine, fine label 3 * label).
    let mut bytes = Vec::new();
    for item in &items {
        let rec = repopt_train::data::cifar::encode_cifar10_record(item).unwrap();
        bytes.push(19 - item.label as u8);
        bytes.push(3 * item.label as u8);
        bytes.extend_from_slice(&rec[1..]);
    }
    std::fs::write(bin_dir.join("test.bin"), bytes).unwrap();
    let c100 = CifarDataset::open(&bin_dir, CifarKind::Cifar100, Split::Test).unwrap();
    for (got, want) in all_items(&c100).iter().zip(&items) {
        assert_eq!(got.label, 3 * want.label);
        assert_eq!(got.pixels, want.pixels);
    }
}

#[test]
fn cifar10_loaders_shuffle_augment_and_cover_the_set() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(root) = cifar_subset(&tmp) else {
        return;
    };
    let folder = ImageFolder::open(&root).unwrap();
    let device = Device::flex();
    let options = LoaderOptions {
        batch_size: 16,
        num_workers: 2,
        seed: 7,
    };
    let cifar_train_loader = |options: &LoaderOptions| {
        train_loader(
            folder.clone(),
            transform::cifar_train(),
            Normalize::cifar(),
            options,
            &device,
        )
    };
    // Multi-threaded train loader: every item once per epoch, right shapes.
    let loader = cifar_train_loader(&options);
    assert_eq!(loader.num_items(), 50);
    for _epoch in 0..2 {
        let mut counts = BTreeMap::new();
        let mut n = 0;
        for batch in loader.iter() {
            let batch = batch.unwrap();
            let [b, c, h, w] = batch.images.dims();
            assert_eq!((c, h, w), (3, 32, 32));
            n += b;
            let t: Vec<i64> = values(batch.targets.into_data());
            for l in t {
                *counts.entry(l).or_insert(0) += 1;
            }
        }
        assert_eq!(n, 50);
        assert_eq!(counts.len(), 10);
        assert!(counts.values().all(|&c| c == 5));
    }

    // Single-threaded: same seed → same epochs; epochs differ from each other.
    let epochs = |seed| {
        let options = LoaderOptions {
            batch_size: 50,
            num_workers: 0,
            seed,
        };
        let loader = cifar_train_loader(&options);
        (0..2)
            .map(|_| {
                let batch = loader.iter().next().unwrap().unwrap();
                values::<f32>(batch.images.into_data())
            })
            .collect::<Vec<_>>()
    };
    let a = epochs(3);
    let b = epochs(3);
    let c = epochs(4);
    assert_eq!(a, b);
    assert_ne!(a[0], a[1]);
    assert_ne!(a[0], c[0]);

    // Eval loader: dataset order, no augmentation.
    let eval = eval_loader(
        folder,
        transform::cifar_eval(),
        Normalize::cifar(),
        &LoaderOptions {
            batch_size: 50,
            num_workers: 0,
            seed: 0,
        },
        &device,
    );
    let batch = eval.iter().next().unwrap().unwrap();
    let t: Vec<i64> = values(batch.targets.into_data());
    assert_eq!(t, (0..50).map(|i| i / 5).collect::<Vec<i64>>());
}

#[test]
fn fashion_mnist_from_debian_package() {
    let dir = PathBuf::from(common::FASHION_MNIST_DIR);
    if !common::require_data(
        &dir.join("train-images-idx3-ubyte.gz"),
        "Fashion-MNIST (apt-get install dataset-fashion-mnist)",
    ) {
        return;
    }
    let train = IdxDataset::open(&dir, Split::Train).unwrap();
    let test = IdxDataset::open(&dir, Split::Test).unwrap();
    assert_eq!(train.len(), 60000);
    assert_eq!(test.len(), 10000);
    assert_eq!(train.image_size(), (28, 28));
    assert_eq!(train.num_classes(), 10);
    for (ds, per_class) in [(&train, 6000), (&test, 1000)] {
        let mut counts = [0usize; 10];
        for l in ds.labels() {
            counts[l] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
    let item = train.get(0).unwrap();
    assert_eq!(item.shape(), (28, 28, 1));
    assert!(item.label < 10);
    assert!(item.pixels.iter().any(|&p| p > 0));

    // Gray → 3 channels, zero-padded to 32×32, CIFAR recipe, CIFAR normalisation.
    let pipeline = transform::gray_adapter(true, Some((32, Fit::Pad)));
    let mut rng = <transform::AugRng as rand::SeedableRng>::seed_from_u64(0);
    let padded = transform::Transform::apply(&pipeline, item.clone(), &mut rng);
    assert_eq!(padded.shape(), (32, 32, 3));
    assert_eq!(padded.at(2 + 10, 2 + 14, 1), item.at(10, 14, 0));
    assert_eq!(padded.at(0, 0, 0), 0);
    let loader = train_loader(
        test,
        transform::gray_adapter(true, Some((32, Fit::Resize))).extend(transform::cifar_train()),
        Normalize::cifar(),
        &LoaderOptions {
            batch_size: 64,
            num_workers: 1,
            seed: 1,
        },
        &Device::flex(),
    );
    let batch = loader.iter().next().unwrap().unwrap();
    assert_eq!(batch.images.dims(), [64, 3, 32, 32]);
}
