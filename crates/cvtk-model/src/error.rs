//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cvtk-model`. Variants carry the offending
/// value or path; messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An architecture name cvtk does not know.
    #[error("unknown base model '{name}'; known: {known}")]
    UnknownArchitecture {
        /// The name given.
        name: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// A weights file that cannot be used.
    #[error("weights file {path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No weights file was found for a pretrained model.
    #[error("no pretrained weights for {arch} found (looked in {searched}); pass --weights FILE, or put torchvision's {arch}-*.pth in one of those folders")]
    WeightsNotFound {
        /// The architecture.
        arch: String,
        /// The folders searched.
        searched: String,
    },
    /// A saved model folder that cannot be loaded.
    #[error("model {path}: {reason}")]
    ModelFile {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value out of range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in the config type.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Input that does not fit the model.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A dataset error (loading images, labels).
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// A libtorch error (first line of its message).
    #[error("libtorch: {0}")]
    Torch(String),
    /// The SVM solver failed.
    #[error("svm: {0}")]
    Svm(String),
    /// The scoring engine (onnxruntime) cannot be loaded or failed.
    #[error("onnxruntime: {0}")]
    Engine(String),
    /// An ONNX file that cannot be used (corrupt, not cvtk's, or not this model's).
    #[error("ONNX file {path}: {reason}")]
    Onnx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training diverged (loss became NaN or infinite).
    #[error("training diverged at epoch {epoch}: the loss is {loss}; lower the learning rate")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// The loss seen.
        loss: f64,
    },
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e.to_string().lines().next().unwrap_or_default().to_string())
    }
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
