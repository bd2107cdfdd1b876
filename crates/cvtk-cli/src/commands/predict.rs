//! `cvtk predict`: classify image files and folders with a trained model
//! folder, or with a pretrained network's ImageNet head.

use std::path::PathBuf;

use anyhow::bail;
use cvtk_core::Ranked;
use cvtk_core::ScoreKind;
use cvtk_model::{load_scorer, Scorer};
use cvtk_score::{BatchScorer, ScoreInput, ScoreOptions};
use serde::Serialize;

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Images per forward pass.
const BATCH: usize = 16;

/// Arguments of `cvtk predict`.
#[derive(clap::Args, Debug)]
#[command(after_help = "An image that cannot be read or decoded gets a line (a JSON row with \"error\") saying why, \
    the others are still classified, and cvtk exits 1 once all are done. For thousands of images, a resumable \
    output file or shards, use `cvtk score`.")]
pub struct Args {
    /// Image files, folders (every image under them, recursively, in path order; hidden files skipped),
    /// or http(s) URLs (public addresses only).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A model folder written by `cvtk train`; without it, the base network's ImageNet classes.
    #[arg(long, conflicts_with_all = ["base_model", "weights", "random_init"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    base: BaseModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// How many labels to show per image, best first (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    top: u16,
    /// With --json, also every label's probability and the raw scores they came from.
    #[arg(long)]
    all: bool,
    /// Print JSON: per image its top labels with their probabilities (or the error), and with --all every
    /// label's probability and the raw scores with their kind.
    #[arg(long)]
    json: bool,
}

/// One image's result, as `--json` prints it.
#[derive(Serialize)]
struct ImageResult {
    /// The image's path or URL, as `cvtk score`'s rows name it.
    path: String,
    /// The best `--top` labels, best first (empty when the image failed).
    top: Vec<Ranked>,
    /// Why the image could not be classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// With `--all`: every label's (calibrated) probability, in label order.
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<Vec<f32>>,
    /// With `--all`: the raw scores they came from (logits or SVM decision values).
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<Vec<f32>>,
    /// With `--all`: what `raw` is, and the temperature that turns it into `probabilities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_kind: Option<ScoreKind>,
}

/// Runs `cvtk predict`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.all && !args.json {
        bail!("--all adds every label's probability to the JSON output: use it with --json");
    }
    let model: Box<dyn Scorer> = match &args.model {
        Some(dir) => Box::new(args.engine.tta(load_scorer(dir, args.base.device, args.engine.engine)?)),
        None => Box::new(args.base.imagenet_classifier(args.engine)?.1),
    };
    let scorer = BatchScorer::new(
        &*model,
        &ScoreOptions { batch: BATCH, top: usize::from(args.top), ..ScoreOptions::default() },
    )?;
    let items = ScoreInput::Paths(args.images.clone()).items(None)?.collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        bail!(
            "no images in {}: folders are searched for files with an image extension (.jpg, .png, ...)",
            args.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let kind = model.score_kind();
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(BATCH) {
        for (item, raw) in chunk.iter().zip(scorer.score_raw(chunk)?) {
            results.push(match raw {
                Ok(raw) => {
                    let probabilities = kind.probabilities(&raw);
                    ImageResult {
                        path: item.source.clone(),
                        top: Ranked::top(model.labels(), &probabilities, usize::from(args.top)),
                        error: None,
                        probabilities: args.all.then_some(probabilities),
                        raw: args.all.then_some(raw),
                        raw_kind: args.all.then_some(kind),
                    }
                }
                Err(e) => ImageResult {
                    path: item.source.clone(),
                    top: Vec::new(),
                    error: Some(e),
                    probabilities: None,
                    raw: None,
                    raw_kind: None,
                },
            });
        }
    }
    if args.json {
        print_json(&results)?;
    } else {
        for r in &results {
            println!("{}", r.path);
            if let Some(e) = &r.error {
                println!("  error: {e}");
            }
            for t in &r.top {
                println!("  {:>6.2}%  {}", 100.0 * t.probability, t.label);
            }
        }
    }
    let failed: Vec<&ImageResult> = results.iter().filter(|r| r.error.is_some()).collect();
    if let Some(first) = failed.first() {
        let others = if failed.len() < results.len() { "; the others were" } else { "" };
        bail!(
            "{} of {} images could not be classified (the first: {}){others}",
            failed.len(),
            results.len(),
            first.path
        );
    }
    Ok(())
}
