//! `cvtk augment`: write augmented copies of a dataset's images.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_augment::{augment_dataset_into, Pipeline};
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
    /// Fixes carried over from the manifest an earlier run left there.
    kept_fixes: cvtk_dataset::KeptFixes,
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
    // Held from reading an earlier run's manifest to writing this one.
    let lock = cvtk_dataset::ManifestLock::acquire(&manifest)?;
    let mut kept = cvtk_dataset::KeptFixes::default();
    if manifest.exists() {
        // Fixes made in `cvtk annotate` on an earlier run's manifest stay.
        let earlier = cvtk_dataset::ClassificationDataset::from_manifest(&manifest)
            .with_context(|| format!("reading the earlier manifest {} to keep its fixes", manifest.display()))?;
        kept = augmented.keep_fixes_from(&earlier)?;
    }
    augmented.to_manifest_locked(&lock)?;
    let summary = Summary {
        originals: dataset.len(),
        copies: augmented.len().saturating_sub(dataset.len()),
        images: augmented.len(),
        out: args.out,
        manifest,
        kept_fixes: kept,
    };
    if kept.relabelled + kept.excluded > 0 && !args.json {
        println!("kept the fixes of the earlier manifest: {} relabelled, {} excluded", kept.relabelled, kept.excluded);
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
