//! The error type of the data pipeline.

use std::path::{Path, PathBuf};

use burn::data::dataset::DatasetError;

/// An error of the data pipeline. Every variant names the file or folder it is about; the
/// message reads `<path>: <problem>`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read (missing, permissions, I/O failure, bad gzip stream).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset folder does not exist or is not a folder.
    #[error("{}: dataset folder not found (or not a directory)", path.display())]
    MissingDir {
        /// The folder.
        path: PathBuf,
    },
    /// A required dataset file does not exist.
    #[error("{}: dataset file not found", path.display())]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// An image file could not be decoded (corrupt, truncated, unsupported format).
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A file has the wrong format (bad magic number, bad header, wrong size, bad label, ...).
    #[error("{}: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        problem: String,
    },
    /// A dataset has no items (an image folder without class folders or images, an empty file).
    #[error("{}: no {what} found", path.display())]
    Empty {
        /// The file or folder.
        path: PathBuf,
        /// What was expected (e.g. "class folders", "images", "records").
        what: &'static str,
    },
}

impl DataError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::MissingDir { path }
            | Self::MissingFile { path }
            | Self::Decode { path, .. }
            | Self::Format { path, .. }
            | Self::Empty { path, .. } => path,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error on `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl From<DataError> for DatasetError {
    fn from(err: DataError) -> Self {
        DatasetError::new(err)
    }
}
