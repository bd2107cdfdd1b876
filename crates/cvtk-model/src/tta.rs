//! Test-time augmentation: score each image and its mirror image and average
//! the raw scores (fastai's `learn.tta` averages flipped copies too).
//!
//! Averaging raw scores (logits, or an SVM's decision values) keeps their
//! kind, so a calibration temperature still applies; for cvtk's linear heads
//! it is the head on the average of the two images' features. A model
//! trained with `--tta flip` records it in its folder ([`TtaMode`] in
//! `model.json`) and fits its calibration on these averaged scores, so every
//! command that loads it ([`crate::load_scorer`]) scores the way it was
//! calibrated; each command's `--tta` overrides it. Class activation maps are
//! averaged the same way (the mirror image's map mirrored back), so a map's
//! mean plus the bias is still the score.

use cvtk_dataset::{ImageBatch, LoaderConfig};
use serde::{Deserialize, Serialize};

use crate::explain::{ClassMaps, Heatmap};
use crate::scorer::Scorer;
use crate::{Engine, Error, Result};

/// Which copies of an image are scored and averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtaMode {
    /// The image alone.
    #[default]
    None,
    /// The image and its left-right mirror image.
    Flip,
}

impl TtaMode {
    /// Whether it adds copies.
    pub fn is_none(&self) -> bool {
        *self == TtaMode::None
    }
}

impl std::str::FromStr for TtaMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(TtaMode::None),
            "flip" => Ok(TtaMode::Flip),
            other => Err(Error::InvalidConfig { field: "tta", reason: format!("'{other}' is not one of none, flip") }),
        }
    }
}

impl std::fmt::Display for TtaMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TtaMode::None => "none",
            TtaMode::Flip => "flip",
        })
    }
}

/// The batch with each image mirrored left-right.
pub fn flip_batch(batch: &ImageBatch) -> Result<ImageBatch> {
    let [n, c, h, w] = batch.shape();
    let mut data = batch.data().to_vec();
    mirror_rows(&mut data, w);
    debug_assert_eq!(data.len(), n * c * h * w);
    Ok(ImageBatch::new(data, [n, c, h, w])?)
}

/// The batch followed by its mirror images (`2N` images).
fn with_mirrors(batch: &ImageBatch) -> Result<ImageBatch> {
    Ok(ImageBatch::concat(&[batch, &flip_batch(batch)?])?)
}

/// Raw scores of `batch` under `mode`: `score` on the images (and their
/// mirror images), averaged per image.
pub fn scores(
    mode: TtaMode,
    batch: &ImageBatch,
    score: impl Fn(&ImageBatch) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    if mode.is_none() {
        return score(batch);
    }
    halves(batch.len(), score(&with_mirrors(batch)?)?, "rows of scores", |a, b| mean(a, b))
}

/// The element-wise mean of two rows.
fn mean(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect()
}

/// Reverses each row of `w` values: a grid (or an image plane) mirrored
/// left-right.
fn mirror_rows(values: &mut [f32], w: usize) {
    for row in values.chunks_mut(w.max(1)) {
        row.reverse();
    }
}

/// The mean of a grid of rows `w` wide and another mirrored back.
fn mirrored_mean(a: &[f32], b: &[f32], w: usize) -> Vec<f32> {
    let mut back = b.to_vec();
    mirror_rows(&mut back, w);
    mean(a, &back)
}

/// Each image's result from the `2n` results of the images then their
/// mirror images, paired by `pair`; an error when there are not `2n`.
fn halves<T>(n: usize, all: Vec<T>, what: &str, pair: impl Fn(&T, &T) -> T) -> Result<Vec<T>> {
    if all.len() != 2 * n {
        return Err(Error::InvalidInput(format!("{} {what} for {} images", all.len(), 2 * n)));
    }
    let (plain, mirrored) = all.split_at(n);
    Ok(plain.iter().zip(mirrored).map(|(a, b)| pair(a, b)).collect())
}

