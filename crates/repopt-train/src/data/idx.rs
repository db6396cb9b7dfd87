//! IDX files (MNIST, Fashion-MNIST, KMNIST, ...), gzipped or not, loaded into memory.
//!
//! An IDX file starts with the magic `00 00 <type> <ndims>`, then `ndims` big-endian `u32`
//! sizes, then the values row-major. Only unsigned-byte data (type `0x08`) is supported.
//! A split is `<prefix>-images-idx3-ubyte` (`[n, rows, cols]`) plus `<prefix>-labels-idx1-ubyte`
//! (`[n]`), with prefix `train` or `t10k`, each optionally `.gz`-compressed (detected from the
//! content, not the name).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};
use flate2::read::MultiGzDecoder;

use super::{DataError, ImageItem, Split};

/// The IDX type code of unsigned bytes.
pub const IDX_UBYTE: u8 = 0x08;

/// The content of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The sizes of the dimensions.
    pub dims: Vec<usize>,
    /// The values, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// The largest IDX file (header and data) inflated from a gzip stream: 1 GiB.
///
/// A gzip stream can inflate about a thousandfold (a few MB can stand for gigabytes of zeros), so
/// the stream is read no further than the IDX header it starts with declares, and a header that
/// declares more than this is refused before anything is allocated for it.
pub const MAX_GZIP_IDX_BYTES: usize = 1 << 30;

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    if !path.is_file() {
        return Err(DataError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut raw = Vec::new();
    reader
        .read_to_end(&mut raw)
        .map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip_idx(path, &raw)
    } else {
        Ok(raw)
    }
}

/// Inflates the gzipped IDX file `raw`, reading no more than its header declares (at most
/// [`MAX_GZIP_IDX_BYTES`]). A malformed header is returned as read, for [`parse_idx`] to name
/// the problem.
fn gunzip_idx(path: &Path, raw: &[u8]) -> Result<Vec<u8>, DataError> {
    let gzip_error = |e: std::io::Error| {
        DataError::io(
            path,
            std::io::Error::new(e.kind(), format!("gzip stream: {e}")),
        )
    };
    let mut decoder = MultiGzDecoder::new(raw);
    let mut out = Vec::new();
    // The magic (with the number of dimensions), then the sizes.
    read_until(&mut decoder, &mut out, 4).map_err(gzip_error)?;
    if out.len() < 4 || out[0] != 0 || out[1] != 0 {
        return Ok(out);
    }
    let header = 4 + 4 * usize::from(out[3]);
    read_until(&mut decoder, &mut out, header).map_err(gzip_error)?;
    if out.len() < header {
        return Ok(out);
    }
    let total = out[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .try_fold(1usize, |acc, d| acc.checked_mul(d))
        .and_then(|data| data.checked_add(header));
    let Some(total) = total else {
        return Ok(out); // the dimensions overflow: `parse_idx` says so
    };
    if total > MAX_GZIP_IDX_BYTES {
        return Err(DataError::format(
            path,
            format!(
                "the IDX header declares {total} bytes, more than the {MAX_GZIP_IDX_BYTES} \
                 bytes read from a gzip stream"
            ),
        ));
    }
    // The buffer doubles as data arrives but never past `total`: a header that declares more
    // than the stream holds costs at most twice what the stream holds.
    while out.len() < total {
        if out.len() == out.capacity() {
            let grow = out.len().max(1 << 16).min(total - out.len());
            out.reserve_exact(grow);
        }
        let before = out.len();
        let room = out.capacity().min(total) - before;
        read_until(&mut decoder, &mut out, before + room).map_err(gzip_error)?;
        if out.len() == before {
            break; // the stream ended early: `parse_idx` says the data is truncated
        }
    }
    // Nothing may follow the declared data; reading to the end also checks the gzip trailer.
    let mut probe = [0u8; 4096];
    let mut extra = 0usize;
    loop {
        match decoder.read(&mut probe) {
            Ok(0) => break,
            Ok(n) => {
                extra += n;
                if extra > probe.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gzip_error(e)),
        }
    }
    if extra > 0 {
        return Err(DataError::format(
            path,
            format!(
                "IDX data too long: the header declares {total} bytes, the gzip stream has more"
            ),
        ));
    }
    Ok(out)
}

/// Reads from `reader` until `out` holds `len` bytes or the stream ends.
fn read_until(reader: &mut impl Read, out: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
    let missing = len.saturating_sub(out.len()) as u64;
    reader.take(missing).read_to_end(out).map(|_| ())
}

/// Reads an IDX file of unsigned bytes (gzipped or not).
///
/// Errors name the file: bad magic, unsupported type, short header, data shorter or longer than
/// the header says, unreadable or truncated gzip stream, and a gzipped file whose header
/// declares more than [`MAX_GZIP_IDX_BYTES`] (a gzip stream is inflated no further than its
/// header declares).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes).map_err(|problem| DataError::format(path, problem))
}

