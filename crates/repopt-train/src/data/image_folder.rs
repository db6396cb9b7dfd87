//! An ImageNet-layout image folder: `root/<class>/**/<image>.{jpg,jpeg,png}`.
//!
//! Classes are the sub-folders of `root`, sorted by name; a class's label is its index in that
//! order (as in torchvision's `ImageFolder`). The file list is built when the folder is opened;
//! images are decoded lazily in [`Dataset::get`], and optionally kept decoded in memory after
//! their first read ([`ImageFolder::keep_decoded`]). Opening can optionally check every file
//! (its header, or a full decode) and either fail on the first unreadable file or skip the
//! unreadable ones and report them ([`ImageFolder::skipped`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use image::{DynamicImage, ImageReader};

use super::decoded_cache::{DecodedBudget, DecodedCache};
use super::{DataError, ImageItem};

/// The file extensions (lower-case) taken as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The pixel format images are decoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// 3 channels, RGB (grayscale / CMYK / RGBA images are converted).
    #[default]
    Rgb,
    /// 1 channel, luma.
    Gray,
}

impl ColorMode {
    /// The number of channels of decoded images.
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Gray => 1,
        }
    }
}

/// How much of each file to check when a folder is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// No check: files are only read in `get` (fast open; a bad file fails its batch later).
    #[default]
    None,
    /// Read each file's header (format and size): catches garbage and non-image files cheaply.
    Header,
    /// Decode each file fully: also catches truncated / corrupt image data. Slow on large sets.
    Decode,
}

/// Options of [`ImageFolder::open_with`] and [`ImageFolder::from_samples_with`].
#[derive(Debug, Clone, Default)]
pub struct ImageFolderOptions {
    /// What to check at open time.
    pub validation: Validation,
    /// With a validation: skip the files that fail it (see [`ImageFolder::skipped`]) instead of
    /// failing the open with the first one's error.
    pub skip_invalid: bool,
    /// The pixel format of decoded images.
    pub color: ColorMode,
    /// Threads used for validation; 0 = the number of available cores.
    pub threads: usize,
}

/// A file left out of an [`ImageFolder`] because it failed validation.
#[derive(Debug)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: DataError,
}

/// A dataset of image files with class labels, decoded lazily.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    samples: Vec<(PathBuf, usize)>,
    classes: Vec<String>,
    color: ColorMode,
    skipped: Arc<Vec<SkippedFile>>,
    /// With [`keep_decoded`](ImageFolder::keep_decoded): the images kept; shared by clones.
    decoded: Option<DecodedCache>,
}

impl ImageFolder {
    /// Opens `root/<class>/...` without validating the files (RGB output).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, DataError> {
        Self::open_with(root, &ImageFolderOptions::default())
    }

    /// Opens `root/<class>/...` with the given options.
    ///
    /// Errors: `root` missing or not a folder ([`DataError::MissingDir`]), a folder that can't
    /// be listed ([`DataError::Io`]), no class folder or no image at all, or every image skipped
    /// ([`DataError::Empty`]), and, with a validation and `skip_invalid == false`, the first
    /// file that fails it.
    pub fn open_with(
        root: impl AsRef<Path>,
        options: &ImageFolderOptions,
    ) -> Result<Self, DataError> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(DataError::MissingDir {
                path: root.to_path_buf(),
            });
        }
        let mut class_dirs = Vec::new();
        for (entry, is_dir) in sorted_entries(root)? {
            if is_dir {
                class_dirs.push(entry);
            }
        }
        if class_dirs.is_empty() {
            return Err(DataError::Empty {
                path: root.to_path_buf(),
                what: "class folders",
            });
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut samples = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            classes.push(name.into_owned());
            let before = samples.len();
            collect_images(dir, label, &mut samples)?;
            // A class without images cannot be learned; skipping it would shift the labels of
            // the classes after it against the other split's.
            if samples.len() == before {
                return Err(DataError::Empty {
                    path: dir.clone(),
                    what: "images in this class folder (remove the folder or add images)",
                });
            }
        }
        if samples.is_empty() {
            return Err(DataError::Empty {
                path: root.to_path_buf(),
                what: "images",
            });
        }
        let folder = Self::from_samples_with(samples, classes, options)?;
        if folder.samples.is_empty() {
            return Err(DataError::Empty {
                path: root.to_path_buf(),
                what: "readable images (all skipped)",
            });
        }
        Ok(folder)
    }

    /// A dataset from an explicit list of `(path, label)` (e.g. a subset of another folder's
    /// [`samples`](Self::samples)), RGB output, no validation. Labels are taken as given
    /// (they should index `classes`).
    pub fn from_samples(samples: Vec<(PathBuf, usize)>, classes: Vec<String>) -> Self {
        Self {
            samples,
            classes,
            color: ColorMode::Rgb,
            skipped: Default::default(),
            decoded: None,
        }
    }

    /// A dataset from an explicit list of `(path, label)`, validated as `options` says.
    pub fn from_samples_with(
        samples: Vec<(PathBuf, usize)>,
        classes: Vec<String>,
        options: &ImageFolderOptions,
    ) -> Result<Self, DataError> {
        let (samples, skipped) = validate(samples, options)?;
        Ok(Self {
            samples,
            classes,
            color: options.color,
            skipped: Arc::new(skipped),
            decoded: None,
        })
    }

    /// The class names; a label is an index into this list.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The `(path, label)` of every image, in dataset order (class by class, files sorted).
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// The files left out by a skipping validation.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// The number of files left out by a skipping validation.
    pub fn num_skipped(&self) -> usize {
        self.skipped.len()
    }

    /// Decodes the image at `index` (a [`DataError`] on failure), or returns its kept copy.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn load(&self, index: usize) -> Result<ImageItem, DataError> {
        match &self.decoded {
            Some(cache) => cache.get_or_decode(index, || self.decode_at(index)),
            None => self.decode_at(index),
        }
    }

    /// The same folder, keeping each image's decoded pixels in memory after its first read while
    /// `budget` has room for them, so that later epochs read no file and decode nothing for the
    /// images kept. The pixels are those of a fresh decode, so training is the same to the bit.
    /// Clones share the kept images.
    pub fn keep_decoded(mut self, budget: DecodedBudget) -> Self {
        self.decoded = Some(DecodedCache::new(self.samples.len(), budget));
        self
    }

    /// How many decoded images are kept ([`keep_decoded`](Self::keep_decoded)).
    pub fn kept_decoded(&self) -> usize {
        self.decoded.as_ref().map_or(0, DecodedCache::kept)
    }

    /// The memory every image decoded would take, estimated from the first image: its decoded
    /// pixels times the number of images (a [`DataError`] if it cannot be decoded).
    pub fn decoded_bytes_estimate(&self) -> Result<u64, DataError> {
        let first = self.load(0)?;
        Ok(first.pixels.len() as u64 * self.samples.len() as u64)
    }

    fn decode_at(&self, index: usize) -> Result<ImageItem, DataError> {
        let (path, label) = &self.samples[index];
        let image = decode(path)?;
        Ok(to_item(image, self.color, *label))
    }
}

