//! [`FileLock`]: one writer of a file at a time, across processes.
//!
//! A file such as a dataset's manifest is read, changed and written back by
//! several commands (`cvtk annotate` edits, `cvtk dataset split` over an
//! existing manifest). Each holds the lock across its read-modify-write, so
//! two of them never interleave and lose each other's change. The lock is an
//! advisory, exclusive `flock` on `FILE.lock` beside it (left in place:
//! removing it would race with the next writer); the operating system
//! releases it when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{IoError, IoResult};

/// How long [`FileLock::acquire`] waits for another writer by default.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: PathBuf,
    _handle: File,
}

impl FileLock {
    /// Locks `file`, waiting up to [`LOCK_WAIT`] for another writer.
    pub fn acquire(file: &Path) -> IoResult<Self> {
        Self::acquire_within(file, LOCK_WAIT)
    }

    /// Locks `file`, waiting up to `wait` for another writer. When the wait
    /// is over, the error's kind is [`TimedOut`](std::io::ErrorKind::TimedOut).
    pub fn acquire_within(file: &Path, wait: Duration) -> IoResult<Self> {
        let lock_path = lock_path(file);
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| IoError::new("cannot create folder", dir, e))?;
        }
        let handle = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| IoError::new("cannot open the lock file", &lock_path, e))?;
        let deadline = Instant::now() + wait;
        loop {
            match handle.try_lock() {
                Ok(()) => return Ok(FileLock { file: file.to_path_buf(), _handle: handle }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    let why = format!(
                        "another cvtk is writing {} and did not finish within {:.0} s; try again",
                        file.display(),
                        wait.as_secs_f64()
                    );
                    return Err(IoError::new(
                        "cannot lock",
                        lock_path,
                        std::io::Error::new(std::io::ErrorKind::TimedOut, why),
                    ));
                }
                Err(TryLockError::Error(e)) => return Err(IoError::new("cannot lock", &lock_path, e)),
            }
        }
    }

    /// The file this lock holds.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// `FILE.lock`, beside the file.
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "file".into());
    name.push(".lock");
    file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_and_then_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("d.json");
        let held = FileLock::acquire(&m).unwrap();
        assert_eq!(held.file(), m);
        let e = FileLock::acquire_within(&m, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let e = e.to_string();
        assert!(e.contains("another cvtk is writing") && e.contains("d.json.lock"), "{e}");
        drop(held);
        FileLock::acquire_within(&m, Duration::from_millis(50)).unwrap();
    }
}
