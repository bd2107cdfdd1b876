//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `cvtk-deploy`. Variants carry the offending
/// value, path or URL; messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value out of range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in the config type or flag.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A deployment name that is not usable.
    #[error("invalid deployment name '{name}': use 1-63 lowercase letters, digits and '-', starting with a letter (it becomes a Kubernetes name)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No deployment of that name is recorded.
    #[error("no deployment named '{name}' (see `cvtk deploy list`)")]
    NotFound {
        /// The name given.
        name: String,
    },
    /// A deployment of that name is already running.
    #[error("deployment '{name}' is already running at {url}; delete it first (`cvtk deploy delete {name}`) or pick another name")]
    AlreadyRunning {
        /// The name.
        name: String,
        /// Where it runs.
        url: String,
    },
    /// The service process could not be started or did not become ready.
    #[error("service '{name}' did not start: {reason}")]
    StartFailed {
        /// The deployment name.
        name: String,
        /// What happened, with the end of the server log.
        reason: String,
    },
    /// An HTTP request to a service failed before an answer came.
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The service answered with an error.
    #[error("service at {url} answered {status}: {message}")]
    Service {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The service's error message.
        message: String,
    },
    /// The service cannot listen on its address (another program has the
    /// port, say).
    #[error("cannot listen on {addr}: {source}; {}", listen_hint(.source))]
    Listen {
        /// The address asked for (`host:port`).
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// A container image that was asked for could not be built.
    #[error("image {image} not built: {reason}")]
    ImageBuild {
        /// The image tag.
        image: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A deployment record that cannot be read.
    #[error("deployment record {path}: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An error from the model crate (loading or scoring).
    #[error(transparent)]
    Model(#[from] cvtk_model::Error),
    /// An error from the dataset crate (images, files).
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// What to do when an address cannot be listened on.
pub(crate) fn listen_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another program (another cvtk serve?) is listening there: pick another --port, or stop it (`cvtk deploy list` shows cvtk's)"
        }
        std::io::ErrorKind::AddrNotAvailable => "that address is not one of this machine's: check --host",
        std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: pick a --port of 1024 or more",
        _ => "pick another --port or --host",
    }
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig { field, reason: reason.into() }
    }
}
