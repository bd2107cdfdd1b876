//! One pass over every image's pixels, each image decoded once, in
//! parallel: its quality statistics ([`crate::quality`]), a digest of its
//! pixels (equal digests: the same picture, whatever the file format or
//! metadata), and a small gray thumbnail that near-duplicate candidates are
//! compared on.

use cvtk_core::progress::Progress;
use cvtk_dataset::ClassificationDataset;
use image::DynamicImage;
use rayon::prelude::*;
use sha2::Digest as _;

use crate::quality::{measure, planes, ImageStats};
use crate::Result;

/// The side of the gray thumbnail.
pub const THUMBNAIL_SIDE: usize = 32;

/// What one decode of an image gives.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelFacts {
    /// Quality statistics.
    pub stats: ImageStats,
    /// SHA-256 of the size, pixel layout and pixel values.
    pub digest: [u8; 32],
    /// The image in gray at 32 x 32, minus its mean, scaled to unit length
    /// (all zero for a flat image): the dot product of two is the
    /// correlation of their layouts.
    pub thumbnail: Vec<f32>,
}

/// Decodes and measures every image of `dataset`, in order.
pub fn pixel_facts(dataset: &ClassificationDataset, max_pixels: u64) -> Result<Vec<PixelFacts>> {
    let progress = Progress::start(dataset.len() as u64, "reading pixels");
    let facts = dataset
        .images()
        .par_iter()
        .map(|image| {
            let decoded = cvtk_dataset::decode::decode_stored(&image.path, max_pixels)?;
            let facts = facts_of(&decoded);
            progress.inc(1);
            Ok(facts)
        })
        .collect::<Result<Vec<_>>>();
    progress.finish();
    facts
}

/// The facts of one decoded image. The digest is of the values as decoded:
/// two 16-bit images that differ only below 8 bits are not the same picture.
pub fn facts_of(image: &DynamicImage) -> PixelFacts {
    let mut hash = sha2::Sha256::new();
    hash.update(format!("{}x{} {:?}\n", image.width(), image.height(), image.color()).as_bytes());
    hash.update(image.as_bytes());
    let img = planes(image);
    let small = img.to_gray().resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let values: Vec<f64> = small.data.iter().map(|&v| f64::from(v)).collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let norm = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>().sqrt();
    let thumbnail =
        values.iter().map(|v| if norm > 0.0 { ((v - mean) / norm) as f32 } else { 0.0 }).collect::<Vec<f32>>();
    PixelFacts { stats: measure(&img), digest: hash.finalize().into(), thumbnail }
}

/// The correlation of two thumbnails, -1..1 (0 when either is flat).
pub fn layout_similarity(a: &PixelFacts, b: &PixelFacts) -> f32 {
    a.thumbnail.iter().zip(&b.thumbnail).map(|(x, y)| x * y).sum()
}
