//! Datasets for cvtk: images in a folder per label, stratified train/test
//! splits, JSON manifests, storage paths, the image loader that turns images
//! into normalised `[N, C, H, W]` batches, and the vocabulary of scores that
//! the crates above share. No libtorch and no HTTP stack: every cvtk crate
//! builds on this one.
//!
//! Main types:
//! - [`ClassificationDataset`] (the original package's `ClassificationDataset`):
//!   made by [`ClassificationDataset::create_from_dir`], split by
//!   [`ClassificationDataset::split`] (its `Splitter`), saved and loaded with
//!   [`ClassificationDataset::to_manifest`] / [`ClassificationDataset::from_manifest`].
//! - [`StorageContext`] (its `StorageContext`): outputs, persistent and temp
//!   folders, and the image-search endpoint.
//! - [`ImageLoader`]: decode, orient, convert, resize, normalise and batch into
//!   [`ImageBatch`]es, in parallel.
//! - [`Scores`] and [`ScoreKind`]: what a classifier says about the images.
//! - [`DatasetSummary`]: counts per label and split part, and the skipped files.
//! - [`progress`]: long work reports its progress to what the program installed.
//! - [`sample`]: real MNIST / Fashion-MNIST data from package registries.
//!
//! ```
//! use cvtk_dataset::ClassificationDataset;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # for label in ["bowl", "cup"] {
//! #     std::fs::create_dir(dir.path().join(label))?;
//! #     for i in 0..5 {
//! #         image::RgbImage::new(8, 8).save(dir.path().join(label).join(format!("{i}.png")))?;
//! #     }
//! # }
//! let dataset = ClassificationDataset::create_from_dir("dishes", dir.path())?;
//! assert_eq!(dataset.label_names(), ["bowl", "cup"]);
//! let split = dataset.split(0.6, true, 42)?;
//! assert_eq!((split.train.len(), split.test.len()), (6, 4));
//! let mut dataset = dataset;
//! dataset.set_split(split)?;
//! dataset.to_manifest(dir.path().join("dishes.json"))?;
//! let back = ClassificationDataset::from_manifest(dir.path().join("dishes.json"))?;
//! assert_eq!(back.train()?.len(), 6);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// No unwrap on anything a user can influence (tests may: see clippy.toml).
#![warn(clippy::unwrap_used)]

mod dataset;
pub mod decode;
mod error;
mod fsutil;
mod loader;
mod lock;
mod manifest;
pub mod progress;
pub mod sample;
pub mod scores;
mod split;
mod storage;
mod summary;
pub mod walk;

pub use dataset::{
    check_label_name, ClassificationDataset, ImageInfo, KeptFixes, Label, ScanOptions, SkipKind, Skipped,
};
pub use error::{Error, Result};
pub use fsutil::{paths_overlap, sync_dir, sync_file, write_atomic, write_atomic_private, write_json_atomic};
pub use loader::{
    mix_seed, Batch, Batches, ColorMode, ImageBatch, ImageLoader, ImageTransform, LoaderConfig, Normalization,
    ResizeMode,
};
pub use lock::{ManifestLock, LOCK_WAIT};
pub use scores::{first_max, top_k, Ranked, ScoreKind, Scores};
pub use split::{Split, SplitPart};
pub use storage::StorageContext;
pub use summary::{DatasetSummary, LabelCount, SplitSummary};
