//! [`ManifestLock`]: one writer of a manifest at a time, across processes.
//!
//! A manifest is read, changed and written back by several commands (`cvtk
//! annotate` edits, `cvtk dataset split` over an existing manifest). Each
//! holds the lock across its read-modify-write, so two of them never
//! interleave and lose each other's change. The lock is an advisory,
//! exclusive `flock` on `MANIFEST.lock` beside it (left in place: removing it
//! would race with the next writer); the operating system releases it when
//! the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long [`ManifestLock::acquire`] waits for another writer by default.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// An exclusive lock on a manifest, held until dropped.
#[derive(Debug)]
pub struct ManifestLock {
    manifest: PathBuf,
    _file: File,
}

impl ManifestLock {
    /// Locks `manifest`, waiting up to [`LOCK_WAIT`] for another writer.
    pub fn acquire(manifest: &Path) -> Result<Self> {
        Self::acquire_within(manifest, LOCK_WAIT)
    }

    /// Locks `manifest`, waiting up to `wait` for another writer.
    pub fn acquire_within(manifest: &Path, wait: Duration) -> Result<Self> {
        let lock_path = lock_path(manifest);
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("cannot open the lock file", &lock_path, e))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(ManifestLock { manifest: manifest.to_path_buf(), _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Manifest {
                        path: manifest.to_path_buf(),
                        reason: format!(
                            "another cvtk is writing it (it holds {}) and did not finish within {:.0} s; try again",
                            lock_path.display(),
                            wait.as_secs_f64()
                        ),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("cannot lock", &lock_path, e)),
            }
        }
    }

    /// The manifest this lock holds.
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }
}

/// `MANIFEST.lock`, beside the manifest.
fn lock_path(manifest: &Path) -> PathBuf {
    let mut name = manifest.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "manifest".into());
    name.push(".lock");
    manifest.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_and_then_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("d.json");
        let held = ManifestLock::acquire(&m).unwrap();
        assert_eq!(held.manifest(), m);
        let e = ManifestLock::acquire_within(&m, Duration::from_millis(50)).unwrap_err().to_string();
        assert!(e.contains("another cvtk is writing it") && e.contains("d.json.lock"), "{e}");
        drop(held);
        ManifestLock::acquire_within(&m, Duration::from_millis(50)).unwrap();
    }
}