/// Class maps of `batch` under `mode`: `maps` on the images and their mirror
/// images, the mirror's maps mirrored back, averaged (scores too).
pub fn class_maps(
    mode: TtaMode,
    batch: &ImageBatch,
    maps: impl Fn(&ImageBatch) -> Result<Vec<ClassMaps>>,
) -> Result<Vec<ClassMaps>> {
    if mode.is_none() {
        return maps(batch);
    }
    halves(batch.len(), maps(&with_mirrors(batch)?)?, "maps", |a, b| ClassMaps {
        scores: mean(&a.scores, &b.scores),
        height: a.height,
        width: a.width,
        values: mirrored_mean(&a.values, &b.values, a.width),
    })
}

/// Grad-CAM maps under `mode`, averaged as [`class_maps`] does.
pub fn grad_cam(
    mode: TtaMode,
    batch: &ImageBatch,
    targets: &[usize],
    maps: impl Fn(&ImageBatch, &[usize]) -> Result<Vec<Heatmap>>,
) -> Result<Vec<Heatmap>> {
    if mode.is_none() {
        return maps(batch, targets);
    }
    let twice: Vec<usize> = targets.iter().chain(targets).copied().collect();
    halves(batch.len(), maps(&with_mirrors(batch)?, &twice)?, "maps", |a, b| Heatmap {
        height: a.height,
        width: a.width,
        values: mirrored_mean(&a.values, &b.values, a.width),
    })
}

/// A scorer seen through test-time augmentation (what a classifier
/// calibrates itself on when it was trained with it).
pub struct Tta<'a> {
    inner: &'a dyn Scorer,
    mode: TtaMode,
}

impl<'a> Tta<'a> {
    /// `inner` scored under `mode`.
    pub fn new(inner: &'a dyn Scorer, mode: TtaMode) -> Self {
        Tta { inner, mode }
    }
}

impl Scorer for Tta<'_> {
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }
    fn loader_config(&self) -> LoaderConfig {
        self.inner.loader_config()
    }
    fn score_images(&self, images: &ImageBatch) -> Result<Vec<Vec<f32>>> {
        scores(self.mode, images, |b| self.inner.score_images(b))
    }
    fn score_kind(&self) -> cvtk_core::ScoreKind {
        self.inner.score_kind()
    }
    fn engine(&self) -> Engine {
        self.inner.engine()
    }
    fn describe(&self) -> String {
        match self.mode {
            TtaMode::None => self.inner.describe(),
            mode => format!("{}, test-time augmentation: {mode}", self.inner.describe()),
        }
    }
    fn class_maps(&self, images: &ImageBatch) -> Result<Vec<ClassMaps>> {
        class_maps(self.mode, images, |b| self.inner.class_maps(b))
    }
    fn grad_cam(&self, images: &ImageBatch, targets: &[usize]) -> Result<Vec<Heatmap>> {
        grad_cam(self.mode, images, targets, |b, t| self.inner.grad_cam(b, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipping_mirrors_each_row_and_twice_is_the_identity() {
        let b = ImageBatch::new((0..12).map(|v| v as f32).collect(), [1, 2, 2, 3]).unwrap();
        let f = flip_batch(&b).unwrap();
        assert_eq!(f.data(), &[2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0, 11.0, 10.0, 9.0]);
        assert_eq!(flip_batch(&f).unwrap().data(), b.data());
    }

    #[test]
    fn scores_are_the_mean_over_the_image_and_its_mirror() {
        // A "model" scoring the left half's sum against the right half's.
        let score = |b: &ImageBatch| -> Result<Vec<Vec<f32>>> {
            Ok(b.data().chunks(4).map(|px| vec![px[0] + px[2], px[1] + px[3]]).collect())
        };
        let b = ImageBatch::new(vec![1.0, 0.0, 1.0, 0.0], [1, 1, 2, 2]).unwrap();
        assert_eq!(scores(TtaMode::None, &b, score).unwrap(), vec![vec![2.0, 0.0]]);
        assert_eq!(scores(TtaMode::Flip, &b, score).unwrap(), vec![vec![1.0, 1.0]]);
        assert_eq!("flip".parse::<TtaMode>().unwrap(), TtaMode::Flip);
        assert!("rotate".parse::<TtaMode>().unwrap_err().to_string().contains("none, flip"));
    }
}
