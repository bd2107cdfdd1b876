//! Image quality: too dark, too light, blurry, low information (near blank),
//! odd aspect ratio, odd size, grayscale among colour images. Each check is
//! CleanVision's (0.3.7, its default thresholds), on the same statistics of
//! the same pixels ([`crate::pil`]), so an image is flagged here when
//! CleanVision flags it (a test runs CleanVision on the same files).
//!
//! | check | statistic (score) | issue when |
//! |---|---|---|
//! | dark | 99th percentile of brightness | < 0.32 |
//! | light | 1 - 5th percentile of brightness | < 0.05 |
//! | blurry | edge strength of a 64-pixel copy, plus the spread of its gray levels | < 0.29 |
//! | low information | entropy / 10 bits | < 0.3 |
//! | odd aspect ratio | shorter side / longer side | < 0.35 |
//! | odd size | distance of `sqrt(w) sqrt(h)` from the dataset's middle sizes | outside `Q1 - 3 IQR .. Q3 + 3 IQR` |
//! | grayscale | stored as one gray band | and the dataset has colour images |
//!
//! Brightness is `sqrt(0.241 R² + 0.691 G² + 0.068 B²) / 255` per pixel. An
//! image is judged as it is stored (no EXIF rotation; 16-bit images at 8
//! bits, see [`planes`]), as CleanVision does.

use std::path::Path;

use cvtk_dataset::decode::decode_stored;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::pil::Planes;
use crate::stats::{percentile, percentile_unsorted};

/// CleanVision's default thresholds: a score under one is an issue.
pub mod thresholds {
    /// Dark: 99th percentile of brightness.
    pub const DARK: f64 = 0.32;
    /// Light: 1 - 5th percentile of brightness.
    pub const LIGHT: f64 = 0.05;
    /// Blurry.
    pub const BLURRY: f64 = 0.29;
    /// The part of the blurry score from the spread of gray levels counts only above this.
    pub const BLURRY_COLOR: f64 = 0.18;
    /// Low information: entropy in bits / 10.
    pub const LOW_INFORMATION: f64 = 0.3;
    /// Odd aspect ratio: shorter side / longer side.
    pub const ODD_ASPECT_RATIO: f64 = 0.35;
    /// Odd size: how many interquartile ranges beyond the quartiles.
    pub const ODD_SIZE_IQR: f64 = 3.0;
}

/// The longest side of the copy the blurriness is measured on.
const BLUR_SIDE: usize = 64;

/// What is measured on one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Stored as one gray band (Pillow's mode `L`).
    pub gray: bool,
    /// 5th percentile of brightness, 0..1.
    pub brightness_p5: f64,
    /// 99th percentile of brightness, 0..1.
    pub brightness_p99: f64,
    /// Entropy of the pixel values, in bits (all bands' values together).
    pub entropy: f64,
    /// Standard deviation of the edge image of a copy at most 64 pixels across.
    pub blurriness: f64,
    /// Standard deviation of that copy's 256 gray-level counts.
    pub gray_level_spread: f64,
}

/// The score of each check on one image (lower is worse), CleanVision's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityScores {
    /// Dark.
    pub dark: f64,
    /// Light.
    pub light: f64,
    /// Blurry.
    pub blurry: f64,
    /// Low information.
    pub low_information: f64,
    /// Odd aspect ratio.
    pub odd_aspect_ratio: f64,
    /// Odd size (relative to the dataset).
    pub odd_size: f64,
}

/// One kind of image-quality issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityIssue {
    /// Too dark.
    Dark,
    /// Too light (washed out).
    Light,
    /// Blurry.
    Blurry,
    /// Low information: nearly blank.
    LowInformation,
    /// Very wide or very tall.
    OddAspectRatio,
    /// Much larger or smaller than the dataset's images.
    OddSize,
    /// Gray among colour images.
    Grayscale,
}

