//! The HTML report: one self-contained file (no network fetches) with the
//! summary metrics, the plots (inline SVG), a results viewer (a thumbnail per
//! test image with true label, predicted label and confidence; filter to the
//! misclassified ones; sort by confidence), a precision/recall threshold
//! explorer (a slider showing precision, recall and the images kept at each
//! threshold, starting at the threshold with the best F1), and the
//! calibration of the confidences (ECE, Brier score, reliability diagram). Counterpart of the original's results viewer and
//! precision/recall widgets. Also writes every plot as PNG and SVG beside it.

use std::path::{Path, PathBuf};

use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::metrics::ClassificationEvaluation;
use crate::plots::{
    graph_confusion_matrix, graph_pr_curve, graph_reliability_diagram, graph_roc_curve, graph_training_curves, Target,
};
use crate::summary::EvaluationSummary;
use crate::{Error, Result};

/// One test image shown in the results viewer.
#[derive(Clone, Debug)]
pub struct ReportImage {
    /// Image id (from the dataset).
    pub id: u64,
    /// File to make the thumbnail from.
    pub path: PathBuf,
    /// A JPEG thumbnail of why the model predicted what it did (`cvtk
    /// explain`'s overlay for the predicted label), shown in the top-losses
    /// gallery and on the result card on demand; None when there is none.
    pub overlay: Option<Vec<u8>>,
}

/// Images in the report's top-losses gallery.
pub const TOP_LOSSES: usize = 24;

/// The rows (of `e`) that get a preview in the report: the
/// [`TOP_LOSSES`] images with the highest loss, then the misclassified
/// images, then the rest, each by loss, highest first; at most
/// `max_thumbnails` (0: 2000) besides the top losses. A caller that makes
/// overlays ([`ReportImage::overlay`]) makes them for these rows only.
pub fn preview_rows(e: &ClassificationEvaluation, max_thumbnails: usize) -> Vec<usize> {
    let limit = if max_thumbnails == 0 { 2000 } else { max_thumbnails };
    let losses = e.losses();
    let mut order: Vec<usize> = (0..losses.len()).collect();
    order.sort_by(|&a, &b| {
        let right = |i: usize| e.y_true()[i] == e.y_pred()[i];
        right(a).cmp(&right(b)).then(losses[b].total_cmp(&losses[a]))
    });
    order.truncate(limit);
    let mut rows = e.top_losses(TOP_LOSSES);
    for i in order {
        if !rows.contains(&i) {
            rows.push(i);
        }
    }
    rows
}

/// What goes into a report besides the evaluation.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Title at the top of the page.
    pub title: String,
    /// A line describing the model (architecture, weights, ...).
    pub model: String,
    /// The test images, in the evaluation's row order (for thumbnails).
    pub images: Vec<ReportImage>,
    /// Train and test accuracy per epoch, for the training-curves plot.
    pub history: Option<(Vec<f64>, Vec<f64>)>,
    /// At most this many thumbnails (misclassified first). By default 0 means 2000.
    pub max_thumbnails: usize,
}

/// Files written by [`write_report`].
#[derive(Clone, Debug, Serialize)]
pub struct ReportFiles {
    /// The HTML page.
    pub html: PathBuf,
    /// Plot files (PNG and SVG).
    pub plots: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    id: u64,
    name: String,
    truth: usize,
    pred: usize,
    probs: Vec<f32>,
    loss: f32,
    thumb: Option<String>,
    overlay: Option<String>,
}

fn jpeg_url(jpeg: &[u8]) -> String {
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg))
}

