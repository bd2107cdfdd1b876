//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong collecting a dataset. Each variant names the
/// offending path or value, and its message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query file is not valid.
    #[error("query file {path} is not valid: {reason}")]
    Queries {
        /// The query file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Not one image could be collected from a query file.
    #[error("no image could be collected from {path}: {failures}")]
    NothingCollected {
        /// The query file.
        path: PathBuf,
        /// The first failures, `source (label): reason; ...`.
        failures: String,
    },
    /// An option is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The option's name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A package of sample data could not be downloaded or unpacked.
    #[error("cannot fetch {url}: {reason}")]
    Download {
        /// The package's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Scanning the collected folder.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