impl QualityIssue {
    /// Every kind, in the order reports list them.
    pub const ALL: [QualityIssue; 7] = [
        QualityIssue::Dark,
        QualityIssue::Light,
        QualityIssue::Blurry,
        QualityIssue::LowInformation,
        QualityIssue::OddAspectRatio,
        QualityIssue::OddSize,
        QualityIssue::Grayscale,
    ];

    /// Its name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            QualityIssue::Dark => "dark",
            QualityIssue::Light => "light",
            QualityIssue::Blurry => "blurry",
            QualityIssue::LowInformation => "low_information",
            QualityIssue::OddAspectRatio => "odd_aspect_ratio",
            QualityIssue::OddSize => "odd_size",
            QualityIssue::Grayscale => "grayscale",
        }
    }
}

/// An 8-bit [`Planes`] of an image as stored. 16-bit images are scaled to 8
/// bits (the `image` crate's rounding, not Pillow's: CleanVision's numbers
/// are matched on 8-bit images only), other layouts become RGB or RGBA.
pub fn planes(image: &DynamicImage) -> Planes {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (bands, data) = match image {
        DynamicImage::ImageLuma8(i) => (1, i.as_raw().clone()),
        DynamicImage::ImageLumaA8(i) => (2, i.as_raw().clone()),
        DynamicImage::ImageRgb8(i) => (3, i.as_raw().clone()),
        DynamicImage::ImageRgba8(i) => (4, i.as_raw().clone()),
        DynamicImage::ImageLuma16(_) => (1, image.to_luma8().into_raw()),
        DynamicImage::ImageLumaA16(_) => (2, image.to_luma_alpha8().into_raw()),
        other if other.color().has_alpha() => (4, other.to_rgba8().into_raw()),
        other => (3, other.to_rgb8().into_raw()),
    };
    Planes { width, height, bands, data }
}

/// Reads and measures the image at `path`.
pub fn measure_file(path: &Path, max_pixels: u64) -> cvtk_dataset::Result<ImageStats> {
    let image = decode_stored(path, max_pixels)?;
    Ok(measure(&planes(&image)))
}

/// Measures one image.
pub fn measure(img: &Planes) -> ImageStats {
    let (p5, p99) = brightness_percentiles(img);
    // The blurriness copy: longest side 64, the other in proportion
    // (Python's `w // (max(w, h) / 64)`, exact here).
    let longest = img.width.max(img.height);
    let small = if longest > BLUR_SIDE {
        img.resize((BLUR_SIDE * img.width / longest).max(1), (BLUR_SIDE * img.height / longest).max(1))
    } else {
        img.clone()
    };
    let gray = small.to_gray();
    let edges = gray.find_edges().histogram();
    let (count, sum, sum_sq) = edges
        .iter()
        .enumerate()
        .fold((0u64, 0u64, 0u64), |(c, s, s2), (v, &n)| (c + n, s + v as u64 * n, s2 + (v * v) as u64 * n));
    // ImageStat's population variance: (Σx² - (Σx)²/n) / n.
    let (n, s) = (count as f64, sum as f64);
    let variance = (sum_sq as f64 - (s * s) / n) / n;
    let levels = gray.histogram();
    let mean = levels.iter().sum::<u64>() as f64 / 256.0;
    let spread = (levels.iter().map(|&h| (h as f64 - mean).powi(2)).sum::<f64>() / 256.0).sqrt();
    ImageStats {
        width: img.width as u32,
        height: img.height as u32,
        gray: img.bands == 1,
        brightness_p5: p5,
        brightness_p99: p99,
        entropy: img.entropy(),
        blurriness: variance.max(0.0).sqrt(),
        gray_level_spread: spread,
    }
}