fn thumbnail(path: &Path) -> Option<String> {
    Some(jpeg_url(&cvtk_dataset::decode::thumbnail_jpeg(path, 112, 82)?))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes `report.html` and the plots (`confusion_matrix`, `roc_curves`,
/// `pr_curves`, `reliability_diagram`, `training_curves`, each `.png` and
/// `.svg`) into `dir`. The confidences shown are the evaluation's
/// probabilities ([`ClassificationEvaluation::probabilities`]).
pub fn write_report(dir: &Path, e: &ClassificationEvaluation, options: &ReportOptions) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).map_err(|err| Error::io("cannot create folder", dir.to_path_buf(), err))?;
    if !options.images.is_empty() && options.images.len() != e.y_true().len() {
        return Err(Error::Invalid(format!(
            "{} report images for {} evaluated rows",
            options.images.len(),
            e.y_true().len()
        )));
    }
    let mut plots = Vec::new();
    let mut svgs: Vec<(&str, String)> = Vec::new();
    type PlotFn<'a> = Box<dyn Fn(Target<'_>) -> Result<()> + 'a>;
    let mut jobs: Vec<(&str, &str, PlotFn<'_>)> = vec![
        ("confusion_matrix", "Confusion matrix", Box::new(|t| graph_confusion_matrix(e, t))),
        ("roc_curves", "ROC curves", Box::new(|t| graph_roc_curve(e, t))),
        ("pr_curves", "Precision-recall curves", Box::new(|t| graph_pr_curve(e, t))),
        ("reliability_diagram", "Reliability diagram", Box::new(|t| graph_reliability_diagram(e, t))),
    ];
    if let Some((train, test)) = &options.history {
        if !train.is_empty() {
            jobs.push(("training_curves", "Training curves", Box::new(move |t| graph_training_curves(train, test, t))));
        }
    }
    for (name, title, f) in &jobs {
        for ext in ["png", "svg"] {
            let p = dir.join(format!("{name}.{ext}"));
            f(Target::File(&p))?;
            plots.push(p);
        }
        let mut s = String::new();
        f(Target::SvgString(&mut s))?;
        svgs.push((title, s));
    }

    // Thumbnails: top losses, misclassified, the rest, up to the limit.
    let with_thumb: std::collections::HashSet<usize> = preview_rows(e, options.max_thumbnails).into_iter().collect();
    let confidences = e.confidences();
    let losses = e.losses();
    let rows: Vec<Row> = (0..e.y_true().len())
        .into_par_iter()
        .map(|i| {
            let img = options.images.get(i);
            Row {
                id: img.map_or(i as u64, |m| m.id),
                name: img
                    .and_then(|m| m.path.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("#{i}")),
                truth: e.y_true()[i],
                pred: e.y_pred()[i],
                probs: confidences[i].clone(),
                loss: losses[i] as f32,
                thumb: if with_thumb.contains(&i) { img.and_then(|m| thumbnail(&m.path)) } else { None },
                overlay: if with_thumb.contains(&i) {
                    img.and_then(|m| m.overlay.as_deref()).map(jpeg_url)
                } else {
                    None
                },
            }
        })
        .collect();
    let summary = EvaluationSummary::new(e);
    let data = serde_json::json!({
        "labels": e.labels(),
        "rows": rows,
        "thumbnails_limited": e.y_true().len() > with_thumb.len(),
        "top_losses": e.top_losses(TOP_LOSSES),
        "confused": e.most_confused(),
    });
    let data_json = serde_json::to_string(&data).map_err(|err| Error::Invalid(err.to_string()))?.replace("</", "<\\/");

    let mut per_class = String::new();
    for c in &summary.per_class {
        per_class.push_str(&format!(
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&c.label),
            c.precision,
            c.recall,
            c.f1,
            c.support,
            c.average_precision.map_or("n/a".into(), |v| format!("{v:.3}")),
            c.auc.map_or("n/a".into(), |v| format!("{v:.3}")),
        ));
    }
    let mut figures = String::new();
    for (title, svg) in &svgs {
        let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
        figures.push_str(&format!("<figure><figcaption>{title}</figcaption>{body}</figure>"));
    }
    let fmt_opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let html = TEMPLATE
        .replace("{{TITLE}}", &html_escape(&options.title))
        .replace("{{MODEL}}", &html_escape(&options.model))
        .replace("{{N}}", &e.y_true().len().to_string())
        .replace("{{ACC}}", &format!("{:.2}%", 100.0 * summary.accuracy))
        .replace("{{CACC}}", &format!("{:.2}%", 100.0 * summary.class_averaged_accuracy))
        .replace("{{AUC}}", &fmt_opt(summary.macro_auc))
        .replace("{{MAP}}", &fmt_opt(summary.macro_average_precision))
        .replace("{{ECE}}", &format!("{:.3}", summary.expected_calibration_error))
        .replace("{{BRIER}}", &format!("{:.3}", summary.brier_score))
        .replace("{{KIND}}", &html_escape(&kind_sentence(e.score_kind())))
        .replace("{{WARNING}}", &trained_on_warning(e))
        .replace("{{PER_CLASS}}", &per_class)
        .replace("{{FIGURES}}", &figures)
        .replace("{{DATA}}", &data_json);
    let html_path = dir.join("report.html");
    cvtk_core::write_atomic(&html_path, html.as_bytes())?;
    Ok(ReportFiles { html: html_path, plots })
}

/// A warning above the summary when the model was trained on evaluated images.
fn trained_on_warning(e: &ClassificationEvaluation) -> String {
    match e.trained_on() {
        Some(n) if n > 0 => format!(
            "<p class=\"warning\" id=\"trained-on\"><b>Not a test accuracy:</b> the model was trained on {n} of these {} \
             images. Evaluate it on held-out images, such as the test part of the split it was trained with.</p>",
            e.y_true().len()
        ),
        _ => String::new(),
    }
}

/// How the report's confidences were obtained, for a person.
fn kind_sentence(kind: cvtk_core::ScoreKind) -> String {
    match kind {
        cvtk_core::ScoreKind::Logits { temperature: 1.0 } => {
            "the softmax of the network's logits (not calibrated)".into()
        }
        cvtk_core::ScoreKind::Logits { temperature } => {
            format!("the softmax of the network's logits divided by the calibration temperature {temperature:.3}")
        }
        cvtk_core::ScoreKind::Decision { temperature } => {
            format!("the softmax of the SVM's decision values divided by the calibration temperature {temperature:.4}")
        }
        cvtk_core::ScoreKind::Probabilities => "as the classifier gave them".into(),
    }
}

const TEMPLATE: &str = include_str!("report.html");
