//! `cvtk predict`: classify images with a trained model folder, or with a
//! pretrained network's ImageNet head.

use std::path::PathBuf;

use anyhow::bail;
use cvtk_model::load_classifier;
use serde::Serialize;

use super::train::BaseModelArgs;
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
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON (labels, scores, and for ImageNet the raw 1000 logits).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Ranked {
    label: String,
    score: f32,
}

#[derive(Serialize)]
struct ImageResult {
    image: PathBuf,
    top: Vec<Ranked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scores: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logits: Option<Vec<f32>>,
}

/// Runs `cvtk predict`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(missing) = args.images.iter().find(|p| !p.is_file()) {
        bail!("image {} does not exist", missing.display());
    }
    let device = args.base.device()?;
    let results: Vec<ImageResult> = match &args.model {
        Some(dir) => {
            let model = load_classifier(dir, device)?;
            args.images
                .iter()
                .map(|img| {
                    let p = model.predict(img)?;
                    let mut ranked: Vec<Ranked> = model
                        .labels()
                        .iter()
                        .zip(&p.scores)
                        .map(|(l, s)| Ranked { label: l.clone(), score: *s })
                        .collect();
                    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
                    ranked.truncate(args.top);
                    Ok(ImageResult { image: img.clone(), top: ranked, scores: Some(p.scores), logits: None })
                })
                .collect::<anyhow::Result<_>>()?
        }
        None => {
            let base = args.base.base_model()?;
            base.predict_imagenet(&args.images, args.top, device)?
                .into_iter()
                .zip(&args.images)
                .map(|((top, logits), img)| ImageResult {
                    image: img.clone(),
                    top: top.into_iter().map(|t| Ranked { label: t.label, score: t.score }).collect(),
                    scores: None,
                    logits: Some(logits),
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
            println!("  {:>6.2}%  {}", 100.0 * t.score, t.label);
        }
    }
    Ok(())
}