/// Parses IDX bytes; the error is the problem in words.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "truncated IDX header: {} bytes, need at least 4",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "bad IDX magic {:02x} {:02x} {:02x} {:02x}: must start with 00 00",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != IDX_UBYTE {
        return Err(format!(
            "unsupported IDX data type 0x{:02x} (only unsigned bytes, 0x08)",
            bytes[2]
        ));
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        return Err("IDX header has 0 dimensions".into());
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!(
            "truncated IDX header: {} bytes, {ndims} dimensions need {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("IDX dimensions {dims:?} overflow"))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(format!(
            "truncated IDX data: header {dims:?} needs {expected} bytes, file has {found}"
        ));
    }
    if found > expected {
        return Err(format!(
            "IDX data too long: header {dims:?} needs {expected} bytes, file has {found}"
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// An IDX image set with labels, in memory: items are `rows × cols × 1`.
#[derive(Debug, Clone)]
pub struct IdxDataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
}

impl IdxDataset {
    /// Loads a split from `dir`: `train-*` or `t10k-*`, `-images-idx3-ubyte` and
    /// `-labels-idx1-ubyte`, each plain or `.gz` (also the `train-images.idx3-ubyte` spelling).
    pub fn open(dir: impl AsRef<Path>, split: Split) -> Result<Self, DataError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(DataError::MissingDir {
                path: dir.to_path_buf(),
            });
        }
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let images = find_file(dir, prefix, "images", 3)?;
        let labels = find_file(dir, prefix, "labels", 1)?;
        Self::from_files(images, labels)
    }

    /// Loads an image file (`[n, rows, cols]`) and a label file (`[n]`).
    pub fn from_files(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
    ) -> Result<Self, DataError> {
        let (images_path, labels_path) = (images.as_ref(), labels.as_ref());
        let images = read_idx(images_path)?;
        let labels = read_idx(labels_path)?;
        if images.dims.len() != 3 {
            return Err(DataError::format(
                images_path,
                format!(
                    "expected an image file with 3 dimensions [n, rows, cols], found {:?}",
                    images.dims
                ),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(DataError::format(
                labels_path,
                format!(
                    "expected a label file with 1 dimension [n], found {:?}",
                    labels.dims
                ),
            ));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::format(
                labels_path,
                format!(
                    "{} labels for {} images in {}",
                    labels.dims[0],
                    images.dims[0],
                    images_path.display()
                ),
            ));
        }
        Ok(Self {
            height: images.dims[1],
            width: images.dims[2],
            images: images.data,
            labels: labels.data,
        })
    }

    /// `(rows, cols)` of the images.
    pub fn image_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The labels, in dataset order.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.labels.iter().map(|&l| usize::from(l))
    }

    /// The number of classes: the largest label + 1.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| usize::from(m) + 1)
    }

    /// The item at `index` (`rows × cols × 1`).
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn item(&self, index: usize) -> ImageItem {
        let size = self.height * self.width;
        ImageItem::new(
            self.images[index * size..(index + 1) * size].to_vec(),
            self.height,
            self.width,
            1,
            usize::from(self.labels[index]),
        )
    }
}

impl Dataset<ImageItem> for IdxDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        Ok(self.item(index))
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Finds `<prefix>-<what>-idx<n>-ubyte[.gz]` (or `<prefix>-<what>.idx<n>-ubyte[.gz]`) in `dir`.
fn find_file(dir: &Path, prefix: &str, what: &str, n: usize) -> Result<PathBuf, DataError> {
    let stems = [
        format!("{prefix}-{what}-idx{n}-ubyte"),
        format!("{prefix}-{what}.idx{n}-ubyte"),
    ];
    for stem in &stems {
        for ext in ["", ".gz"] {
            let path = dir.join(format!("{stem}{ext}"));
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(DataError::MissingFile {
        path: dir.join(format!("{}[.gz]", stems[0])),
    })
}
