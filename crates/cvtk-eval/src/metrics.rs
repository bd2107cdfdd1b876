//! [`ClassificationEvaluation`]: accuracy (class-averaged and overall), the
//! confusion matrix, per-class precision/recall/F1, and one-vs-rest PR and ROC
//! curves with average precision and AUC, per class and micro/macro averaged.
//! Definitions follow scikit-learn 1.7 exactly (and are cross-checked against
//! it in `make test`):
//!
//! - class-averaged accuracy = `balanced_accuracy_score`: the mean recall over
//!   the labels that have test images;
//! - curves = `precision_recall_curve` / `roc_curve(drop_intermediate=True)` of
//!   each label's score column against "is this label";
//! - average precision = `average_precision_score` (step integral, no
//!   interpolation); AUC = `roc_auc_score` (trapezoids);
//! - macro = mean over labels whose curve is defined; micro = all labels'
//!   one-vs-rest pairs pooled.
//!
//! A label's PR curve needs at least one test image of it, its ROC curve also
//! one image of another label; otherwise the curve is `None`.
//!
//! Curves rank the scores as given (logits, decision values or probabilities);
//! confidences, calibration error and the Brier score use the probabilities
//! the scores' [`ScoreKind`] converts them to:
//!
//! - expected calibration error (Guo et al., 2017): the top-label confidences
//!   sorted into 15 equal-width bins over (0, 1], and the image-weighted mean
//!   of `|accuracy - mean confidence|` over the bins;
//! - Brier score = scikit-learn's multi-class `brier_score_loss`: the mean over
//!   images of the squared distance between the probability row and the
//!   one-hot true label.

use serde::Serialize;

use cvtk_core::first_max as argmax;
use cvtk_core::ScoreKind;

use crate::{Error, Result};

/// A precision-recall curve, from high thresholds to low.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrCurve {
    /// Precision at each threshold, then 1.0 (recall 0).
    pub precision: Vec<f64>,
    /// Recall at each threshold, then 0.0.
    pub recall: Vec<f64>,
    /// Distinct score thresholds, increasing (scikit-learn's order).
    pub thresholds: Vec<f64>,
    /// Average precision (area under the step curve).
    pub average_precision: f64,
}

/// A ROC curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RocCurve {
    /// False positive rate, from 0.
    pub fpr: Vec<f64>,
    /// True positive rate, from 0.
    pub tpr: Vec<f64>,
    /// Thresholds, the first being +infinity (serialised as null).
    pub thresholds: Vec<f64>,
    /// Area under the curve.
    pub auc: f64,
}

/// Counts of (true label, predicted label) pairs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    /// Labels, in row and column order.
    pub labels: Vec<String>,
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Rows divided by their sums (a row with no images stays all zero).
    pub fn normalized(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let total: usize = row.iter().sum();
                row.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
            })
            .collect()
    }
}

/// One label's precision, recall, F1 and support.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The label.
    pub label: String,
    /// Of the images predicted as this label, the fraction that are (0 when none are predicted).
    pub precision: f64,
    /// Of the images of this label, the fraction predicted as it (0 when it has none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Test images of this label.
    pub support: usize,
}

/// One bin of a reliability diagram: images whose top-label confidence is in
/// `(lower, upper]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Images in the bin.
    pub images: usize,
    /// Fraction of them predicted correctly (None for an empty bin).
    pub accuracy: Option<f64>,
    /// Their mean top-label confidence (None for an empty bin).
    pub confidence: Option<f64>,
}

/// A reliability diagram and the calibration error it gives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reliability {
    /// Equal-width bins over (0, 1], from low confidence to high.
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: the image-weighted mean of
    /// `|accuracy - confidence|` over the bins.
    pub expected_calibration_error: f64,
}

/// Bins of the expected calibration error, as Guo et al. (2017) use.
pub const CALIBRATION_BINS: usize = 15;

