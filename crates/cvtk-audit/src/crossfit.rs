//! Out-of-sample probabilities by K-fold cross-fitting: every image is
//! scored by a linear SVM fitted on the other folds' features, never on its
//! own, and the decision values become probabilities through one temperature
//! fitted on all of them. This is what confident learning needs: a model
//! scoring its own training images agrees with every label it memorised.

use cvtk_core::ScoreKind;
use cvtk_model::svm::{out_of_fold_decisions, ValidSvmParams};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// The fold of each image: within each label, the images in a seeded random
/// order dealt to folds in turn, so every fold holds about `1 / folds` of
/// each label.
pub fn stratified_folds(labels: &[usize], classes: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; labels.len()];
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for (j, i) in members.into_iter().enumerate() {
            fold[i] = j % folds;
        }
    }
    fold
}

/// Whether `images` can be dealt into `folds` folds: at least 2 folds, and
/// no more folds than images. Checked before any featurizing, too.
pub fn check_folds(images: usize, folds: usize) -> Result<()> {
    if folds < 2 {
        return Err(Error::Invalid(format!("{folds} folds; cross-fitting needs at least 2")));
    }
    if images < folds {
        return Err(Error::Invalid(format!(
            "{images} images are too few for {folds} folds; an audit needs at least as many images as folds (--folds)"
        )));
    }
    Ok(())
}

/// Each row of `features` (label `labels[i]`, one of `classes`) scored by an
/// SVM fitted on the other `folds - 1` folds, as calibrated probabilities:
/// one row of `classes` probabilities per image, and the temperature.
pub fn out_of_sample_probabilities(
    features: &Array2<f32>,
    labels: &[usize],
    classes: usize,
    folds: usize,
    params: &ValidSvmParams,
    seed: u64,
) -> Result<(Vec<Vec<f64>>, f32)> {
    let n = features.nrows();
    if labels.len() != n {
        return Err(Error::Invalid(format!("{n} rows of features but {} labels", labels.len())));
    }
    check_folds(n, folds)?;
    let fold = stratified_folds(labels, classes, folds, seed);
    let decisions = out_of_fold_decisions(features, labels, classes, &fold, params)?;
    let temperature = cvtk_model::fit_temperature(&decisions, labels)?.temperature;
    let kind = ScoreKind::Decision { temperature };
    Ok((decisions.iter().map(|row| kind.probabilities_f64(row)).collect(), temperature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn folds_are_stratified_and_seeded() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let folds = stratified_folds(&labels, 2, 5, 7);
        for f in 0..5 {
            let ones = (0..100).filter(|&i| folds[i] == f && labels[i] == 1).count();
            assert_eq!(ones, 5, "fold {f}");
        }
        assert_eq!(folds, stratified_folds(&labels, 2, 5, 7));
        assert_ne!(folds, stratified_folds(&labels, 2, 5, 8));
    }

    #[test]
    fn flipped_labels_of_separable_clusters_get_low_out_of_sample_probability() {
        // Three well-separated clusters; every 10th image's label is moved
        // to the next class.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, dim, classes) = (300, 8, 3);
        let truth: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let x = Array2::from_shape_fn((n, dim), |(i, j)| {
            (if j == truth[i] { 4.0 } else { 0.0 }) + rng.random_range(-1.0f32..1.0)
        });
        let labels: Vec<usize> =
            (0..n).map(|i| if i % 10 == 0 { (truth[i] + 1) % classes } else { truth[i] }).collect();
        let params = cvtk_model::SvmParams::default().check().unwrap();
        let (probs, _) = out_of_sample_probabilities(&x, &labels, classes, 5, &params, 0).unwrap();
        let flipped: Vec<usize> = (0..n).filter(|i| i % 10 == 0).collect();
        for &i in &flipped {
            assert!(probs[i][labels[i]] < 0.5, "image {i}: p(given) = {}", probs[i][labels[i]]);
        }
        let issues = crate::label_issues(&labels, &probs).unwrap();
        let found: Vec<usize> = issues.iter().map(|i| i.index).collect();
        // Confident learning estimates how many labels are wrong per pair of
        // classes from the calibrated joint, so it may stop short of all.
        let hits = found.iter().filter(|i| *i % 10 == 0).count();
        assert!(hits * 10 >= flipped.len() * 9, "{hits} of {} flips found: {found:?}", flipped.len());
        assert!(found.len() - hits <= 3, "false alarms: {found:?}");
    }

    #[test]
    fn too_few_images_or_folds_are_clear_errors() {
        let params = cvtk_model::SvmParams::default().check().unwrap();
        let x = Array2::zeros((3, 2));
        let e = out_of_sample_probabilities(&x, &[0, 1, 0], 2, 5, &params, 0).unwrap_err().to_string();
        assert!(e.contains("3 images are too few for 5 folds"), "{e}");
        let e = out_of_sample_probabilities(&x, &[0, 1, 0], 2, 1, &params, 0).unwrap_err().to_string();
        assert!(e.contains("at least 2"), "{e}");
    }
}
