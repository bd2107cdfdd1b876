//! [`EvaluationSummary`]: every metric in one serialisable value, the schema of
//! `cvtk evaluate --json`:
//!
//! ```text
//! {
//!   "images": 22, "labels": ["bowl", ...],
//!   "accuracy": 0.91,                     // overall
//!   "class_averaged_accuracy": 0.90,      // mean recall over labels with test images
//!   "macro_auc": 0.98 | null, "micro_auc": 0.98 | null,
//!   "macro_average_precision": 0.95 | null, "micro_average_precision": 0.95 | null,
//!   "confusion_matrix": { "labels": [...], "counts": [[...]], "normalized": [[...]] },   // [true][predicted]
//!   "per_class": [{ "label", "precision", "recall", "f1", "support", "average_precision": x | null, "auc": x | null }],
//!   "curves": [{ "label", "roc": { "fpr", "tpr", "thresholds", "auc" } | null,
//!                "pr": { "precision", "recall", "thresholds", "average_precision" } | null }],
//!   "score_kind": { "kind": "logits" | "decision" | "probabilities", "temperature": 1.0 },
//!   "expected_calibration_error": 0.03,  // 15 bins, top label
//!   "brier_score": 0.12,
//!   "reliability": { "bins": [{ "lower", "upper", "images", "accuracy" | null, "confidence" | null }],
//!                    "expected_calibration_error" },
//!   "uncalibrated": { "expected_calibration_error", "brier_score" } | null,  // at temperature 1, for calibrated models
//!   "trained_on_evaluated_images": 0 | null   // how many were training images: > 0 is not a test accuracy; null: not known
//! }
//! ```
//! ROC thresholds start with +infinity, written as `null`. Curve thresholds are
//! in the units of `score_kind` (logits, decision values or probabilities);
//! calibration is measured on the probabilities that kind converts to.

use serde::Serialize;

use cvtk_core::ScoreKind;

use crate::metrics::{ClassificationEvaluation, PrCurve, Reliability, RocCurve, CALIBRATION_BINS};

/// A label's metrics with its AP and AUC.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    /// The label.
    pub label: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Test images of the label.
    pub support: usize,
    /// Average precision, if defined.
    pub average_precision: Option<f64>,
    /// ROC AUC, if defined.
    pub auc: Option<f64>,
}

/// The confusion matrix, counts and row-normalised.
#[derive(Clone, Debug, Serialize)]
pub struct ConfusionSummary {
    /// Labels in row/column order.
    pub labels: Vec<String>,
    /// `[true][predicted]` counts.
    pub counts: Vec<Vec<usize>>,
    /// Rows divided by their sums.
    pub normalized: Vec<Vec<f64>>,
}

/// One label's curves.
#[derive(Clone, Debug, Serialize)]
pub struct LabelCurves {
    /// The label.
    pub label: String,
    /// ROC curve, if defined.
    pub roc: Option<RocCurve>,
    /// PR curve, if defined.
    pub pr: Option<PrCurve>,
}

/// Every metric of an evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct EvaluationSummary {
    /// Number of test images.
    pub images: usize,
    /// Labels.
    pub labels: Vec<String>,
    /// Overall accuracy.
    pub accuracy: f64,
    /// Mean recall over labels with test images.
    pub class_averaged_accuracy: f64,
    /// Mean AUC over labels where it is defined.
    pub macro_auc: Option<f64>,
    /// AUC of the pooled one-vs-rest problem.
    pub micro_auc: Option<f64>,
    /// Mean AP over labels where it is defined.
    pub macro_average_precision: Option<f64>,
    /// AP of the pooled one-vs-rest problem.
    pub micro_average_precision: Option<f64>,
    /// The confusion matrix.
    pub confusion_matrix: ConfusionSummary,
    /// Per-label metrics.
    pub per_class: Vec<ClassSummary>,
    /// Per-label curves.
    pub curves: Vec<LabelCurves>,
    /// What the scores were, and how they became probabilities.
    pub score_kind: ScoreKind,
    /// Expected calibration error of the probabilities (15 bins, top label).
    pub expected_calibration_error: f64,
    /// Multi-class Brier score of the probabilities.
    pub brier_score: f64,
    /// The reliability diagram's bins.
    pub reliability: Reliability,
    /// For calibrated scores: the calibration error and Brier score the same
    /// scores have at temperature 1, i.e. without calibration.
    pub uncalibrated: Option<CalibrationFigures>,
    /// How many of the evaluated images the classifier was trained on, when
    /// known ([`ClassificationEvaluation::trained_on`]): more than 0 means
    /// the accuracy is not a test accuracy.
    pub trained_on_evaluated_images: Option<usize>,
}