/// Fpr/tpr/threshold points of one binary problem, as scikit-learn's `_binary_clf_curve`.
fn binary_clf_curve(y: &[bool], s: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    // Stable ascending sort, reversed: scikit-learn's argsort(mergesort)[::-1].
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
    order.reverse();
    let (mut fps, mut tps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let mut tp = 0.0;
    for (pos, &i) in order.iter().enumerate() {
        if y[i] {
            tp += 1.0;
        }
        let last = pos + 1 == order.len();
        if last || s[order[pos + 1]] != s[i] {
            tps.push(tp);
            fps.push((pos + 1) as f64 - tp);
            thr.push(s[i]);
        }
    }
    (fps, tps, thr)
}

/// scikit-learn's `precision_recall_curve` and `average_precision_score`.
pub fn pr_curve(y: &[bool], s: &[f64]) -> Option<PrCurve> {
    if s.is_empty() || !y.iter().any(|&t| t) {
        return None;
    }
    let (fps, tps, thr) = binary_clf_curve(y, s);
    let total_pos = *tps.last()?;
    let mut precision: Vec<f64> =
        tps.iter().zip(&fps).map(|(t, f)| if t + f > 0.0 { t / (t + f) } else { 0.0 }).collect();
    let mut recall: Vec<f64> = tps.iter().map(|t| t / total_pos).collect();
    let mut thresholds = thr;
    precision.reverse();
    recall.reverse();
    thresholds.reverse();
    precision.push(1.0);
    recall.push(0.0);
    let ap: f64 = -(0..recall.len() - 1).map(|i| (recall[i + 1] - recall[i]) * precision[i]).sum::<f64>();
    Some(PrCurve { precision, recall, thresholds, average_precision: ap.max(0.0) })
}

/// scikit-learn's `roc_curve(drop_intermediate=True)` and `roc_auc_score`.
pub fn roc_curve(y: &[bool], s: &[f64]) -> Option<RocCurve> {
    let pos = y.iter().filter(|&&t| t).count();
    if pos == 0 || pos == y.len() {
        return None;
    }
    let (mut fps, mut tps, mut thr) = binary_clf_curve(y, s);
    if fps.len() > 2 {
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&i| {
                i == 0
                    || i == fps.len() - 1
                    || (fps[i + 1] - 2.0 * fps[i] + fps[i - 1]) != 0.0
                    || (tps[i + 1] - 2.0 * tps[i] + tps[i - 1]) != 0.0
            })
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thr = keep.iter().map(|&i| thr[i]).collect();
    }
    fps.insert(0, 0.0);
    tps.insert(0, 0.0);
    thr.insert(0, f64::INFINITY);
    let (fmax, tmax) = (*fps.last()?, *tps.last()?);
    let fpr: Vec<f64> = fps.iter().map(|f| f / fmax).collect();
    let tpr: Vec<f64> = tps.iter().map(|t| t / tmax).collect();
    let auc = (1..fpr.len()).map(|i| (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2.0).sum();
    Some(RocCurve { fpr, tpr, thresholds: thr, auc })
}

/// Evaluation of a classifier's scores on labelled images. Counterpart of the
/// original package's `ClassificationEvaluation`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationEvaluation {
    labels: Vec<String>,
    y_true: Vec<usize>,
    scores: Vec<Vec<f64>>,
    kind: ScoreKind,
    probabilities: Vec<Vec<f64>>,
    y_pred: Vec<usize>,
    trained_on: Option<usize>,
}

impl ClassificationEvaluation {
    /// Checks and stores `scores` (`[images][labels]`, higher means more
    /// likely) of kind `kind` against true label indices. Scores said to be
    /// probabilities must be: each row in `[0, 1]`, summing to 1.
    pub fn new(labels: Vec<String>, y_true: Vec<usize>, scores: Vec<Vec<f32>>, kind: ScoreKind) -> Result<Self> {
        let k = labels.len();
        if k == 0 {
            return Err(Error::Invalid("no labels".into()));
        }
        if y_true.len() != scores.len() {
            return Err(Error::Invalid(format!(
                "{} true labels but {} rows of scores; they must be the same images",
                y_true.len(),
                scores.len()
            )));
        }
        if y_true.is_empty() {
            return Err(Error::Invalid("no images to evaluate".into()));
        }
        for (i, row) in scores.iter().enumerate() {
            if row.len() != k {
                return Err(Error::Invalid(format!("score row {i} has {} values but there are {k} labels", row.len())));
            }
            kind.check_row(row).map_err(|why| Error::Invalid(format!("score row {i} {why}")))?;
        }
        if let Some((i, &t)) = y_true.iter().enumerate().find(|(_, &t)| t >= k) {
            return Err(Error::Invalid(format!("image {i} has label index {t}, but there are {k} labels")));
        }
        let y_pred = scores.iter().map(|r| argmax(r)).collect();
        let probabilities = scores.iter().map(|r| kind.probabilities_f64(r)).collect();
        let scores = scores.into_iter().map(|r| r.into_iter().map(f64::from).collect()).collect();
        Ok(ClassificationEvaluation { labels, y_true, scores, kind, probabilities, y_pred, trained_on: None })
    }

