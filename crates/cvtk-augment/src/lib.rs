//! Image augmentation for cvtk: the counterpart of the original package's
//! `augment_dataset`, which applied pipelines written with the `imgaug` library
//! (`Sequential([Fliplr(0.5), Crop(percent=(0, 0.1))])`).
//!
//! - [`Augmenter`]: one image in, one image out, with a seeded generator.
//! - Built-ins, with imgaug's names and parameters: [`Sequential`], [`SomeOf`],
//!   [`OneOf`], [`Sometimes`], [`Fliplr`], [`Flipud`], [`Crop`], [`Pad`],
//!   [`Affine`], [`Rotate`], [`Resize`], [`Multiply`], [`Add`],
//!   [`LinearContrast`], [`GaussianBlur`], [`AdditiveGaussianNoise`],
//!   [`Grayscale`]. A parameter is a constant or a `(lo, hi)` range sampled per
//!   image ([`Param`]); invalid values are refused at construction.
//! - [`Pipeline`]: a checked tree of them, written in code, JSON or TOML, run
//!   with a seed per image. It is a [`cvtk_dataset::ImageTransform`], so the
//!   training loader applies it on the fly.
//! - [`augment_dataset`]: writes augmented copies and returns the bigger dataset.
//!
//! ```
//! use cvtk_augment::{Crop, Fliplr, Pipeline, Sequential};
//!
//! # fn main() -> cvtk_augment::Result<()> {
//! let pipeline = Pipeline::new(Sequential::new(vec![Fliplr::new(0.5)?.into(), Crop::percent((0.0, 0.1))?.into()])?)?;
//! let same = Pipeline::from_json(r#"{"type": "Sequential", "children": [
//!     {"type": "Fliplr", "p": 0.5}, {"type": "Crop", "percent": [0.0, 0.1]}]}"#)?;
//! assert_eq!(pipeline, same);
//! let image = image::RgbImage::new(64, 48);
//! assert_eq!(pipeline.run(image, 7).dimensions(), (64, 48)); // Crop keeps the size, as imgaug does
//! assert!(Fliplr::new(1.5).is_err());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod color;
mod dataset;
mod error;
mod geometry;
mod meta;
mod param;
mod spec;

use image::RgbImage;
use rand_chacha::ChaCha8Rng;

pub use color::{Add, AdditiveGaussianNoise, GaussianBlur, Grayscale, LinearContrast, Multiply};
pub use dataset::{augment_dataset, augment_dataset_into, keep_excluded_copies};
pub use error::{Error, Result};
pub use geometry::{Affine, Crop, FillMode, Fliplr, Flipud, Pad, Resize, Rotate};
pub use meta::{OneOf, Sequential, SomeOf, Sometimes};
pub use param::Param;
pub use rand_chacha::ChaCha8Rng as AugmentRng;
pub use spec::{Pipeline, Spec};

/// An image-to-image transform. Randomness comes only from `rng`, so a seeded
/// generator makes it reproducible.
pub trait Augmenter: Send + Sync + std::fmt::Debug {
    /// Transforms one image.
    fn augment(&self, image: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage;
}
