//! What every cvtk crate shares, and nothing about images or models: the
//! bottom of the workspace, with no libtorch, no image codec and no HTTP stack.
//!
//! - [`fs`]: atomic writes ([`write_atomic`], [`write_json_atomic`]) for every
//!   file a user would hate to lose, and the fsyncs around them;
//! - [`FileLock`]: one writer of a file at a time, across processes;
//! - [`progress`]: long work reports its progress to what the program installed;
//! - [`Scores`], [`ScoreKind`], [`Ranked`], [`top_k`]: what a classifier says
//!   about images, shared by the crates that make, judge, serve and audit scores;
//! - [`StorageContext`]: where outputs, persistent state and temporary files go;
//! - [`IoError`]: a failed file operation, which every crate's error wraps.
//!
//! ```
//! use cvtk_core::{top_k, write_json_atomic, FileLock, ScoreKind};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("state.json");
//! let _lock = FileLock::acquire(&path)?; // no other cvtk writes it meanwhile
//! write_json_atomic(&path, &ScoreKind::LOGITS)?;
//! assert_eq!(std::fs::read_to_string(&path)?.trim(), r#"{
//!   "kind": "logits",
//!   "temperature": 1.0
//! }"#);
//! assert_eq!(top_k(&[0.1, 0.7, 0.2], 2), [1, 2]);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// No unwrap on anything a user can influence (tests may: see clippy.toml).
#![warn(clippy::unwrap_used)]

mod error;
pub mod fs;
mod lock;
pub mod progress;
pub mod scores;
mod storage;

pub use error::{IoError, IoResult};
pub use fs::{paths_overlap, sync_dir, sync_file, write_atomic, write_atomic_private, write_json_atomic};
pub use lock::{FileLock, LOCK_WAIT};
pub use scores::{first_max, top_k, Ranked, ScoreKind, Scores};
pub use storage::StorageContext;
