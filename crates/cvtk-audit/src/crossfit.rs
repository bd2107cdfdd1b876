//! Out-of-sample probabilities by K-fold cross-fitting: every image is
//! scored by a multinomial logistic regression fitted on the other folds'
//! features, never on its own, and the logits become probabilities through
//! one temperature fitted on all of them. This is what confident learning
//! needs: a model scoring its own training images agrees with every label it
//! memorised.
//!
//! The model is scikit-learn's `LogisticRegression` with its defaults
//! ([`crate::logistic`]), so the audit's label issues are those of cleanlab
//! fed `cross_val_predict(LogisticRegression(), ...)` on the same features
//! (`cargo bench --bench audit` compares them).

use cvtk_core::ScoreKind;
use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{logistic, Error, Result};

/// The model fitted on each fold's features.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticParams {
    /// The inverse of the L2 penalty's weight, as scikit-learn's `C`: the
    /// objective is the log-loss summed over images plus `‖W‖² / 2C`.
    /// By default 1 (scikit-learn's default).
    pub c: f32,
    /// L-BFGS iterations at most per fold. By default 100 (scikit-learn's
    /// default too): the flagged images barely change past it, and each
    /// iteration costs a pass over the features.
    pub max_iterations: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams { c: 1.0, max_iterations: 100 }
    }
}

impl LogisticParams {
    /// The parameters, or what is wrong with them.
    pub fn check(&self) -> Result<&Self> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(Error::Invalid(format!(
                "C = {}; the logistic regression's C must be a positive number",
                self.c
            )));
        }
        if self.max_iterations == 0 {
            return Err(Error::Invalid("0 iterations; the logistic regression needs at least 1".into()));
        }
        Ok(self)
    }
}

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

/// Each row of `features` (label `labels[i]`, one of `classes`) scored by a
/// logistic regression fitted on the other `folds - 1` folds, as calibrated
/// probabilities: one row of `classes` probabilities per image, and the
/// temperature.
pub fn out_of_sample_probabilities(
    features: &Array2<f32>,
    labels: &[usize],
    classes: usize,
    folds: usize,
    params: &LogisticParams,
    seed: u64,
) -> Result<(Vec<Vec<f64>>, f32)> {
    let n = features.nrows();
    if labels.len() != n {
        return Err(Error::Invalid(format!("{n} rows of features but {} labels", labels.len())));
    }
    if let Some(&label) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::Invalid(format!("label index {label} among {classes} labels")));
    }
    check_folds(n, folds)?;
    let fold = stratified_folds(labels, classes, folds, seed);
    let logits = out_of_fold_logits(features, labels, classes, &fold, params)?;
    // The temperature is fitted on the rows whose model saw every label: a
    // label missing from the other folds has no logit (probability 0), and
    // would pull the temperature towards flattening every row.
    let (judged, judged_labels): (Vec<Vec<f32>>, Vec<usize>) = logits
        .iter()
        .zip(labels)
        .filter(|(row, _)| row.iter().all(|v| v.is_finite()))
        .map(|(row, &l)| (row.clone(), l))
        .unzip();
    let temperature =
        if judged.is_empty() { 1.0 } else { cvtk_model::fit_temperature(&judged, &judged_labels)?.temperature };
    let kind = ScoreKind::Logits { temperature };
    Ok((logits.iter().map(|row| kind.probabilities_f64(row)).collect(), temperature))
}

/// Each row's logits (`classes` of them) from a logistic regression fitted
/// on the rows of the other folds (`fold[i]` is row `i`'s fold). A label
/// with no image in those folds gets `-inf`: the model cannot predict what
/// it never saw. The folds are fitted in parallel.
pub fn out_of_fold_logits(
    features: &Array2<f32>,
    labels: &[usize],
    classes: usize,
    fold: &[usize],
    params: &LogisticParams,
) -> Result<Vec<Vec<f32>>> {
    params.check()?;
    let n = features.nrows();
    if labels.len() != n || fold.len() != n {
        return Err(Error::Invalid(format!(
            "{n} rows of features, {} labels and {} folds: give one of each per row",
            labels.len(),
            fold.len()
        )));
    }
    if let Some(i) = features.outer_iter().position(|row| row.iter().any(|v| !v.is_finite())) {
        return Err(Error::Invalid(format!(
            "image {i}'s features are not finite numbers; featurize it again (--no-cache)"
        )));
    }
    let folds = fold.iter().max().map_or(0, |m| m + 1);
    // Per fold: (row, logits) of each held-out row.
    type Scored = Vec<(usize, Vec<f32>)>;
    let scored: Vec<Result<Scored>> = (0..folds)
        .into_par_iter()
        .map(|f| {
            let (fit, held): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold[i] != f);
            if held.is_empty() {
                return Ok(Vec::new());
            }
            let rows = fit_and_score(features, labels, classes, &fit, &held, params)?;
            Ok(held.into_iter().zip(rows).collect())
        })
        .collect();
    let mut logits = vec![Vec::new(); n];
    for part in scored {
        for (i, row) in part? {
            logits[i] = row;
        }
    }
    Ok(logits)
}

