//! `cvtk dataset info`, `cvtk dataset split` and `cvtk dataset collect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cvtk_dataset::{ClassificationDataset, CollectOptions, ScanOptions, Split, StorageContext};
use serde::Serialize;

use crate::output::print_json;

/// `cvtk dataset ...`
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Counts per label and skipped files, for a folder or a manifest.
    Info(InfoArgs),
    /// Split a dataset into train and test parts and write a manifest.
    Split(SplitArgs),
    /// Build a dataset from a query file: local folders, image URLs and image-search texts per label.
    Collect(CollectArgs),
}

/// Arguments of `cvtk dataset collect`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "QUERIES.json maps each label to a list of queries, e.g.\n      {\"bowl\": [\"photos/bowls\", \"https://example.com/bowl.jpg\", \"blue ceramic bowl\"],\n       \"plate\": [{\"dir\": \"photos/plates\"}, {\"url\": \"https://example.com/p.png\"}, {\"search\": \"dinner plate\", \"count\": 20}]}\n    A string is a URL (http/https), a folder (starting with / ./ ../ ~/ or an existing folder), else a text query     for the image-search endpoint (Bing Image Search v7 shape). Re-running resumes: nothing collected is fetched again."
)]
pub struct CollectArgs {
    /// The query file (JSON: label -> list of folders, URLs, search texts).
    queries: PathBuf,
    /// Folder to collect into (one sub-folder per label).
    #[arg(long)]
    out: PathBuf,
    /// Also write a manifest of the collected dataset here.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Image-search endpoint for text queries.
    #[arg(long, env = "CVTK_IMAGE_SEARCH_ENDPOINT")]
    search_endpoint: Option<String>,
    /// Image-search key (sent as Ocp-Apim-Subscription-Key).
    #[arg(long, env = "CVTK_IMAGE_SEARCH_KEY", hide_env_values = true)]
    search_key: Option<String>,
    /// Results per text query when the query file does not say.
    #[arg(long, default_value_t = 50)]
    search_count: usize,
    /// Time limit per HTTP request, in seconds.
    #[arg(long, default_value_t = 20.0)]
    timeout_s: f64,
    /// Largest download accepted, in MiB.
    #[arg(long, default_value_t = 20.0)]
    max_mb: f64,
    /// Retries after a timeout, connection error, 429 or 5xx (with doubling waits).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Link local files instead of copying them.
    #[arg(long)]
    link: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cvtk dataset info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// A folder with one sub-folder per label, or a manifest (.json).
    dataset: PathBuf,
    /// Read only image headers instead of decoding every image (faster; misses truncated files).
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cvtk dataset split`.
#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    /// A folder with one sub-folder per label, or a manifest (.json).
    dataset: PathBuf,
    /// Fraction of images for training, in (0, 1).
    #[arg(long, default_value_t = 0.66)]
    train_size: f64,
    /// Keep label proportions in both parts (every label with 2+ images in each).
    #[arg(long)]
    stratify: bool,
    /// Seed of the shuffle; the same seed gives the same split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Manifest to write (JSON), holding the dataset and its split.
    #[arg(long)]
    out: PathBuf,
    /// Read only image headers instead of decoding every image.
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `cvtk dataset ...`.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Info(a) => info(a),
        Command::Split(a) => split(a),
        Command::Collect(a) => collect(a),
    }
}

/// Opens a dataset from a folder (scanning it) or a manifest file.
pub fn open_dataset(path: &Path, quick: bool) -> anyhow::Result<ClassificationDataset> {
    if path.is_file() {
        return ClassificationDataset::from_manifest(path).with_context(|| "reading the dataset manifest".to_string());
    }
    let name = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dataset".into());
    Ok(ClassificationDataset::create_from_dir_with(name, path, &ScanOptions::default().verify(!quick))?)
}

#[derive(Serialize)]
struct LabelCount {
    name: String,
    images: usize,
    train: Option<usize>,
    test: Option<usize>,
}

#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    root: Option<&'a Path>,
    images: usize,
    labels: Vec<LabelCount>,
    skipped: &'a [cvtk_dataset::Skipped],
    skipped_by_kind: BTreeMap<&'static str, usize>,
    split: Option<SplitSummary>,
}

#[derive(Serialize)]
struct SplitSummary {
    train_size: f64,
    stratify: bool,
    seed: u64,
    train: usize,
    test: usize,
}

fn summarise(ds: &ClassificationDataset) -> Summary<'_> {
    let counts = ds.counts_per_label();
    let part_counts = |ids: &[u64]| {
        let mut c = vec![0; ds.labels().len()];
        for id in ids {
            if let Some(img) = ds.image(*id) {
                c[img.label()] += 1;
            }
        }
        c
    };
    let split_counts = ds.split_info().map(|s: &Split| (part_counts(&s.train), part_counts(&s.test)));
    let labels = ds
        .labels()
        .iter()
        .enumerate()
        .map(|(i, l)| LabelCount {
            name: l.name.clone(),
            images: counts[i],
            train: split_counts.as_ref().map(|(tr, _)| tr[i]),
            test: split_counts.as_ref().map(|(_, te)| te[i]),
        })
        .collect();
    let mut skipped_by_kind = BTreeMap::new();
    for s in ds.skipped() {
        *skipped_by_kind.entry(s.kind.as_str()).or_insert(0) += 1;
    }
    Summary {
        name: ds.name(),
        root: ds.root(),
        images: ds.len(),
        labels,
        skipped: ds.skipped(),
        skipped_by_kind,
        split: ds.split_info().map(|s| SplitSummary {
            train_size: s.train_size,
            stratify: s.stratify,
            seed: s.seed,
            train: s.train.len(),
            test: s.test.len(),
        }),
    }
}

fn print_summary(s: &Summary<'_>) {
    println!("dataset '{}': {} images, {} labels", s.name, s.images, s.labels.len());
    if let Some(root) = s.root {
        println!("  folder: {}", root.display());
    }
    let with_split = s.split.is_some();
    if with_split {
        println!("  {:<20} {:>7} {:>7} {:>7}", "label", "images", "train", "test");
    } else {
        println!("  {:<20} {:>7}", "label", "images");
    }
    for l in &s.labels {
        match (l.train, l.test) {
            (Some(tr), Some(te)) => println!("  {:<20} {:>7} {:>7} {:>7}", l.name, l.images, tr, te),
            _ => println!("  {:<20} {:>7}", l.name, l.images),
        }
    }
    if let Some(sp) = &s.split {
        println!(
            "  split: {} train / {} test (train_size {}, {}, seed {})",
            sp.train,
            sp.test,
            sp.train_size,
            if sp.stratify { "stratified" } else { "not stratified" },
            sp.seed
        );
    }
    let shown: Vec<_> = s.skipped.iter().filter(|k| k.kind != cvtk_dataset::SkipKind::Hidden).collect();
    if !shown.is_empty() {
        println!("  skipped {} files:", shown.len());
        for k in shown.iter().take(20) {
            println!("    [{}] {}: {}", k.kind.as_str(), k.path, k.reason);
        }
        if shown.len() > 20 {
            println!("    ... and {} more (see --json)", shown.len() - 20);
        }
    }
}

fn info(a: InfoArgs) -> anyhow::Result<()> {
    let ds = open_dataset(&a.dataset, a.quick)?;
    let s = summarise(&ds);
    if a.json {
        print_json(&s)
    } else {
        print_summary(&s);
        Ok(())
    }
}

fn split(a: SplitArgs) -> anyhow::Result<()> {
    let mut ds = open_dataset(&a.dataset, a.quick)?;
    let split = ds.split(a.train_size, a.stratify, a.seed)?;
    ds.set_split(split)?;
    ds.to_manifest(&a.out)?;
    let s = summarise(&ds);
    if a.json {
        print_json(&s)
    } else {
        print_summary(&s);
        println!("wrote {}", a.out.display());
        Ok(())
    }
}

fn collect(a: CollectArgs) -> anyhow::Result<()> {
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(a.timeout_s) || !positive(a.max_mb) {
        anyhow::bail!("--timeout-s and --max-mb must be positive numbers");
    }
    let options = CollectOptions {
        timeout: std::time::Duration::from_secs_f64(a.timeout_s),
        max_bytes: (a.max_mb * 1024.0 * 1024.0) as u64,
        retries: a.retries,
        search_count: a.search_count,
        link: a.link,
        parallel: a.parallel,
        ..CollectOptions::default()
    };
    let mut storage = StorageContext::new().without_image_search();
    if let Some(endpoint) = a.search_endpoint.filter(|e| !e.trim().is_empty()) {
        storage = storage.with_image_search(endpoint, a.search_key.filter(|k| !k.is_empty()));
    }
    let (ds, report) = ClassificationDataset::create_from_queries_into(&a.queries, &a.out, &storage, &options)?;
    if let Some(m) = &a.manifest {
        ds.to_manifest(m).with_context(|| format!("writing the manifest {}", m.display()))?;
    }
    if a.json {
        return print_json(&serde_json::json!({ "out": a.out, "manifest": a.manifest, "report": report }));
    }
    println!(
        "collected into {}: {} new, {} already there, {} duplicates dropped, {} failed",
        a.out.display(),
        report.added.len(),
        report.already_there,
        report.duplicates.len(),
        report.failures.len()
    );
    for (label, n) in &report.per_label {
        println!("  {label:<20} {n:>6} images");
    }
    for d in &report.duplicates {
        println!("  duplicate  [{}] {} (same bytes as {})", d.label, d.source, d.same_as);
    }
    for f in &report.failures {
        println!("  failed     [{}] {}: {}", f.label, f.source, f.reason);
    }
    if let Some(m) = &a.manifest {
        println!("manifest: {}", m.display());
    }
    println!("next: cvtk annotate {} to look at the images and fix labels", a.out.display());
    Ok(())
}
