//! Bad inputs give a [`DataError`] naming the file and the problem, never a panic.

use std::io::Write;
use std::path::Path;

use burn::data::dataset::Dataset;
use repopt_train::data::{
    CifarDataset, CifarKind, DataError, IdxDataset, ImageFolder, ImageFolderOptions, Split,
    Validation, read_idx,
};

fn assert_names(err: &impl std::fmt::Display, path: &Path, problem: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message {msg:?} does not name {}",
        path.display()
    );
    assert!(
        msg.contains(problem),
        "message {msg:?} does not say {problem:?}"
    );
}

fn idx_bytes(dims: &[u32], data_len: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..data_len).map(|i| (i % 251) as u8));
    b
}

#[test]
fn missing_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-folder");
    let err = ImageFolder::open(&missing).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }));
    assert_names(&err, &missing, "not found");
    let err = CifarDataset::open(&missing, CifarKind::Cifar10, Split::Train).unwrap_err();
    assert_names(&err, &missing, "not found");
    let err = IdxDataset::open(&missing, Split::Test).unwrap_err();
    assert_names(&err, &missing, "not found");
    // A folder without the files.
    let err = CifarDataset::open(tmp.path(), CifarKind::Cifar10, Split::Train).unwrap_err();
    assert_names(&err, &tmp.path().join("data_batch_1.bin"), "not found");
    let err = IdxDataset::open(tmp.path(), Split::Train).unwrap_err();
    assert_names(
        &err,
        &tmp.path().join("train-images-idx3-ubyte"),
        "not found",
    );
    // A folder without class folders.
    let err = ImageFolder::open(tmp.path()).unwrap_err();
    assert_names(&err, tmp.path(), "no class folders");
}

#[test]
fn corrupt_jpeg_is_reported_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    image::RgbImage::from_pixel(6, 4, image::Rgb([10, 20, 30]))
        .save(a.join("good.png"))
        .unwrap();
    let bad = b.join("bad.jpg");
    std::fs::write(&bad, b"this is not a JPEG, just garbage bytes \x00\x01\x02").unwrap();
    std::fs::write(b.join("notes.txt"), "ignored").unwrap();

    // Lazy open: the error comes from `get` and names the file.
    let folder = ImageFolder::open(tmp.path()).unwrap();
    assert_eq!(folder.len(), 2);
    let good = folder.get(0).unwrap();
    assert_eq!((good.shape(), good.label), ((4, 6, 3), 0));
    assert_eq!(good.at(3, 5, 2), 30);
    let err = folder.get(1).unwrap_err();
    assert_names(&err, &bad, "cannot decode image");

    // Validating open: fails naming the file, or skips it and counts it.
    for validation in [Validation::Header, Validation::Decode] {
        let mut options = ImageFolderOptions {
            validation,
            ..Default::default()
        };
        let err = ImageFolder::open_with(tmp.path(), &options).unwrap_err();
        assert_names(&err, &bad, "cannot decode image");
        options.skip_invalid = true;
        let folder = ImageFolder::open_with(tmp.path(), &options).unwrap();
        assert_eq!(folder.len(), 1);
        assert_eq!(folder.num_skipped(), 1);
        assert_eq!(folder.skipped()[0].path, bad);
        assert_eq!(folder.classes(), ["a", "b"]);
    }
}

