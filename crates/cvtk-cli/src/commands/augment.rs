//! `cvtk augment`: write augmented copies of a dataset's images.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_augment::{augment_dataset_into, Pipeline};
use serde::Serialize;

use crate::output::print_json;

/// Arguments of `cvtk augment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A folder per label, or a manifest (its split is carried to the copies).
    dataset: PathBuf,
    /// Pipeline file, JSON or TOML (repeat for one copy per pipeline per image).
    #[arg(long = "pipeline", required = true)]
    pipelines: Vec<PathBuf>,
    /// Only augment this part of the manifest's split (train or test).
    #[arg(long)]
    part: Option<cvtk_dataset::SplitPart>,
    /// Folder for the augmented images (a sub-folder per label).
    #[arg(long)]
    out: PathBuf,
    /// Write the manifest of originals plus copies here (default OUT/manifest.json).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Seed of the augmentations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    originals: usize,
    copies: usize,
    images: usize,
    out: PathBuf,
    manifest: PathBuf,
}

/// Runs `cvtk augment`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pipelines = args
        .pipelines
        .iter()
        .map(|p| Pipeline::from_file(p).with_context(|| format!("reading pipeline {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut dataset = cvtk_dataset::ClassificationDataset::open(&args.dataset)?;
    if let Some(part) = args.part {
        dataset = dataset.part(part)?;
    }
    let augmented = augment_dataset_into(&dataset, &pipelines, &args.out, args.seed)?;
    let manifest = args.manifest.clone().unwrap_or_else(|| args.out.join("manifest.json"));
    augmented.to_manifest(&manifest)?;
    let summary = Summary {
        originals: dataset.len(),
        copies: augmented.len() - dataset.len(),
        images: augmented.len(),
        out: args.out,
        manifest,
    };
    if args.json {
        return print_json(&summary);
    }
    println!(
        "{} originals + {} augmented copies = {} images\ncopies in {}\nmanifest {} (train on it with `cvtk train {}`)",
        summary.originals,
        summary.copies,
        summary.images,
        summary.out.display(),
        summary.manifest.display(),
        summary.manifest.display()
    );
    Ok(())
}
