//! `cvtk predict`: classify images with a trained model folder, or with a
//! pretrained network's ImageNet head.

use std::path::PathBuf;

use anyhow::bail;
use cvtk_model::{load_classifier_with, ScoreKind};
use serde::Serialize;

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Arguments of `cvtk predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image files to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A model folder written by `cvtk train`; without it, the base network's ImageNet classes.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    base: BaseModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON: per image the top labels with their probabilities, every
    /// label's probability, and the raw scores with their kind.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Ranked {
    label: String,
    probability: f32,
}

#[derive(Serialize)]
struct ImageResult {
    image: PathBuf,
    top: Vec<Ranked>,
    /// Every label's (calibrated) probability, in label order.
    probabilities: Vec<f32>,
    /// The raw scores they came from (logits or SVM decision values).
    raw: Vec<f32>,
    /// What `raw` is, and the temperature that turns it into `probabilities`.
    raw_kind: ScoreKind,
}

fn ranked(labels: &[String], probabilities: &[f32], top: usize) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> =
        labels.iter().zip(probabilities).map(|(l, p)| Ranked { label: l.clone(), probability: *p }).collect();
    ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    ranked.truncate(top);
    ranked
}

/// Runs `cvtk predict`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(missing) = args.images.iter().find(|p| !p.is_file()) {
        bail!("image {} does not exist", missing.display());
    }
    let device = args.base.device()?;
    let results: Vec<ImageResult> = match &args.model {
        Some(dir) => {
            let model = load_classifier_with(dir, device, args.engine.engine)?;
            args.images
                .iter()
                .map(|img| {
                    let p = model.predict(img)?;
                    Ok(ImageResult {
                        image: img.clone(),
                        top: ranked(model.labels(), &p.probabilities, args.top),
                        probabilities: p.probabilities,
                        raw: p.raw,
                        raw_kind: p.raw_kind,
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
        None => {
            let base = args.base.base_model()?;
            base.predict_imagenet(&args.images, args.top, device, args.engine.engine)?
                .into_iter()
                .zip(&args.images)
                .map(|((top, logits), img)| ImageResult {
                    image: img.clone(),
                    top: top.into_iter().map(|t| Ranked { label: t.label, probability: t.score }).collect(),
                    probabilities: ScoreKind::LOGITS.probabilities(&logits),
                    raw: logits,
                    raw_kind: ScoreKind::LOGITS,
                })
                .collect()
        }
    };
    if args.json {
        return print_json(&results);
    }
    for r in &results {
        println!("{}", r.image.display());
        for t in &r.top {
            println!("  {:>6.2}%  {}", 100.0 * t.probability, t.label);
        }
    }
    Ok(())
}
