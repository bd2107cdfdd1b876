//! Evaluation for cvtk: the counterpart of the original package's
//! `ClassificationEvaluation`, `graph_roc_curve`, `graph_pr_curve`,
//! `graph_confusion_matrix`, and its results viewer and precision/recall widgets.
//!
//! - [`ClassificationEvaluation`]: accuracy (class-averaged, as the original, and
//!   overall), confusion matrix, per-label precision/recall/F1, PR and ROC curves
//!   with AP and AUC, per label and micro/macro averaged; definitions match
//!   scikit-learn's and are cross-checked against it. Calibration: the
//!   expected calibration error, the Brier score and a reliability diagram,
//!   on the probabilities the scores' [`cvtk_core::ScoreKind`] gives.
//! - [`plots`]: the curves, the confusion matrix and training curves as PNG or SVG.
//! - [`write_report`]: one self-contained HTML page with all of it and a results viewer.
//! - [`EvaluationSummary`]: every metric as one JSON-serialisable value.
//!
//! ```
//! use cvtk_eval::ClassificationEvaluation;
//! use cvtk_core::ScoreKind;
//! let labels = vec!["cat".to_string(), "dog".to_string()];
//! let scores = vec![vec![2.0, 1.0], vec![0.1, 0.3], vec![0.0, 1.0]];
//! let e = ClassificationEvaluation::new(labels, vec![0, 0, 1], scores, ScoreKind::LOGITS)?;
//! assert_eq!(e.accuracy(), 2.0 / 3.0);
//! assert_eq!(e.class_averaged_accuracy(), 0.75); // (1/2 + 1) / 2
//! assert_eq!(e.confusion_matrix().counts, vec![vec![1, 1], vec![0, 1]]);
//! # Ok::<(), cvtk_eval::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
mod metrics;
pub mod plots;
mod report;
mod summary;

pub use error::{Error, Result};
pub use metrics::{
    pr_curve, roc_curve, ClassMetrics, ClassificationEvaluation, ConfusionMatrix, PrCurve, Reliability, ReliabilityBin,
    RocCurve, CALIBRATION_BINS,
};
pub use report::{preview_rows, write_report, ReportFiles, ReportImage, ReportOptions, TOP_LOSSES};
pub use summary::{CalibrationFigures, ClassSummary, ConfusionSummary, EvaluationSummary, LabelCurves};

impl ClassificationEvaluation {
    /// An evaluation of a classifier's [`cvtk_core::Scores`] on a dataset,
    /// of whatever kind they are (raw scores keep their ranking for the curves
    /// and are converted to probabilities once, through their kind).
    pub fn from_scores(scores: &cvtk_core::Scores) -> Result<Self> {
        ClassificationEvaluation::new(
            scores.labels.clone(),
            scores.true_labels.clone(),
            scores.values.clone(),
            scores.kind,
        )
    }
}
