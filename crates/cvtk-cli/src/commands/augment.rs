//! `cvtk augment`: write augmented copies of a dataset's images.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_augment::{augment_dataset_into, keep_excluded_copies, Pipeline};
use serde::Serialize;

use crate::output::print_json;

/// Arguments of `cvtk augment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A folder per label, or a manifest. With a split, only training images are augmented: the copies
    /// join the training part, and the test part stays as it was.
    dataset: PathBuf,
    /// Pipeline file, JSON or TOML, or a built-in pipeline: flip_crop, photo (repeat for one copy per
    /// pipeline per image).
    #[arg(long = "pipeline", required = true)]
    pipelines: Vec<PathBuf>,
    /// `train`: what happens anyway with a split (kept for scripts that pass it; it needs a split).
    /// Test images are never augmented.
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
    /// Copies excluded in the manifest an earlier run left there, kept excluded.
    excluded_copies_kept: usize,
}

/// Runs `cvtk augment`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pipelines = args
        .pipelines
        .iter()
        .map(|p| Pipeline::open(p).with_context(|| format!("reading pipeline {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dataset = cvtk_dataset::ClassificationDataset::open(&args.dataset)?;
    match (args.part, dataset.split_info()) {
        (Some(cvtk_dataset::SplitPart::Test), _) => anyhow::bail!(
            "test images are never augmented: the test part measures the model on images as they come. Augment \
             the training part (the default for a manifest with a split)"
        ),
        (Some(_), None) => anyhow::bail!(
            "--part train needs a split, and {} has none; make one with `cvtk dataset split`",
            args.dataset.display()
        ),
        _ => {}
    }
    let mut augmented = augment_dataset_into(&dataset, &pipelines, &args.out, args.seed)?;
    let manifest = args.manifest.clone().unwrap_or_else(|| args.out.join("manifest.json"));
    // Copies a person excluded in an earlier run's manifest stay excluded.
    let (excluded_copies, relabelled_copies) = augmented
        .replace_manifest(&manifest, |augmented, earlier| keep_excluded_copies(augmented, earlier, &args.out))
        .with_context(|| {
            format!("writing the manifest {} (keeping the copies excluded in the one there)", manifest.display())
        })?;
    let summary = Summary {
        originals: dataset.len(),
        copies: augmented.len().saturating_sub(dataset.len()),
        images: augmented.len(),
        out: args.out,
        manifest,
        excluded_copies_kept: excluded_copies,
    };
    if relabelled_copies > 0 {
        tracing::warn!(
            "{relabelled_copies} copies had another label in the earlier {}; a copy takes its original's label from \
             {}: relabel originals there",
            summary.manifest.display(),
            args.dataset.display()
        );
    }
    if excluded_copies > 0 && !args.json {
        println!("kept {excluded_copies} copies excluded, as the earlier manifest had them");
    }
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
