//! [`IoError`]: a file operation that failed, on which path, and why.

use std::path::{Path, PathBuf};

/// A failed file operation: what was being done, to which path, and the
/// operating system's reason, kept as the error's [`source`](std::error::Error::source).
///
/// Every cvtk crate's error type wraps this one (`Error::Io`), so "cannot
/// write /x/y: No space left on device" reads the same whichever crate
/// failed, and a caller can look at the [`io::ErrorKind`](std::io::ErrorKind).
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct IoError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl IoError {
    /// `action` ("cannot read", "cannot create folder", ...) failed on `path` because of `source`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError { action, path: path.into(), source }
    }

    /// What was being done.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The path involved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating system's error.
    pub fn io(&self) -> &std::io::Error {
        &self.source
    }

    /// The kind of the operating system's error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

/// `Result` with an [`IoError`].
pub type IoResult<T> = std::result::Result<T, IoError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_action_and_the_path_and_the_cause_is_kept() {
        let e = IoError::new("cannot read", "/x/y.json", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with("cannot read /x/y.json: "), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
