//! Datasets for cvtk: images in a folder per label, stratified train/test
//! splits, JSON manifests, the walk of an image folder, and the image loader
//! that turns images into normalised `[N, C, H, W]` batches. No libtorch and
//! no HTTP stack; what is not about images (atomic files, locks, progress,
//! scores, storage folders) is in `cvtk-core`, below it.
//!
//! Main types:
//! - [`ClassificationDataset`] (the original package's `ClassificationDataset`):
//!   made by [`ClassificationDataset::create_from_dir`], split by
//!   [`ClassificationDataset::split`] (its `Splitter`), saved and loaded with
//!   [`ClassificationDataset::to_manifest`] / [`ClassificationDataset::from_manifest`].
//! - [`ImageLoader`]: decode, orient, convert, resize, normalise and batch into
//!   [`ImageBatch`]es, in parallel.
//! - [`DatasetSummary`]: counts per label and split part, and the skipped files.
//! - [`walk`]: the image files under a folder, as every command sees them.
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
mod findings;
mod loader;
mod manifest;
pub mod sample;
mod split;
mod summary;
pub mod walk;

pub use dataset::{
    check_label_name, ClassificationDataset, ImageInfo, KeptFixes, Label, ScanOptions, SkipKind, Skipped,
};
pub use error::{Error, Result};
pub use findings::{DuplicateIds, Finding, Findings};
pub use loader::{
    mix_seed, Batch, Batches, ColorMode, ImageBatch, ImageLoader, ImageTransform, LoaderConfig, Normalization,
    ResizeMode,
};
pub use split::{Split, SplitPart};
pub use summary::{DatasetSummary, LabelCount, SplitSummary};
