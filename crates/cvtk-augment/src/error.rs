//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cvtk-augment`. Variants name the offending
/// parameter or file; messages say what is allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter out of its allowed range (checked at construction).
    #[error("{augmenter}.{field}: {reason}")]
    InvalidParameter {
        /// The augmenter (`Crop`, `Affine`, ...).
        augmenter: &'static str,
        /// The parameter.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A pipeline file or string that cannot be parsed.
    #[error("pipeline {source_name}: {reason}")]
    Parse {
        /// The file, or `<string>`.
        source_name: String,
        /// What the parser said.
        reason: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// An image could not be read or written.
    #[error("image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An error from the dataset crate.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(augmenter: &'static str, field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter { augmenter, field, reason: reason.into() }
}
