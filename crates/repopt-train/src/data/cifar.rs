//! CIFAR-10 / CIFAR-100 in the official binary format, loaded into memory.
//!
//! A CIFAR-10 record is 1 label byte + 3072 pixel bytes (the 32×32 red plane, then green, then
//! blue, each row-major); the training set is `data_batch_1.bin` … `data_batch_5.bin`, the
//! test set `test_batch.bin` (folder `cifar-10-batches-bin/` of the official archive).
//! A CIFAR-100 record is 2 label bytes (coarse, fine) + 3072 pixel bytes; the fine label is
//! used; files `train.bin` / `test.bin` (folder `cifar-100-binary/`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};

use super::{DataError, ImageItem, Split};

/// Image side of CIFAR images.
pub const CIFAR_SIDE: usize = 32;
/// Pixel bytes of one CIFAR record (3 planes of 32×32).
pub const CIFAR_PIXELS: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;

/// The CIFAR-10 class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR variant a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CifarKind {
    /// 10 classes, 1 label byte per record.
    Cifar10,
    /// 100 fine classes, 2 label bytes (coarse, fine) per record.
    Cifar100,
}

impl CifarKind {
    /// Label bytes per record.
    pub fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    /// Bytes per record.
    pub fn record_size(self) -> usize {
        self.label_bytes() + CIFAR_PIXELS
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    /// The file names of a split.
    pub fn file_names(self, split: Split) -> Vec<String> {
        match (self, split) {
            (Self::Cifar10, Split::Train) => {
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
            }
            (Self::Cifar10, Split::Test) => vec!["test_batch.bin".into()],
            (Self::Cifar100, Split::Train) => vec!["train.bin".into()],
            (Self::Cifar100, Split::Test) => vec!["test.bin".into()],
        }
    }

    /// The folder the official binary archive extracts to.
    pub fn archive_dir(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar-10-batches-bin",
            Self::Cifar100 => "cifar-100-binary",
        }
    }
}

/// A CIFAR split in memory: items are 32×32×3 RGB.
#[derive(Debug, Clone)]
pub struct CifarDataset {
    kind: CifarKind,
    /// Planar pixels, [`CIFAR_PIXELS`] per record.
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl CifarDataset {
    /// Loads a split from `dir`, which holds the `.bin` files or the archive's folder
    /// (`cifar-10-batches-bin/` / `cifar-100-binary/`).
    pub fn open(dir: impl AsRef<Path>, kind: CifarKind, split: Split) -> Result<Self, DataError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(DataError::MissingDir {
                path: dir.to_path_buf(),
            });
        }
        let names = kind.file_names(split);
        let nested = dir.join(kind.archive_dir());
        let base = if !dir.join(&names[0]).exists() && nested.join(&names[0]).is_file() {
            nested
        } else {
            dir.to_path_buf()
        };
        let paths: Vec<PathBuf> = names.iter().map(|n| base.join(n)).collect();
        Self::from_files(&paths, kind)
    }

    /// Loads and concatenates the given record files.
    pub fn from_files(paths: &[impl AsRef<Path>], kind: CifarKind) -> Result<Self, DataError> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for path in paths {
            let path = path.as_ref();
            if !path.is_file() {
                return Err(DataError::MissingFile {
                    path: path.to_path_buf(),
                });
            }
            let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
            let record = kind.record_size();
            if bytes.is_empty() {
                return Err(DataError::Empty {
                    path: path.to_path_buf(),
                    what: "records",
                });
            }
            if bytes.len() % record != 0 {
                return Err(DataError::format(
                    path,
                    format!(
                        "size {} bytes is not a multiple of the {kind:?} record size {record} \
                         (truncated file or wrong CIFAR variant?)",
                        bytes.len()
                    ),
                ));
            }
            pixels.reserve(bytes.len() / record * CIFAR_PIXELS);
            for (i, rec) in bytes.chunks_exact(record).enumerate() {
                let label = rec[kind.label_bytes() - 1];
                if usize::from(label) >= kind.num_classes() {
                    return Err(DataError::format(
                        path,
                        format!(
                            "record {i}: label {label} out of range for {} classes",
                            kind.num_classes()
                        ),
                    ));
                }
                labels.push(label);
                pixels.extend_from_slice(&rec[kind.label_bytes()..]);
            }
        }
        Ok(Self {
            kind,
            pixels,
            labels,
        })
    }

    /// The variant.
    pub fn kind(&self) -> CifarKind {
        self.kind
    }

    /// The labels, in dataset order.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.labels.iter().map(|&l| usize::from(l))
    }

    /// The item at `index` (HWC RGB).
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn item(&self, index: usize) -> ImageItem {
        let planes = &self.pixels[index * CIFAR_PIXELS..(index + 1) * CIFAR_PIXELS];
        let plane = CIFAR_SIDE * CIFAR_SIDE;
        let mut pixels = vec![0u8; CIFAR_PIXELS];
        for (p, rgb) in pixels.chunks_exact_mut(3).enumerate() {
            rgb[0] = planes[p];
            rgb[1] = planes[plane + p];
            rgb[2] = planes[2 * plane + p];
        }
        ImageItem::new(
            pixels,
            CIFAR_SIDE,
            CIFAR_SIDE,
            3,
            usize::from(self.labels[index]),
        )
    }
}

impl Dataset<ImageItem> for CifarDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        Ok(self.item(index))
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Encodes one item as a CIFAR-10 record (label byte + R, G, B planes).
///
/// Fails unless the item is 32×32×3 with a label below 10.
pub fn encode_cifar10_record(item: &ImageItem) -> Result<Vec<u8>, String> {
    if item.shape() != (CIFAR_SIDE, CIFAR_SIDE, 3) {
        return Err(format!(
            "item is {}x{}x{}, CIFAR-10 needs 32x32x3",
            item.height, item.width, item.channels
        ));
    }
    if item.label >= 10 {
        return Err(format!("label {} out of range for 10 classes", item.label));
    }
    let plane = CIFAR_SIDE * CIFAR_SIDE;
    let mut record = vec![0u8; CifarKind::Cifar10.record_size()];
    record[0] = item.label as u8;
    for (p, rgb) in item.pixels.chunks_exact(3).enumerate() {
        for (c, &v) in rgb.iter().enumerate() {
            record[1 + c * plane + p] = v;
        }
    }
    Ok(record)
}

/// Writes `items` as a CIFAR-10 binary file at `path` (created or truncated).
///
/// Every item must be 32×32×3 with a label below 10; the error names the file and the item.
pub fn write_cifar10<'a>(
    path: impl AsRef<Path>,
    items: impl IntoIterator<Item = &'a ImageItem>,
) -> Result<(), DataError> {
    let path = path.as_ref();
    let file = fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    for (i, item) in items.into_iter().enumerate() {
        let record = encode_cifar10_record(item)
            .map_err(|p| DataError::format(path, format!("item {i}: {p}")))?;
        out.write_all(&record).map_err(|e| DataError::io(path, e))?;
    }
    out.flush().map_err(|e| DataError::io(path, e))
}