/// The 5th and 99th percentiles of per-pixel brightness (numpy's linear
/// percentile over all pixels).
fn brightness_percentiles(img: &Planes) -> (f64, f64) {
    if img.bands < 3 {
        // One value per pixel: the percentiles from the histogram of the first band.
        let h = &img.histogram()[..256];
        let nth = |k: usize| {
            let mut seen = 0u64;
            for (v, &count) in h.iter().enumerate() {
                seen += count;
                if seen as usize > k {
                    return v as f64 / 255.0;
                }
            }
            1.0
        };
        let at = |q: f64| percentile_of(img.width * img.height, q, nth);
        return (at(5.0), at(99.0));
    }
    let mut values: Vec<f64> = img
        .data
        .chunks_exact(img.bands)
        .map(|p| {
            let (r, g, b) = (
                f64::from(u32::from(p[0]).pow(2)),
                f64::from(u32::from(p[1]).pow(2)),
                f64::from(u32::from(p[2]).pow(2)),
            );
            ((0.241 * r + 0.691 * g) + 0.068 * b).sqrt() / 255.0
        })
        .collect();
    (percentile_unsorted(&mut values, 5.0), percentile_unsorted(&mut values, 99.0))
}

/// numpy's linear percentile of `n` values, given the `k`-th smallest.
fn percentile_of(n: usize, q: f64, nth: impl Fn(usize) -> f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let h = (n - 1) as f64 * (q / 100.0);
    let lo = h.floor() as usize;
    let g = h - lo as f64;
    let (a, b) = (nth(lo), nth((lo + 1).min(n - 1)));
    crate::stats::lerp(a, b, g)
}

/// One image's scores and the issues they make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// Every check's score.
    pub scores: QualityScores,
    /// The checks it fails.
    pub issues: Vec<QualityIssue>,
}

/// Scores and issues of every image of a dataset (`stats`, one per image:
/// the odd-size check and the grayscale one are relative to the others).
/// The odd-size threshold is CleanVision's: outside `Q1 - 3 IQR .. Q3 + 3
/// IQR`, or, when more than half the images share one size, any other size.
pub fn judge(stats: &[ImageStats]) -> Vec<Judged> {
    let sizes: Vec<f64> = stats.iter().map(|s| f64::from(s.width).sqrt() * f64::from(s.height).sqrt()).collect();
    let (q1, q3) = (percentile(&sizes, 25.0), percentile(&sizes, 75.0));
    let iqr = q3 - q1;
    let (low, high) = (q1 - thresholds::ODD_SIZE_IQR * iqr, q3 + thresholds::ODD_SIZE_IQR * iqr);
    let (mid, gap) = ((low + high) / 2.0, high - low);
    let (norm, odd_size_threshold) = if gap > 0.0 { (gap, 0.5) } else { (mid, 1.0) };
    let colour_in_dataset = stats.iter().any(|s| !s.gray);
    stats
        .iter()
        .zip(&sizes)
        .map(|(s, &size)| {
            let blur = 1.0 - (-s.blurriness * 0.01).exp();
            let spread = 1.0 - (-s.gray_level_spread * 0.01).exp();
            let spread = if spread <= thresholds::BLURRY_COLOR { 0.0 } else { spread };
            let (w, h) = (f64::from(s.width), f64::from(s.height));
            let scores = QualityScores {
                dark: s.brightness_p99,
                light: 1.0 - s.brightness_p5,
                blurry: (blur + spread).min(1.0),
                low_information: (0.1 * s.entropy).min(1.0),
                odd_aspect_ratio: (w / h).min(h / w),
                odd_size: 1.0 - ((size - mid).abs() / norm).clamp(0.0, 1.0),
            };
            let checks = [
                (QualityIssue::Dark, scores.dark < thresholds::DARK),
                (QualityIssue::Light, scores.light < thresholds::LIGHT),
                (QualityIssue::Blurry, scores.blurry < thresholds::BLURRY),
                (QualityIssue::LowInformation, scores.low_information < thresholds::LOW_INFORMATION),
                (QualityIssue::OddAspectRatio, scores.odd_aspect_ratio < thresholds::ODD_ASPECT_RATIO),
                (QualityIssue::OddSize, scores.odd_size < odd_size_threshold),
                (QualityIssue::Grayscale, s.gray && colour_in_dataset),
            ];
            Judged { scores, issues: checks.into_iter().filter(|&(_, yes)| yes).map(|(issue, _)| issue).collect() }
        })
        .collect()
}
