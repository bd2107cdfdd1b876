//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cvtk-eval`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Inputs that cannot be evaluated (mismatched lengths, NaN scores, ...).
    #[error("cannot evaluate: {0}")]
    Invalid(String),
    /// A plot could not be drawn.
    #[error("cannot draw plot: {0}")]
    Plot(String),
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A dataset error.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
