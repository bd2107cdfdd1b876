//! The crate's error type.

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
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// A dataset error.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