/// How well probabilities are calibrated.
#[derive(Clone, Debug, Serialize)]
pub struct CalibrationFigures {
    /// Expected calibration error (15 bins, top label).
    pub expected_calibration_error: f64,
    /// Multi-class Brier score.
    pub brier_score: f64,
}

impl EvaluationSummary {
    /// Computes every metric of `e`.
    pub fn new(e: &ClassificationEvaluation) -> Self {
        let cm = e.confusion_matrix();
        let curves: Vec<LabelCurves> = (0..e.labels().len())
            .map(|c| LabelCurves { label: e.labels()[c].clone(), roc: e.roc_curve(c), pr: e.pr_curve(c) })
            .collect();
        let per_class = e
            .per_class()
            .into_iter()
            .zip(&curves)
            .map(|(m, c)| ClassSummary {
                label: m.label,
                precision: m.precision,
                recall: m.recall,
                f1: m.f1,
                support: m.support,
                average_precision: c.pr.as_ref().map(|p| p.average_precision),
                auc: c.roc.as_ref().map(|r| r.auc),
            })
            .collect();
        EvaluationSummary {
            images: e.y_true().len(),
            labels: e.labels().to_vec(),
            accuracy: e.accuracy(),
            class_averaged_accuracy: e.class_averaged_accuracy(),
            macro_auc: e.macro_auc(),
            micro_auc: e.micro_roc_curve().map(|r| r.auc),
            macro_average_precision: e.macro_average_precision(),
            micro_average_precision: e.micro_pr_curve().map(|p| p.average_precision),
            confusion_matrix: ConfusionSummary { normalized: cm.normalized(), labels: cm.labels, counts: cm.counts },
            per_class,
            curves,
            score_kind: e.score_kind(),
            expected_calibration_error: e.expected_calibration_error(),
            brier_score: e.brier_score(),
            reliability: e.reliability(CALIBRATION_BINS),
            uncalibrated: e.uncalibrated().map(|u| CalibrationFigures {
                expected_calibration_error: u.expected_calibration_error(),
                brier_score: u.brier_score(),
            }),
            trained_on_evaluated_images: e.trained_on(),
        }
    }

    /// The confusion matrix as the original notebook printed it: a text table
    /// of counts, true labels down, predicted labels across.
    pub fn confusion_table(&self) -> String {
        let w = self.labels.iter().map(|l| l.chars().count()).max().unwrap_or(4).clamp(4, 16);
        let cell =
            self.confusion_matrix.counts.iter().flatten().map(|c| c.to_string().len()).max().unwrap_or(1).max(w.min(8));
        let mut s = format!("{:>w$} | predicted\n", "true");
        s.push_str(&format!("{:>w$} |", ""));
        for l in &self.labels {
            s.push_str(&format!(" {:>cell$}", truncate(l, cell)));
        }
        s.push('\n');
        for (l, row) in self.labels.iter().zip(&self.confusion_matrix.counts) {
            s.push_str(&format!("{:>w$} |", truncate(l, w)));
            for c in row {
                s.push_str(&format!(" {c:>cell$}"));
            }
            s.push('\n');
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(std::iter::once('~')).collect()
    }
}
