//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cvtk-dataset`. Each variant names the
/// offending path or value, and its message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dataset root does not exist.
    #[error("dataset folder {path} does not exist; pass a folder that holds one sub-folder per label")]
    RootNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The dataset root is a file, not a folder.
    #[error("{path} is a file, not a folder; pass a folder that holds one sub-folder per label")]
    RootNotDir {
        /// The path given.
        path: PathBuf,
    },
    /// The root holds no usable image at all.
    #[error("no images found under {path} ({skipped} files skipped); expected one sub-folder per label holding images (jpg, png, bmp, gif, tiff, webp)")]
    NoImages {
        /// The dataset root.
        path: PathBuf,
        /// How many files were skipped (see the dataset's skipped list).
        skipped: usize,
    },
    /// An image could not be decoded.
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image is larger than the configured limits (a decompression-bomb guard).
    #[error("image {path} is too large ({width}x{height} pixels, limit {max_pixels} pixels); raise the loader's max_pixels if this is intended")]
    TooLarge {
        /// The image file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured limit.
        max_pixels: u64,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// A manifest file is not valid.
    #[error("manifest {path} is not valid: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A split cannot be made with these parameters.
    #[error("cannot split: {0}")]
    Split(String),
    /// The dataset has no split but one was asked for.
    #[error("dataset '{name}' has no train/test split; split it first (`cvtk dataset split`)")]
    NoSplit {
        /// The dataset name.
        name: String,
    },
    /// A label name is not part of the dataset.
    #[error("unknown label '{label}'; the dataset's labels are: {known}")]
    UnknownLabel {
        /// The label asked for.
        label: String,
        /// The known labels, comma-separated.
        known: String,
    },
    /// A configuration value is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field name, as in the config type.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A sample-data source file is missing or malformed.
    #[error("sample data: {0}")]
    SampleData(String),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
