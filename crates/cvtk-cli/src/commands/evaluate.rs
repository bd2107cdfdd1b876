//! `cvtk evaluate`: score a dataset with a model, print accuracy and the
//! confusion matrix (as the original notebook did), write plots and report.html.
//! A model that was trained on some of the images it is evaluated on gets a
//! warning: that accuracy is not a test accuracy.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_dataset::SplitPart;
use cvtk_eval::{write_report, ClassificationEvaluation, EvaluationSummary, ReportImage, ReportOptions};
use cvtk_model::{load_scorer, Scorer};

use super::train::EngineArgs;
use serde::Serialize;

use crate::output::print_json;

/// Arguments of `cvtk evaluate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A manifest (its --split part is evaluated) or a folder (all its images).
    dataset: PathBuf,
    /// The model folder written by `cvtk train`.
    #[arg(long)]
    model: PathBuf,
    /// Which part of a manifest's split to evaluate: test or train.
    #[arg(long, default_value = "test")]
    split: SplitPart,
    /// Folder for report.html and the plots (PNG and SVG).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Minibatch size for scoring.
    #[arg(long, default_value_t = 32, value_parser = crate::output::at_least_one)]
    mb_size: usize,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: cvtk_model::DeviceChoice,
    #[command(flatten)]
    engine: EngineArgs,
    /// Leave the maps out of the report (by default its top losses and result cards show where in each
    /// image the evidence for the predicted label was, for models that have maps).
    #[arg(long)]
    no_maps: bool,
    /// Print every metric as JSON (schema: cvtk_eval::EvaluationSummary).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    model: PathBuf,
    dataset: PathBuf,
    part: &'a str,
    report: Option<PathBuf>,
    #[serde(flatten)]
    summary: EvaluationSummary,
}

/// Where held-out images are, for the warning about training images.
fn held_out_hint(ds: &cvtk_dataset::ClassificationDataset, part: SplitPart) -> String {
    match (ds.split_info(), part) {
        (Some(_), SplitPart::Train) => "the test part of the manifest's split (`--split test`, the default)".into(),
        (Some(_), _) => "the test part of the split the model was trained with, or images it never saw".into(),
        (None, _) => "a manifest with the split the model was trained with (its test part is evaluated by \
                      default), or a folder of images it never saw"
            .into(),
    }
}

/// Puts the overlay of the predicted label's map on the images the report
/// previews ([`cvtk_eval::preview_rows`]); a model without maps gets none,
/// with a log line.
fn add_overlays(scorer: &dyn Scorer, eval: &ClassificationEvaluation, images: &mut [ReportImage]) {
    let rows = cvtk_eval::preview_rows(eval, 0);
    let paths: Vec<PathBuf> = rows.iter().filter_map(|&i| images.get(i).map(|m| m.path.clone())).collect();
    match cvtk_model::explain::overlay_thumbnails(scorer, &paths, 112) {
        Ok(overlays) => {
            for (&i, overlay) in rows.iter().zip(overlays) {
                if let Some(m) = images.get_mut(i) {
                    m.overlay = overlay;
                }
            }
        }
        Err(e) => tracing::info!("the report shows no maps: {e}"),
    }
}

/// Runs `cvtk evaluate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let part = args.split;
    let ds = cvtk_dataset::ClassificationDataset::open(&args.dataset)?;
    let (test, part_name) = match ds.split_info() {
        Some(_) => (ds.part(part)?, part.name()),
        None => (ds.clone(), "all"),
    };
    let scorer = args.engine.tta(load_scorer(&args.model, args.device, args.engine.engine)?);
    let scores = scorer.score_dataset(&test, args.mb_size)?;
    let model = scorer.model();
    let mut eval = ClassificationEvaluation::from_scores(&scores)?;
    match model.training_images() {
        Ok(Some(trained_on)) => eval.set_trained_on(trained_on.find_in(&test).len()),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot tell which images {} was trained on: {e}", args.model.display()),
    }
    if let Some(n) = eval.trained_on().filter(|&n| n > 0) {
        tracing::warn!(
            "the model ({}) was trained on {n} of the {} images evaluated ({part_name} of {}): the accuracy below is \
             not a test accuracy. Evaluate on held-out images: {}",
            args.model.display(),
            test.len(),
            args.dataset.display(),
            held_out_hint(&ds, part)
        );
    }
    let summary = EvaluationSummary::new(&eval);
    let report = match &args.report {
        Some(dir) => {
            let mut images: Vec<ReportImage> =
                test.images().iter().map(|i| ReportImage { id: i.id, path: i.path.clone(), overlay: None }).collect();
            if !args.no_maps {
                add_overlays(&scorer, &eval, &mut images);
            }
            let options = ReportOptions {
                title: format!("{} on {} ({} images, {part_name})", args.model.display(), test.name(), test.len()),
                model: scorer.describe(),
                images,
                history: model.train_eval_accs(),
                max_thumbnails: 0,
            };
            Some(
                write_report(dir, &eval, &options)
                    .with_context(|| format!("writing the report into {}", dir.display()))?,
            )
        }
        None => None,
    };
    if args.json {
        return print_json(&Output {
            model: args.model.clone(),
            dataset: args.dataset.clone(),
            part: part_name,
            report: report.map(|r| r.html),
            summary,
        });
    }
    println!(
        "evaluated {} on {} images ({part_name}) of {}",
        args.model.display(),
        summary.images,
        args.dataset.display()
    );
    if let Some(n) = summary.trained_on_evaluated_images.filter(|&n| n > 0) {
        println!("NOT A TEST ACCURACY: the model was trained on {n} of these {} images", summary.images);
    }
    println!("class-averaged accuracy: {:.2}%", 100.0 * summary.class_averaged_accuracy);
    println!("overall accuracy:        {:.2}%", 100.0 * summary.accuracy);
    if let Some(a) = summary.macro_auc {
        println!("macro AUC:               {a:.4}");
    }
    if let Some(a) = summary.macro_average_precision {
        println!("mean average precision:  {a:.4}");
    }
    println!(
        "calibration error (ECE): {:.4} (probabilities from {})",
        summary.expected_calibration_error, summary.score_kind
    );
    println!("Brier score:             {:.4}", summary.brier_score);
    if let Some(u) = &summary.uncalibrated {
        println!(
            "  without calibration:   ECE {:.4}, Brier score {:.4} (temperature 1)",
            u.expected_calibration_error, u.brier_score
        );
    }
    println!("confusion matrix:\n{}", summary.confusion_table());
    if let Some(r) = report {
        println!("report: {}", r.html.display());
        println!(
            "plots:  {}",
            r.plots
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "png"))
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