#[test]
fn truncated_idx_files() {
    let tmp = tempfile::tempdir().unwrap();
    // Data shorter than the header says.
    let path = tmp.path().join("train-images-idx3-ubyte");
    std::fs::write(&path, idx_bytes(&[10, 28, 28], 10 * 784 - 100)).unwrap();
    let err = read_idx(&path).unwrap_err();
    assert_names(&err, &path, "truncated IDX data");
    // A header cut short.
    let short = tmp.path().join("short-idx");
    std::fs::write(&short, &idx_bytes(&[10, 28, 28], 0)[..9]).unwrap();
    assert_names(
        &read_idx(&short).unwrap_err(),
        &short,
        "truncated IDX header",
    );
    // A gzip stream cut short.
    let gz = tmp.path().join("cut.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&idx_bytes(&[1000], 1000)).unwrap();
    let full = enc.finish().unwrap();
    std::fs::write(&gz, &full[..full.len() / 2]).unwrap();
    assert_names(&read_idx(&gz).unwrap_err(), &gz, "gzip");
    // The whole gzip stream reads fine.
    std::fs::write(&gz, &full).unwrap();
    assert_eq!(read_idx(&gz).unwrap().dims, vec![1000]);
}

#[test]
fn wrong_idx_magic_and_mismatched_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t10k-labels-idx1-ubyte");
    let mut bytes = idx_bytes(&[5], 5);
    bytes[0] = 0x1A;
    std::fs::write(&path, &bytes).unwrap();
    assert_names(&read_idx(&path).unwrap_err(), &path, "bad IDX magic");
    bytes[0] = 0;
    bytes[2] = 0x0D; // float data
    std::fs::write(&path, &bytes).unwrap();
    assert_names(
        &read_idx(&path).unwrap_err(),
        &path,
        "unsupported IDX data type",
    );
    // 5 labels for 4 images.
    std::fs::write(&path, idx_bytes(&[5], 5)).unwrap();
    let images = tmp.path().join("t10k-images-idx3-ubyte");
    std::fs::write(&images, idx_bytes(&[4, 3, 3], 36)).unwrap();
    let err = IdxDataset::open(tmp.path(), Split::Test).unwrap_err();
    assert_names(&err, &path, "5 labels for 4 images");
    // Labels given as images.
    let err = IdxDataset::from_files(&path, &path).unwrap_err();
    assert_names(&err, &path, "3 dimensions");
}

#[test]
fn cifar_bin_with_wrong_length_or_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("test_batch.bin");
    std::fs::write(&path, vec![1u8; 3073 * 2 + 5]).unwrap();
    let err = CifarDataset::open(tmp.path(), CifarKind::Cifar10, Split::Test).unwrap_err();
    assert_names(
        &err,
        &path,
        "not a multiple of the Cifar10 record size 3073",
    );
    // A CIFAR-10 file read as CIFAR-100 (3073 * 3074 bytes is a multiple of neither... use 2).
    std::fs::write(&path, vec![1u8; 3073 * 2]).unwrap();
    let err = CifarDataset::from_files(&[&path], CifarKind::Cifar100).unwrap_err();
    assert_names(&err, &path, "record size 3074");
    // A label out of range.
    let mut bytes = vec![0u8; 3073 * 2];
    bytes[3073] = 10;
    std::fs::write(&path, bytes).unwrap();
    let err = CifarDataset::from_files(&[&path], CifarKind::Cifar10).unwrap_err();
    assert_names(&err, &path, "record 1: label 10 out of range");
    // Empty file.
    std::fs::write(&path, []).unwrap();
    let err = CifarDataset::from_files(&[&path], CifarKind::Cifar10).unwrap_err();
    assert_names(&err, &path, "no records");
}

#[test]
fn truncated_jpeg_fails_decode_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let class = tmp.path().join("only");
    std::fs::create_dir(&class).unwrap();
    let path = class.join("cut.jpg");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 7]))
        .save(&path)
        .unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 5]).unwrap();
    let folder = ImageFolder::open(tmp.path()).unwrap();
    assert_names(&folder.get(0).unwrap_err(), &path, "cannot decode image");
    let options = ImageFolderOptions {
        validation: Validation::Decode,
        skip_invalid: true,
        threads: 1,
        ..Default::default()
    };
    // Nothing left after skipping: an error on the folder.
    let err = ImageFolder::open_with(tmp.path(), &options).unwrap_err();
    assert_names(&err, tmp.path(), "no readable images");
    // With a readable image next to it, the truncated one is skipped and counted.
    image::RgbImage::new(3, 3)
        .save(class.join("ok.png"))
        .unwrap();
    let folder = ImageFolder::open_with(tmp.path(), &options).unwrap();
    assert_eq!((folder.len(), folder.num_skipped()), (1, 1));
    assert_eq!(folder.skipped()[0].path, path);
}