impl Dataset<ImageItem> for ImageFolder {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        Ok(self.load(index)?)
    }

    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// Decodes one image file, guessing the format from its content.
pub fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?;
    reader.decode().map_err(|source| DataError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// Converts a decoded image to an [`ImageItem`] in `color` mode.
pub fn to_item(image: DynamicImage, color: ColorMode, label: usize) -> ImageItem {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = match color {
        ColorMode::Rgb => image.into_rgb8().into_raw(),
        ColorMode::Gray => image.into_luma8().into_raw(),
    };
    ImageItem::new(pixels, height, width, color.channels(), label)
}

/// Checks one file as `validation` says.
fn check(path: &Path, validation: Validation) -> Result<(), DataError> {
    match validation {
        Validation::None => Ok(()),
        Validation::Header => {
            let reader = ImageReader::open(path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| DataError::io(path, e))?;
            reader
                .into_dimensions()
                .map(|_| ())
                .map_err(|source| DataError::Decode {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Validation::Decode => decode(path).map(|_| ()),
    }
}

type Validated = (Vec<(PathBuf, usize)>, Vec<SkippedFile>);

/// Validates `samples` on several threads; keeps the order.
fn validate(
    samples: Vec<(PathBuf, usize)>,
    options: &ImageFolderOptions,
) -> Result<Validated, DataError> {
    if options.validation == Validation::None || samples.is_empty() {
        return Ok((samples, Vec::new()));
    }
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let chunk = samples.len().div_ceil(threads);
    let results: Vec<Result<(), DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = samples
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(path, _)| check(path, options.validation))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("image validation thread panicked"))
            .collect()
    });
    let mut kept = Vec::with_capacity(samples.len());
    let mut skipped = Vec::new();
    for (sample, result) in samples.into_iter().zip(results) {
        match result {
            Ok(()) => kept.push(sample),
            Err(error) if options.skip_invalid => skipped.push(SkippedFile {
                path: sample.0,
                error,
            }),
            Err(error) => return Err(error),
        }
    }
    Ok((kept, skipped))
}

/// The entries of `dir` as `(path, is_dir)`, hidden ones (`.name`) left out, sorted by name.
/// Symbolic links are followed.
fn sorted_entries(dir: &Path) -> Result<Vec<(PathBuf, bool)>, DataError> {
    let read = fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `file_type` needs no extra system call on most file systems; links need a stat.
        let file_type = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        let is_dir = if file_type.is_symlink() {
            path.is_dir()
        } else {
            file_type.is_dir()
        };
        entries.push((path, is_dir));
    }
    entries.sort();
    Ok(entries)
}

/// Adds the images under `dir` (recursively, sorted) with `label` to `out`.
fn collect_images(
    dir: &Path,
    label: usize,
    out: &mut Vec<(PathBuf, usize)>,
) -> Result<(), DataError> {
    for (path, is_dir) in sorted_entries(dir)? {
        if is_dir {
            collect_images(&path, label, out)?;
        } else if is_image_file(&path) {
            out.push((path, label));
        }
    }
    Ok(())
}

/// Whether `path` has an image extension (case-insensitive).
fn is_image_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}