    /// Says how many of the evaluated images the classifier was trained on
    /// (what `cvtk_model::TrainingImages::find_in` finds). More than none
    /// makes the accuracy an accuracy on training images, not a test
    /// accuracy; the summary and the report say so.
    pub fn set_trained_on(&mut self, images: usize) {
        self.trained_on = Some(images);
    }

    /// How many of the evaluated images the classifier was trained on, when
    /// known ([`Self::set_trained_on`]).
    pub fn trained_on(&self) -> Option<usize> {
        self.trained_on
    }

    /// Labels, in score-column order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// True label index of each image.
    pub fn y_true(&self) -> &[usize] {
        &self.y_true
    }

    /// Predicted label index of each image (the first highest score).
    pub fn y_pred(&self) -> &[usize] {
        &self.y_pred
    }

    /// Score of each image for each label.
    pub fn scores(&self) -> &[Vec<f64>] {
        &self.scores
    }

    /// What the scores are.
    pub fn score_kind(&self) -> ScoreKind {
        self.kind
    }

    /// Each image's probabilities, converted once from the scores through
    /// their [`ScoreKind`] (calibration temperature included): the confidences
    /// the report shows and its threshold explorer filters on, the same
    /// numbers `cvtk predict` prints.
    pub fn probabilities(&self) -> &[Vec<f64>] {
        &self.probabilities
    }

    /// The same scores with their calibration temperature set to 1 (the plain
    /// softmax), to show what calibration changed; `None` when the scores are
    /// probabilities or were not calibrated.
    pub fn uncalibrated(&self) -> Option<ClassificationEvaluation> {
        let kind = match self.kind {
            ScoreKind::Logits { temperature } if temperature != 1.0 => ScoreKind::LOGITS,
            ScoreKind::Decision { temperature } if temperature != 1.0 => ScoreKind::Decision { temperature: 1.0 },
            _ => return None,
        };
        let probabilities = self
            .scores
            .iter()
            .map(|r| kind.probabilities_f64(&r.iter().map(|&v| v as f32).collect::<Vec<_>>()))
            .collect();
        Some(ClassificationEvaluation { kind, probabilities, ..self.clone() })
    }

    /// Each image's loss: the negative log of its true label's probability
    /// (cross-entropy, natural log; a probability of 0 counts as 1e-12).
    pub fn losses(&self) -> Vec<f64> {
        self.probabilities
            .iter()
            .zip(&self.y_true)
            .map(|(p, &t)| -p.get(t).copied().unwrap_or(0.0).max(1e-12).ln())
            .collect()
    }

    /// The `n` images with the highest loss ([`Self::losses`]), highest
    /// first (fastai's `plot_top_losses`); ties keep row order.
    pub fn top_losses(&self, n: usize) -> Vec<usize> {
        let losses = self.losses();
        let mut order: Vec<usize> = (0..losses.len()).collect();
        order.sort_by(|&a, &b| losses[b].total_cmp(&losses[a]));
        order.truncate(n);
        order
    }

    /// The pairs of labels the classifier mixes up, most often first: `(true
    /// label, predicted label, images)` for every off-diagonal cell of the
    /// confusion matrix that is not empty (fastai's `most_confused`); ties by
    /// label order.
    pub fn most_confused(&self) -> Vec<(usize, usize, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for (&t, &p) in self.y_true.iter().zip(&self.y_pred) {
            if t != p {
                *counts.entry((t, p)).or_insert(0usize) += 1;
            }
        }
        let mut pairs: Vec<(usize, usize, usize)> = counts.into_iter().map(|((t, p), n)| (t, p, n)).collect();
        pairs.sort_by_key(|p| std::cmp::Reverse(p.2));
        pairs
    }

    /// [`Self::probabilities`] as f32.
    pub fn confidences(&self) -> Vec<Vec<f32>> {
        self.probabilities.iter().map(|row| row.iter().map(|&p| p as f32).collect()).collect()
    }

