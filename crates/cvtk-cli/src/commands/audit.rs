//! `cvtk audit`: the images of a dataset a person should look at, and why:
//! likely wrong labels (confident learning on out-of-sample probabilities
//! from a logistic regression on a pretrained network's features,
//! cross-fitted),
//! neighbours that disagree, outliers, exact and near duplicates and the
//! leaks among them, image quality, and the images per label.

use std::path::{Path, PathBuf};

use cvtk_annotate::manifest_for;
use cvtk_audit::quality::QualityIssue;
use cvtk_audit::{write_report, AuditOptions, DatasetAudit, FeatureCache, Shard};
use cvtk_core::StorageContext;
use cvtk_dataset::ClassificationDataset;
use cvtk_model::Featurizer;
use serde::Serialize;

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Arguments of `cvtk audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset folder (one sub-folder per label) or its manifest; every image not excluded is
    /// audited. The findings are recorded in the manifest (for a folder, FOLDER.json beside it, made
    /// on the first run as `cvtk annotate` makes it), where `cvtk annotate` shows them.
    dataset: PathBuf,
    #[command(flatten)]
    base: BaseModelArgs,
    /// For a folder: the manifest to record the findings in (as `cvtk annotate --manifest`);
    /// default FOLDER.json beside the folder.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Featurize with the network of a model cvtk trained (MODEL_DIR: a fine-tuned network's
    /// backbone, or the network an SVM was trained on) instead of the pretrained base network.
    #[arg(long, value_name = "MODEL_DIR", conflicts_with_all = ["base_model", "weights", "random_init", "image_size"])]
    model: Option<PathBuf>,
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
    /// The folder of the feature cache (default $CVTK_HOME/cache/features).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Only featurize shard K of N (e.g. 0/4: the images whose manifest id hashes to K) into the
    /// folder of --cache-dir, in a file of the shard's own, and stop: no audit. For a dataset featurized
    /// on many machines (in a Kubernetes Indexed Job: --shard $JOB_COMPLETION_INDEX/N), each with the
    /// same manifest (DATASET must be one) and the same network, --image-size, --engine and --device as
    /// the audit; gather the shards' files in one folder, and `cvtk audit --cache-dir FOLDER` featurizes
    /// nothing.
    #[arg(long, value_name = "K/N", requires = "cache_dir", conflicts_with_all = ["no_cache", "report"])]
    shard: Option<Shard>,
    /// Findings printed of each kind (all are in --json).
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Also write the findings as one self-contained page, DIR/audit.html: counts, images per label,
    /// a gallery per kind of finding (thumbnails, suggested labels, duplicate sets side by side).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
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

/// Writes `findings` into the manifest at `path`, under its lock, over a
/// fresh read (a person may have fixed labels in `cvtk annotate` meanwhile),
/// atomically: an interrupted audit leaves the manifest as it was.
fn record(path: &Path, audited: &ClassificationDataset, findings: cvtk_dataset::Findings) -> anyhow::Result<()> {
    let lock = cvtk_core::FileLock::acquire(path)?;
    // An atomic rename would replace even a read-only file: honour the mode.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        anyhow::bail!("{} is read-only", path.display());
    }
    let mut now = ClassificationDataset::from_manifest(path)?;
    // The same files, matched by path: an image removed meanwhile loses its findings.
    let ids = now.same_images_in(audited).into_iter().map(|(id, img, _)| (img.id, id)).collect();
    now.set_findings(findings.remapped(&ids))?;
    now.to_manifest_locked(&lock)?;
    Ok(())
}

#[derive(Serialize)]
struct Output<'a> {
    dataset: &'a PathBuf,
    manifest: &'a Path,
    /// Whether the findings were written into the manifest.
    recorded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Path>,
    base_model: String,
    #[serde(flatten)]
    audit: &'a DatasetAudit,
}

/// Runs `cvtk audit`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.engine.tta.is_some() {
        anyhow::bail!(
            "--tta is for commands that score with a trained model; the audit uses the network's features alone"
        );
    }
    // The manifest the findings are recorded in, where `cvtk annotate` finds
    // them: the one given, or the folder's (made beside it on the first run).
    if args.shard.is_some() && !args.dataset.is_file() {
        anyhow::bail!(
            "--shard needs the dataset's manifest, not a folder, so that every machine numbers the images alike: \
             give FOLDER.json (`cvtk annotate FOLDER` or `cvtk dataset split FOLDER --out FOLDER.json` makes one)"
        );
    }
    let manifest = manifest_for(&args.dataset, args.manifest.as_deref())?;
    if let Some(what) = manifest.describe(&args.dataset) {
        eprintln!("{what}");
    }
    let dataset = ClassificationDataset::from_manifest(manifest.path())?;
    let (featurizer, base_model) = match &args.model {
        Some(dir) => {
            let featurizer = Featurizer::of_model(dir, args.base.device()?)?;
            let name = format!("the {} of {}", featurizer.arch(), dir.display());
            (featurizer, name)
        }
        None => (
            Featurizer::new(&args.base.base_model()?, args.image_size, args.base.device()?)?,
            args.base.base_model.to_string(),
        ),
    };
    let featurizer = featurizer.compile(args.engine.engine)?;
    let cache = match &args.cache_dir {
        Some(dir) => Some(FeatureCache::new(dir)),
        None => (!args.no_cache).then(|| FeatureCache::in_storage(&StorageContext::default())),
    };
    if let (Some(shard), Some(cache)) = (args.shard, &cache) {
        let batch = AuditOptions::default().batch_size;
        let (used, file) = cache.featurize_shard(&featurizer, &dataset, batch, shard)?;
        if args.json {
            return print_json(&serde_json::json!({
                "dataset": &args.dataset,
                "manifest": manifest.path(),
                "shard": shard.to_string(),
                "images": used.reused + used.computed,
                "features": used,
                "file": file,
            }));
        }
        println!(
            "shard {shard}: {} of {} images ({} featurized, {} from the cache) in {}",
            used.reused + used.computed,
            dataset.len(),
            used.computed,
            used.reused,
            file.display()
        );
        println!(
            "When every shard has run, gather their files in one folder and audit with it: cvtk audit {} --cache-dir FOLDER",
            args.dataset.display()
        );
        return Ok(());
    }
    let options = AuditOptions { folds: args.folds, seed: args.seed, cache, ..AuditOptions::default() };
    let audit = DatasetAudit::run(&dataset, &featurizer, &options)?;
    // Not recording loses nothing printed or written: a warning, and on.
    let recorded = match record(manifest.path(), &dataset, audit.findings(&base_model)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("warning: the findings are not recorded in {}: {e:#}", manifest.path().display());
            false
        }
    };
    let report = match &args.report {
        Some(dir) => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let dataset = args.dataset.display().to_string();
            Some(write_report(dir, &audit, &dataset, &base_model, &command)?)
        }
        None => None,
    };
    if args.json {
        return print_json(&Output {
            dataset: &args.dataset,
            manifest: manifest.path(),
            recorded,
            report: report.as_deref(),
            base_model: base_model.clone(),
            audit: &audit,
        });
    }
    println!(
        "{} images, {} labels; features of {} ({} featurized, {} from the cache), each image judged by a logistic \
         regression fitted on the other {} of {} folds",
        audit.images,
        audit.labels.len(),
        base_model,
        audit.features.computed,
        audit.features.reused,
        audit.folds - 1,
        audit.folds
    );
    for label in &audit.labels {
        let note = match (label.too_few, label.small) {
            (true, _) => "  (fewer images than folds: too few to judge all of them)",
            (false, true) => "  (small: too few to learn or evaluate well)",
            _ => "",
        };
        println!("  {:<24} {:>7} images{note}", label.label, label.images);
    }
    let pct = |n: usize| 100.0 * n as f64 / audit.images.max(1) as f64;
    let leaks = audit.leaks().count();
    let exact = audit.duplicates.iter().filter(|d| d.exact).count();
    println!("\nFindings:");
    println!(
        "  {:<22} {:>6}  ({:.1}%; the out-of-sample model finds another label likelier)",
        "label issues",
        audit.label_issues.len(),
        pct(audit.label_issues.len())
    );
    println!(
        "  {:<22} {:>6}  (the nearest images carry another label)",
        "neighbours disagree",
        audit.neighbour_issues.len()
    );
    println!("  {:<22} {:>6}  (far from every other image)", "outliers", audit.outliers.len());
    println!(
        "  {:<22} {:>6}  ({exact} exact, {} near; {leaks} across the train/test split)",
        "duplicate sets",
        audit.duplicates.len(),
        audit.duplicates.len() - exact
    );
    let quality: Vec<String> =
        audit.quality_counts().iter().filter(|(_, n)| *n > 0).map(|(q, n)| format!("{n} {}", q.name())).collect();
    println!(
        "  {:<22} {:>6}  ({})",
        "quality",
        audit.quality.len(),
        if quality.is_empty() {
            "none dark, light, blurry, blank, oddly shaped or sized".to_string()
        } else {
            quality.join(", ")
        }
    );
    for common in &audit.common_quality {
        println!(
            "  {:<22} {:>6}  images are {}: most of the dataset, so a trait of it, not listed per image",
            "",
            common.images,
            common.issue.name().replace('_', " ")
        );
    }
    if !audit.unreadable.is_empty() {
        println!(
            "  {:<22} {:>6}  (left out of the dataset when it was made)",
            "unreadable files",
            audit.unreadable.len()
        );
    }
    let more = |n: usize| {
        if n > args.show {
            println!("  ... {} more (--show N, or --json for all)", n - args.show);
        }
    };
    if !audit.label_issues.is_empty() {
        println!("\nLabel issues, worst first:");
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
        more(audit.label_issues.len());
    }
    if !audit.neighbour_issues.is_empty() {
        println!("\nNeighbours disagree, worst first:");
        for issue in audit.neighbour_issues.iter().take(args.show) {
            println!(
                "  {}  labelled {}, {:.0}% of its nearest images are {} ({:.0}% {})",
                issue.path.display(),
                issue.given,
                100.0 * issue.suggested_probability,
                issue.suggested,
                100.0 * issue.quality,
                issue.given
            );
        }
        more(audit.neighbour_issues.len());
    }
    if !audit.outliers.is_empty() {
        println!("\nOutliers, farthest first:");
        for o in audit.outliers.iter().take(args.show) {
            println!(
                "  {}  ({}) score {:.3}, mean distance to its neighbours {:.3}",
                o.image.path.display(),
                o.image.label,
                o.score,
                o.mean_distance
            );
        }
        more(audit.outliers.len());
    }
    if !audit.duplicates.is_empty() {
        println!("\nDuplicate sets{}:", if leaks > 0 { ", leaks first" } else { "" });
        let mut sets: Vec<_> = audit.duplicates.iter().collect();
        sets.sort_by_key(|s| !s.leak);
        for set in sets.iter().take(args.show) {
            let kind = match (set.exact, set.leak) {
                (true, true) => "exact copies, LEAK (train and test)".to_string(),
                (true, false) => "exact copies".to_string(),
                (false, leak) => format!(
                    "near duplicates (similarity {:.2}){}",
                    set.similarity,
                    if leak { ", LEAK (train and test)" } else { "" }
                ),
            };
            println!("  {} images, {kind}:", set.images.len());
            for m in &set.images {
                let part = m.part.map(|p| format!(" [{p}]")).unwrap_or_default();
                println!("    {}  ({}){part}", m.image.path.display(), m.image.label);
            }
        }
        more(audit.duplicates.len());
    }
    if !audit.quality.is_empty() {
        println!("\nImage quality:");
        for q in audit.quality.iter().take(args.show) {
            let what: Vec<String> = q.issues.iter().map(|i| describe(*i, q)).collect();
            println!("  {}  {}", q.image.path.display(), what.join("; "));
        }
        more(audit.quality.len());
    }
    for file in &audit.unreadable {
        println!("\nUnreadable: {}  ({})", file.path, file.reason);
    }
    if recorded {
        println!("\nRecorded in {}.", manifest.path().display());
    }
    if let Some(report) = &report {
        println!("Report: {}", report.display());
    }
    if !audit.label_issues.is_empty() || !audit.neighbour_issues.is_empty() || !audit.duplicates.is_empty() {
        println!(
            "Look at them, accept suggested labels, exclude extra copies: cvtk annotate {}",
            manifest.path().display()
        );
    }
    if let (Some(split), true) = (dataset.split_info(), audit.leaks().next().is_some()) {
        println!(
            "Keep each duplicate set on one side of the split: cvtk dataset split {0} --out {0} --train-size {1} \
             --seed {2}{3} --keep-duplicates-together",
            manifest.path().display(),
            split.train_size,
            split.seed,
            if split.stratify { " --stratify" } else { "" }
        );
    }
    Ok(())
}

/// One quality issue of an image, with the score that made it one.
fn describe(issue: QualityIssue, q: &cvtk_audit::QualityFinding) -> String {
    use cvtk_audit::quality::thresholds as t;
    let s = &q.scores;
    match issue {
        QualityIssue::Dark => format!(
            "dark (99% of pixels under {:.0}% brightness; under {:.0}% is dark)",
            100.0 * s.dark,
            100.0 * t::DARK
        ),
        QualityIssue::Light => format!("light (95% of pixels over {:.0}% brightness)", 100.0 * (1.0 - s.light)),
        QualityIssue::Blurry => format!("blurry (score {:.2} < {})", s.blurry, t::BLURRY),
        QualityIssue::LowInformation => format!("nearly blank ({:.1} bits of entropy)", q.stats.entropy),
        QualityIssue::OddAspectRatio => format!("odd aspect ratio ({}x{})", q.stats.width, q.stats.height),
        QualityIssue::OddSize => format!("odd size ({}x{} among the dataset's sizes)", q.stats.width, q.stats.height),
        QualityIssue::Grayscale => "grayscale among colour images".to_string(),
    }
}
