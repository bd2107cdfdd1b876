//! [`StorageContext`]: where cvtk keeps outputs, persistent state and
//! temporary files. Counterpart of the original package's `StorageContext`.

use std::path::{Path, PathBuf};

use crate::{IoError, IoResult};

/// Folders cvtk reads and writes, with defaults that can be overridden.
///
/// - `outputs`: results a user looks at (reports, plots, augmented images).
///   By default, `./outputs`, or `$CVTK_OUTPUTS`.
/// - `persistent`: state kept across runs (deployment records, weights).
///   By default, `$CVTK_HOME`, else `~/.cvtk`.
/// - `temp`: scratch space. By default, `<system temp dir>/cvtk`.
///
/// (The original's `Context` also held the image-search key; that is
/// `cvtk_collect::CollectOptions::image_search` now.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageContext {
    outputs: PathBuf,
    persistent: PathBuf,
    temp: PathBuf,
}

impl Default for StorageContext {
    fn default() -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = env("HOME").unwrap_or_else(|| PathBuf::from("."));
        StorageContext {
            outputs: env("CVTK_OUTPUTS").unwrap_or_else(|| PathBuf::from("outputs")),
            persistent: env("CVTK_HOME").unwrap_or_else(|| home.join(".cvtk")),
            temp: std::env::temp_dir().join("cvtk"),
        }
    }
}

impl StorageContext {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// All three folders under one base: `base/outputs`, `base/persistent`,
    /// `base/temp`. Handy for tests and self-contained runs.
    pub fn under(base: impl AsRef<Path>) -> Self {
        let base = base.as_ref();
        StorageContext { outputs: base.join("outputs"), persistent: base.join("persistent"), temp: base.join("temp") }
    }

    /// Sets the outputs folder.
    pub fn with_outputs(mut self, p: impl Into<PathBuf>) -> Self {
        self.outputs = p.into();
        self
    }

    /// Sets the persistent folder.
    pub fn with_persistent(mut self, p: impl Into<PathBuf>) -> Self {
        self.persistent = p.into();
        self
    }

    /// Sets the temp folder.
    pub fn with_temp(mut self, p: impl Into<PathBuf>) -> Self {
        self.temp = p.into();
        self
    }

    /// Where results go.
    pub fn outputs(&self) -> &Path {
        &self.outputs
    }

    /// Where state kept across runs goes.
    pub fn persistent(&self) -> &Path {
        &self.persistent
    }

    /// Scratch space.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// Where deployment records are kept (`persistent/deployments`).
    pub fn deployments_dir(&self) -> PathBuf {
        self.persistent.join("deployments")
    }

    /// Where cvtk looks for pretrained weights files (`persistent/weights`).
    pub fn weights_dir(&self) -> PathBuf {
        self.persistent.join("weights")
    }

    /// Creates the three folders if they do not exist.
    pub fn ensure(&self) -> IoResult<()> {
        for dir in [&self.outputs, &self.persistent, &self.temp] {
            std::fs::create_dir_all(dir).map_err(|e| IoError::new("cannot create folder", dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_puts_every_folder_below_the_base_and_ensure_creates_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = StorageContext::under(dir.path()).with_temp(dir.path().join("scratch"));
        assert_eq!(s.outputs(), dir.path().join("outputs"));
        assert_eq!(s.deployments_dir(), dir.path().join("persistent/deployments"));
        s.ensure().unwrap();
        assert!(s.temp().is_dir() && s.outputs().is_dir() && s.persistent().is_dir());
    }
}
