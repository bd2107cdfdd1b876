//! The crate's error type.

/// What can go wrong in an audit; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The labels and the probabilities do not fit together, or the
    /// probabilities are not probabilities.
    #[error("cannot audit: {0}")]
    Invalid(String),
    /// Featurizing or fitting failed.
    #[error(transparent)]
    Model(#[from] cvtk_model::Error),
    /// The dataset's images could not be read.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
    /// The feature cache could not be read or written.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
