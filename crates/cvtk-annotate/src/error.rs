//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong in `cvtk-annotate`, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, checking or writing the dataset or its manifest failed.
    #[error(transparent)]
    Dataset(#[from] cvtk_dataset::Error),
    /// A file operation failed (the manifest's lock, its folder).
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// The manifest cannot be written: the file is read-only.
    #[error("manifest {path} is read-only, so the change was not saved (nothing else changed); make it writable (chmod u+w) and try again")]
    ReadOnly {
        /// The manifest.
        path: PathBuf,
    },
    /// No image has this id.
    #[error("no image with id {id} in this dataset")]
    NoSuchImage {
        /// The id asked for.
        id: u64,
    },
    /// The image changed since the page last saw it (another tab or program).
    #[error("image {id} was changed elsewhere (another tab or program) since this page loaded it; its current state is shown, make the change again if still wanted")]
    Conflict {
        /// The image.
        id: u64,
    },
    /// Undo asked for with nothing to undo.
    #[error("nothing to undo")]
    NothingToUndo,
    /// A label that is not in the dataset.
    #[error("unknown label '{0}'; add it first")]
    UnknownLabel(String),
    /// The server could not start.
    #[error("cannot serve on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Binding beyond loopback without saying so.
    #[error("refusing to serve on {0}: the annotation page lets anyone who reaches it edit the dataset; bind to 127.0.0.1, or allow other hosts explicitly (--allow-remote)")]
    NotLoopback(String),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