    /// The reliability diagram over `bins` equal-width confidence bins and the
    /// expected calibration error it gives (top-label: each image counts with
    /// the probability of its predicted label).
    pub fn reliability(&self, bins: usize) -> Reliability {
        let bins = bins.max(1);
        let width = 1.0 / bins as f64;
        // numpy's linspace(0, 1, bins + 1): i * step, the last edge exactly 1.
        let edge = |i: usize| if i == bins { 1.0 } else { i as f64 * width };
        let mut count = vec![0usize; bins];
        let mut right = vec![0usize; bins];
        let mut conf_sum = vec![0f64; bins];
        for ((probs, &t), &p) in self.probabilities.iter().zip(&self.y_true).zip(&self.y_pred) {
            let conf = probs[p];
            if let Some(b) = (0..bins).find(|&b| conf > edge(b) && conf <= edge(b + 1)) {
                count[b] += 1;
                right[b] += usize::from(t == p);
                conf_sum[b] += conf;
            }
        }
        let n = self.y_true.len() as f64;
        let mut ece = 0.0;
        let bins = (0..bins)
            .map(|b| {
                let (accuracy, confidence) = if count[b] == 0 {
                    (None, None)
                } else {
                    let c = count[b] as f64;
                    (Some(right[b] as f64 / c), Some(conf_sum[b] / c))
                };
                if let (Some(a), Some(c)) = (accuracy, confidence) {
                    ece += count[b] as f64 / n * (a - c).abs();
                }
                ReliabilityBin { lower: edge(b), upper: edge(b + 1), images: count[b], accuracy, confidence }
            })
            .collect();
        Reliability { bins, expected_calibration_error: ece }
    }

    /// The expected calibration error over [`CALIBRATION_BINS`] bins: 0 when
    /// confidences match accuracy, up to 1.
    pub fn expected_calibration_error(&self) -> f64 {
        self.reliability(CALIBRATION_BINS).expected_calibration_error
    }

    /// The multi-class Brier score: the mean over images of the squared
    /// distance between the probabilities and the one-hot true label (0 is
    /// perfect, 2 the worst).
    pub fn brier_score(&self) -> f64 {
        let total: f64 = self
            .probabilities
            .iter()
            .zip(&self.y_true)
            .map(|(row, &t)| {
                row.iter().enumerate().map(|(c, &p)| (p - f64::from(u8::from(c == t))).powi(2)).sum::<f64>()
            })
            .sum();
        total / self.y_true.len() as f64
    }

    /// Fraction of images predicted correctly.
    pub fn accuracy(&self) -> f64 {
        let right = self.y_true.iter().zip(&self.y_pred).filter(|(t, p)| t == p).count();
        right as f64 / self.y_true.len() as f64
    }

    /// The mean of per-label recalls over labels with test images: the
    /// original's default accuracy, scikit-learn's `balanced_accuracy_score`.
    pub fn class_averaged_accuracy(&self) -> f64 {
        let recalls: Vec<f64> = self.per_class().iter().filter(|c| c.support > 0).map(|c| c.recall).collect();
        recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
    }

    /// The confusion matrix.
    pub fn confusion_matrix(&self) -> ConfusionMatrix {
        let k = self.labels.len();
        let mut counts = vec![vec![0; k]; k];
        for (&t, &p) in self.y_true.iter().zip(&self.y_pred) {
            counts[t][p] += 1;
        }
        ConfusionMatrix { labels: self.labels.clone(), counts }
    }