/// The logits of the `held` rows by a model fitted on the `fit` rows. A
/// label with no image among them gets `-inf`; with one label alone there
/// is nothing to fit, and its logit is 0.
fn fit_and_score(
    features: &Array2<f32>,
    labels: &[usize],
    classes: usize,
    fit: &[usize],
    held: &[usize],
    params: &LogisticParams,
) -> Result<Vec<Vec<f32>>> {
    let y: Vec<usize> = fit.iter().map(|&i| labels[i]).collect();
    let mut seen = y.clone();
    seen.sort_unstable();
    seen.dedup();
    let x_held = features.select(Axis(0), held);
    let known = if seen.len() < 2 {
        Array2::zeros((held.len(), seen.len()))
    } else {
        // The model's labels are the seen ones, renumbered in order.
        let dense: Vec<usize> = y.iter().map(|l| seen.partition_point(|s| s < l)).collect();
        let x_fit = features.select(Axis(0), fit);
        let model = logistic::fit(
            x_fit.view(),
            &dense,
            seen.len(),
            f64::from(params.c),
            params.max_iterations,
            logistic::TOLERANCE,
        )?;
        if !model.converged {
            tracing::debug!("the logistic regression stopped after {} iterations, before converging", model.iterations);
        }
        model.logits(x_held.view())
    };
    Ok(known
        .outer_iter()
        .map(|row| {
            let mut out = vec![f32::NEG_INFINITY; classes];
            for (&label, &v) in seen.iter().zip(row) {
                out[label] = v;
            }
            out
        })
        .collect())
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
        let params = LogisticParams::default();
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
        let params = LogisticParams::default();
        let x = Array2::zeros((3, 2));
        let e = out_of_sample_probabilities(&x, &[0, 1, 0], 2, 5, &params, 0).unwrap_err().to_string();
        assert!(e.contains("3 images are too few for 5 folds"), "{e}");
        let e = out_of_sample_probabilities(&x, &[0, 1, 0], 2, 1, &params, 0).unwrap_err().to_string();
        assert!(e.contains("at least 2"), "{e}");
        let bad = LogisticParams { c: 0.0, ..LogisticParams::default() };
        let e = out_of_sample_probabilities(&x, &[0, 1, 0], 2, 2, &bad, 0).unwrap_err().to_string();
        assert!(e.contains("C must be a positive number"), "{e}");
        let e = out_of_sample_probabilities(&x, &[0, 2, 0], 2, 2, &params, 0).unwrap_err().to_string();
        assert!(e.contains("label index 2 among 2"), "{e}");
    }

    #[test]
    fn a_label_missing_from_the_fitted_folds_is_the_least_likely() {
        // Label 2 has one image: the model that scores it never saw label 2.
        let x = Array2::from_shape_fn((9, 2), |(i, j)| if (i % 2 == 0) == (j == 0) { 1.0 } else { 0.0 });
        let labels = [0, 1, 0, 1, 0, 1, 0, 1, 2];
        let fold = [0, 0, 0, 0, 1, 1, 1, 1, 1];
        let logits = out_of_fold_logits(&x, &labels, 3, &fold, &LogisticParams::default()).unwrap();
        let row = &logits[8];
        assert_eq!(row.len(), 3);
        assert_eq!(row[2], f32::NEG_INFINITY, "{row:?}");
        // Images 0..4 are scored by a model fitted on labels 0, 1 and 2.
        assert!(logits[0][0] > logits[0][1], "{:?}", logits[0]);
        // One label alone in the fitted folds: nothing to fit, no error.
        let logits =
            out_of_fold_logits(&x, &[0, 0, 0, 0, 1, 1, 1, 1, 1], 2, &fold, &LogisticParams::default()).unwrap();
        assert_eq!(logits[0], vec![f32::NEG_INFINITY, 0.0]);
        assert_eq!(logits[8], vec![0.0, f32::NEG_INFINITY]);
        // The probabilities: 0 for the label never seen, the temperature
        // fitted on the other rows.
        let (probs, t) = out_of_sample_probabilities(&x, &labels, 3, 2, &LogisticParams::default(), 0).unwrap();
        assert!(t.is_finite() && t > 0.0, "{t}");
        assert!(probs.iter().all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-9), "{probs:?}");
    }
}
