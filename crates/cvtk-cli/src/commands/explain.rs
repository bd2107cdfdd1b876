//! `cvtk explain`: where in each image the evidence for a label was (class
//! activation maps, or Grad-CAM), as an overlay PNG and the map's numbers.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cvtk_model::explain::{explain_files, output_stems, write_explanation, Method};
use cvtk_model::{load_scorer, Scorer};
use serde::Serialize;

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Arguments of `cvtk explain`.
#[derive(clap::Args, Debug)]
#[command(after_help = "For each image, OUT/NAME.explain.png is the image with the map over it (the part the model \
    saw; a colour scale on the right, strongest at the top) and OUT/NAME.explain.json the map's numbers (NAME: the file's name without its extension; \
    FOLDER_NAME where two images share a name). A CAM's \
    numbers are in score units: each label's map averages to its raw score minus the head's bias. An image that \
    cannot be read gets an error line, the others are still explained, and cvtk exits 1 once all are done.")]
pub struct Args {
    /// Image files or folders (every image under them, recursively, in path order).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A model folder written by `cvtk train`; without it, the base network's ImageNet classes.
    #[arg(long, conflicts_with_all = ["base_model", "weights", "random_init"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    base: BaseModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// The folder the overlays and numbers go into (made if missing).
    #[arg(long)]
    out: PathBuf,
    /// Map this label in every image, not each image's predicted one.
    #[arg(long)]
    label: Option<String>,
    /// cam (class activation map, either engine) or grad-cam (gradients, on libtorch).
    #[arg(long, default_value = "cam")]
    method: Method,
    /// Print JSON: per image its label, probability, prediction, the files written and the map (or the error).
    #[arg(long)]
    json: bool,
}

/// One image's result, as `--json` prints it.
#[derive(Serialize)]
struct ImageResult {
    path: PathBuf,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    explanation: Option<cvtk_model::Explanation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overlay: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    numbers: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Every image `inputs` name: files as they are, folders expanded.
fn image_paths(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = cvtk_dataset::walk::image_files_logged(p).collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        bail!("no images in {}: folders are searched for files with an image extension", show(inputs));
    }
    Ok(out)
}

fn show(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Runs `cvtk explain`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model: Box<dyn Scorer> = match &args.model {
        Some(dir) => Box::new(args.engine.tta(load_scorer(dir, args.base.device, args.engine.engine)?)),
        None => Box::new(args.base.imagenet_classifier(args.engine)?.1),
    };
    let paths = image_paths(&args.images)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot make {}", args.out.display()))?;
    let loader = model.loader_config();
    let mut results = Vec::with_capacity(paths.len());
    let stems = output_stems(&paths);
    let explained = explain_files(&*model, &paths, args.label.as_deref(), args.method)?;
    for ((path, explained), stem) in explained.into_iter().zip(stems) {
        let written = explained.and_then(|e| {
            let files = write_explanation(&e, &path, &loader, &args.out, &stem)?;
            Ok((e, files))
        });
        results.push(match written {
            Ok((e, (png, json))) => {
                ImageResult { path, explanation: Some(e), overlay: Some(png), numbers: Some(json), error: None }
            }
            Err(e) => ImageResult { path, explanation: None, overlay: None, numbers: None, error: Some(e.to_string()) },
        });
    }
    if args.json {
        print_json(&results)?;
    } else {
        for r in &results {
            match (&r.explanation, &r.error) {
                (Some(e), _) => {
                    let (peak, row, col) = e.map.argmax();
                    println!(
                        "{}: {} {:.2}% (predicted {} {:.2}%), strongest at cell ({row}, {col}) of {}x{} ({peak:.3}) -> {}",
                        r.path.display(),
                        e.label,
                        100.0 * e.probability,
                        e.predicted,
                        100.0 * e.predicted_probability,
                        e.map.height,
                        e.map.width,
                        r.overlay.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    );
                }
                (None, Some(err)) => println!("{}: error: {err}", r.path.display()),
                (None, None) => {}
            }
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} images could not be explained", results.len());
    }
    Ok(())
}
