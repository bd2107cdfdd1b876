//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong when scoring a batch (a bad image is a row with an
/// error, never one of these).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// An option or an input is unusable; the message says what to do.
    #[error("{0}")]
    Invalid(String),
    /// The output exists but does not continue this run.
    #[error("{} cannot be resumed: {reason}", path.display())]
    Resume {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] cvtk_model::Error),
    /// Reading a dataset or manifest failed.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
    /// Writing Parquet failed.
    #[error("writing Parquet {}: {reason}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