    /// Precision, recall, F1 and support of each label.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        let cm = self.confusion_matrix();
        (0..self.labels.len())
            .map(|c| {
                let tp = cm.counts[c][c] as f64;
                let support: usize = cm.counts[c].iter().sum();
                let predicted: usize = cm.counts.iter().map(|r| r[c]).sum();
                let precision = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
                let recall = if support == 0 { 0.0 } else { tp / support as f64 };
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                ClassMetrics { label: self.labels[c].clone(), precision, recall, f1, support }
            })
            .collect()
    }

    fn column(&self, c: usize) -> (Vec<bool>, Vec<f64>) {
        (self.y_true.iter().map(|&t| t == c).collect(), self.scores.iter().map(|r| r[c]).collect())
    }

    fn pooled(&self) -> (Vec<bool>, Vec<f64>) {
        let k = self.labels.len();
        let y = self.y_true.iter().flat_map(|&t| (0..k).map(move |c| c == t)).collect();
        let s = self.scores.iter().flatten().copied().collect();
        (y, s)
    }

    /// Label `c`'s PR curve (None without test images of it).
    pub fn pr_curve(&self, c: usize) -> Option<PrCurve> {
        let (y, s) = self.column(c);
        pr_curve(&y, &s)
    }

    /// Label `c`'s ROC curve (None unless it has images of it and of others).
    pub fn roc_curve(&self, c: usize) -> Option<RocCurve> {
        let (y, s) = self.column(c);
        roc_curve(&y, &s)
    }

    /// The micro-averaged PR curve (all one-vs-rest pairs pooled).
    pub fn micro_pr_curve(&self) -> Option<PrCurve> {
        let (y, s) = self.pooled();
        pr_curve(&y, &s)
    }

    /// The micro-averaged ROC curve.
    pub fn micro_roc_curve(&self) -> Option<RocCurve> {
        let (y, s) = self.pooled();
        roc_curve(&y, &s)
    }

    /// Mean average precision over labels whose PR curve is defined.
    pub fn macro_average_precision(&self) -> Option<f64> {
        mean((0..self.labels.len()).filter_map(|c| self.pr_curve(c).map(|p| p.average_precision)))
    }

    /// Mean AUC over labels whose ROC curve is defined.
    pub fn macro_auc(&self) -> Option<f64> {
        mean((0..self.labels.len()).filter_map(|c| self.roc_curve(c).map(|r| r.auc)))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(labels: &[&str], y: &[usize], s: &[&[f32]]) -> Result<ClassificationEvaluation> {
        eval_of(labels, y, s, ScoreKind::LOGITS)
    }

    fn eval_of(labels: &[&str], y: &[usize], s: &[&[f32]], kind: ScoreKind) -> Result<ClassificationEvaluation> {
        ClassificationEvaluation::new(
            labels.iter().map(|l| l.to_string()).collect(),
            y.to_vec(),
            s.iter().map(|r| r.to_vec()).collect(),
            kind,
        )
    }

    /// Checked by hand: 4 images with top-label confidences 0.95 (right),
    /// 0.92 (wrong), 0.55 (right) and 0.38 (wrong: [0.3, 0.32, 0.38] predicts
    /// label 2 for an image of label 0).
    #[test]
    fn calibration_error_and_brier_score_by_hand() {
        let e = eval_of(
            &["a", "b", "c"],
            &[0, 1, 0, 0],
            &[&[0.95, 0.05, 0.0], &[0.92, 0.08, 0.0], &[0.55, 0.45, 0.0], &[0.3, 0.32, 0.38]],
            ScoreKind::Probabilities,
        )
        .unwrap();
        assert_eq!(e.y_pred(), &[0, 0, 0, 2]);
        let r = e.reliability(15);
        // Bins (i/15, (i+1)/15]: 0.95 in 14, 0.92 in 13, 0.55 in 8, 0.38 in 5.
        let used: Vec<(usize, usize, f64)> = r
            .bins
            .iter()
            .enumerate()
            .filter(|(_, b)| b.images > 0)
            .map(|(i, b)| (i, b.images, b.accuracy.unwrap()))
            .collect();
        assert_eq!(used, vec![(5, 1, 0.0), (8, 1, 1.0), (13, 1, 0.0), (14, 1, 1.0)]);
        // ECE = (|1 - 0.95| + |0 - 0.92| + |1 - 0.55| + |0 - 0.38|) / 4 = 1.8 / 4.
        assert!((r.expected_calibration_error - 0.45).abs() < 1e-6, "{}", r.expected_calibration_error);
        assert_eq!(e.expected_calibration_error(), r.expected_calibration_error);
        // Brier: 0.005 + (0.8464 + 0.8464) + (0.2025 + 0.2025) + (0.49 + 0.1024 + 0.1444), over 4.
        assert!((e.brier_score() - 2.8396 / 4.0).abs() < 1e-6, "{}", e.brier_score());
    }

    /// The same 4 images: losses are -ln p(true), highest first; the one
    /// mix-up pair each way is counted.
    #[test]
    fn top_losses_and_most_confused_by_hand() {
        let e = eval_of(
            &["a", "b", "c"],
            &[0, 1, 0, 0],
            &[&[0.95, 0.05, 0.0], &[0.92, 0.08, 0.0], &[0.55, 0.45, 0.0], &[0.3, 0.32, 0.38]],
            ScoreKind::Probabilities,
        )
        .unwrap();
        let l = e.losses();
        assert!((l[1] + 0.08f64.ln()).abs() < 1e-6 && (l[3] + 0.3f64.ln()).abs() < 1e-6, "{l:?}");
        assert_eq!(e.top_losses(3), vec![1, 3, 2]);
        assert_eq!(e.most_confused(), vec![(0, 2, 1), (1, 0, 1)]);
    }

    #[test]
    fn confidences_convert_raw_scores_once_through_their_kind() {
        let logits: &[&[f32]] = &[&[2.0, 0.0], &[0.0, 1.0]];
        let plain = eval_of(&["a", "b"], &[0, 1], logits, ScoreKind::LOGITS).unwrap();
        let hot = eval_of(&["a", "b"], &[0, 1], logits, ScoreKind::Logits { temperature: 0.5 }).unwrap();
        let p = plain.confidences();
        assert!((p[0][0] - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!(hot.confidences()[0][0] > p[0][0], "a temperature below 1 sharpens");
        // Probabilities are taken as they are; curves rank what was given.
        let probs = eval_of(&["a", "b"], &[0, 1], &[&p[0], &p[1]], ScoreKind::Probabilities).unwrap();
        assert_eq!(probs.confidences(), p);
        assert_eq!(probs.y_pred(), plain.y_pred());
    }

    #[test]
    fn scores_that_are_not_probabilities_cannot_pass_as_them() {
        let e = eval_of(&["a", "b"], &[0], &[&[2.0, -1.0]], ScoreKind::Probabilities).unwrap_err();
        assert!(e.to_string().contains("not a probability"), "{e}");
    }

    #[test]
    fn ties_predict_the_first_label_like_numpy_argmax() {
        let e = eval(&["a", "b"], &[1, 1], &[&[0.5, 0.5], &[0.1, 0.9]]).unwrap();
        assert_eq!(e.y_pred(), &[0, 1]);
    }

    #[test]
    fn a_label_without_test_images_is_left_out_of_the_class_average() {
        // "c" has no test images: recall undefined, PR/ROC None, not averaged.
        let e = eval(
            &["a", "b", "c"],
            &[0, 0, 1, 1],
            &[&[0.9, 0.1, 0.0], &[0.2, 0.8, 0.0], &[0.1, 0.9, 0.0], &[0.3, 0.6, 0.1]],
        )
        .unwrap();
        assert_eq!(e.accuracy(), 0.75);
        assert_eq!(e.class_averaged_accuracy(), (0.5 + 1.0) / 2.0);
        assert!(e.pr_curve(2).is_none() && e.roc_curve(2).is_none());
        assert_eq!(e.per_class()[2].support, 0);
        assert_eq!(e.confusion_matrix().normalized()[2], vec![0.0; 3]);
    }

    #[test]
    fn a_single_label_has_accuracy_and_pr_but_no_roc() {
        let e = eval(&["only"], &[0, 0, 0], &[&[1.0], &[2.0], &[0.5]]).unwrap();
        assert_eq!(e.accuracy(), 1.0);
        assert_eq!(e.class_averaged_accuracy(), 1.0);
        assert!(e.roc_curve(0).is_none() && e.macro_auc().is_none());
        assert_eq!(e.pr_curve(0).unwrap().average_precision, 1.0);
    }

    #[test]
    fn all_equal_scores_give_chance_auc_and_one_threshold() {
        let e = eval(&["a", "b"], &[0, 1, 0, 1], &[&[0.5f32, 0.5][..]; 4]).unwrap();
        let roc = e.roc_curve(0).unwrap();
        assert_eq!(roc.auc, 0.5);
        assert_eq!(e.pr_curve(1).unwrap().thresholds, vec![0.5]);
        assert_eq!(e.accuracy(), 0.5, "ties go to the first label");
    }

    #[test]
    fn rejects_nan_infinite_and_mismatched_inputs() {
        assert!(eval(&["a", "b"], &[0], &[&[f32::NAN, 0.0]]).unwrap_err().to_string().contains("NaN"));
        assert!(eval(&["a", "b"], &[0], &[&[f32::INFINITY, 0.0]]).unwrap_err().to_string().contains("inf"));
        assert!(eval(&["a", "b"], &[0, 1], &[&[1.0, 0.0]])
            .unwrap_err()
            .to_string()
            .contains("2 true labels but 1 rows"));
        assert!(eval(&["a", "b"], &[0], &[&[1.0]])
            .unwrap_err()
            .to_string()
            .contains("has 1 values but there are 2 labels"));
        assert!(eval(&["a", "b"], &[5], &[&[1.0, 0.0]]).unwrap_err().to_string().contains("label index 5"));
        assert!(eval(&["a"], &[], &[]).unwrap_err().to_string().contains("no images"));
    }
}
