//! Evaluation for cvtk: the counterpart of the original package's
//! `ClassificationEvaluation`, `graph_roc_curve`, `graph_pr_curve` and
//! `graph_confusion_matrix`.
//!
//! This crate owns metrics (class-averaged accuracy, confusion matrix, PR and ROC
//! curves, AUC), their plots and the self-contained HTML report. It is being built
//! (see the evaluation issue); today it only fixes its place in the workspace.
