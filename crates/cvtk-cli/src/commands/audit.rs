//! `cvtk audit`: the images of a dataset whose labels are likely wrong, found
//! by confident learning on out-of-sample probabilities (a linear model on a
//! pretrained network's features, cross-fitted), and the images per label.

use std::path::PathBuf;

use cvtk_audit::{AuditOptions, DatasetAudit, FeatureCache};
use cvtk_core::StorageContext;
use cvtk_dataset::ClassificationDataset;
use cvtk_model::Featurizer;
use serde::Serialize;

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Arguments of `cvtk audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset folder (one sub-folder per label) or its manifest; every image not excluded is audited.
    dataset: PathBuf,
    #[command(flatten)]
    base: BaseModelArgs,
    /// Input size of the network, in pixels (default: the network's own).
    #[arg(long)]
    image_size: Option<u32>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Folds of the cross-fitting: each image is judged by a model fitted on the other folds.
    #[arg(long, default_value_t = AuditOptions::default().folds, value_parser = folds)]
    folds: usize,
    /// Seed of the folds.
    #[arg(long, default_value_t = AuditOptions::default().seed)]
    seed: u64,
    /// Featurize every image anew instead of reusing the features kept from earlier audits
    /// ($CVTK_HOME/cache/features, keyed by the network, its input size and weights, and each file's content).
    #[arg(long)]
    no_cache: bool,
    /// Label issues printed (all are in --json).
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Print the findings as JSON (schema: cvtk_audit::DatasetAudit).
    #[arg(long)]
    json: bool,
}

/// `--folds`: 2 or more.
fn folds(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        _ => Err(format!("'{s}' is not a number of folds; give 2 or more (5 is usual)")),
    }
}

#[derive(Serialize)]
struct Output<'a> {
    dataset: &'a PathBuf,
    base_model: String,
    #[serde(flatten)]
    audit: &'a DatasetAudit,
}

/// Runs `cvtk audit`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dataset = ClassificationDataset::open(&args.dataset)?;
    let base = args.base.base_model()?;
    let featurizer = Featurizer::new(&base, args.image_size, args.base.device()?)?.compile(args.engine.engine)?;
    let cache = (!args.no_cache).then(|| FeatureCache::in_storage(&StorageContext::default()));
    let options = AuditOptions { folds: args.folds, seed: args.seed, cache, ..AuditOptions::default() };
    let audit = DatasetAudit::run(&dataset, &featurizer, &options)?;
    if args.json {
        return print_json(&Output {
            dataset: &args.dataset,
            base_model: args.base.base_model.to_string(),
            audit: &audit,
        });
    }
    println!(
        "{} images, {} labels; features from {} ({} featurized, {} from the cache), each image judged by a linear \
         model fitted on the other {} of {} folds",
        audit.images,
        audit.labels.len(),
        args.base.base_model,
        audit.features.computed,
        audit.features.reused,
        audit.folds - 1,
        audit.folds
    );
    for label in &audit.labels {
        let note = if label.too_few { "  (fewer images than folds: too few to judge all of them)" } else { "" };
        println!("  {:<24} {:>7} images{note}", label.label, label.images);
    }
    println!(
        "\n{} label issues ({:.1}% of the images), worst first:",
        audit.label_issues.len(),
        100.0 * audit.label_issues.len() as f64 / audit.images.max(1) as f64
    );
    for issue in audit.label_issues.iter().take(args.show) {
        println!(
            "  {}  labelled {}, looks like {} ({:.0}%; {:.0}% for its label)",
            issue.path.display(),
            issue.given,
            issue.suggested,
            100.0 * issue.suggested_probability,
            100.0 * issue.quality
        );
    }
    if audit.label_issues.len() > args.show {
        println!("  ... {} more (--show N, or --json for all)", audit.label_issues.len() - args.show);
    }
    if !audit.label_issues.is_empty() {
        println!("\nLook at them and fix the labels with: cvtk annotate {}", args.dataset.display());
    }
    Ok(())
}
