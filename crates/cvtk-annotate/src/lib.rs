//! `cvtk annotate`: a small local web application to look at a dataset's
//! images and correct their labels, the counterpart of the original package's
//! notebook widget (its step 2).
//!
//! The page shows the images in a paged grid with their labels, filters by
//! label, opens an image large, changes a label, excludes an image or adds a
//! label, with keyboard shortcuts. Given a model's [`Prediction`]s it shows them
//! and orders the most doubtful images first. When the manifest holds the
//! findings of `cvtk audit`, it filters by them, shows each image's (the
//! suggested label, the duplicate set, the quality issues), accepts a
//! suggestion with one key and excludes a set's extra copies with another.
//! Every change is written to the
//! dataset manifest at once (atomically), and the last changes can be undone;
//! see [`Store`] for how two tabs or programs editing the same manifest keep
//! each other's changes. [`ClassificationDataset::from_manifest`] then sees the
//! corrected labels, and leaves excluded images out.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use cvtk_annotate::{serve, AnnotateConfig, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("dishes.json", HashMap::new())?;
//! serve(store, &AnnotateConfig::default(), |addr| println!("open http://{addr}/"))?;
//! # Ok(()) }
//! ```
//!
//! [`ClassificationDataset::from_manifest`]: cvtk_dataset::ClassificationDataset::from_manifest
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
mod manifest;
mod server;
mod store;

pub use error::{Error, Result};
pub use manifest::{manifest_for, ManifestChoice};
pub use server::{app, serve, AnnotateConfig};
pub use store::{AuditView, DatasetView, Edit, ImageState, ImageView, Overlays, Prediction, Store};
