//! `cvtk dataset info`, `cvtk dataset split` and `cvtk dataset collect`.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_collect::{CollectOptions, CreateFromQueries, ImageSearch};
use cvtk_dataset::{ClassificationDataset, DatasetSummary, ScanOptions};

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
    /// A file holding the image-search key (sent as Ocp-Apim-Subscription-Key); or set CVTK_IMAGE_SEARCH_KEY.
    #[arg(long)]
    search_key_file: Option<PathBuf>,
    /// Retired: a key on the command line is visible in `ps`.
    #[arg(
        long = "search-key",
        hide = true,
        value_parser = crate::secret::refuse("--search-key-file", "CVTK_IMAGE_SEARCH_KEY")
    )]
    search_key_on_command_line: Option<String>,
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
    /// Fetch from private, loopback and link-local addresses and any port too (by default only public
    /// addresses on ports 80 and 443, so a search result cannot point into this network).
    #[arg(long)]
    allow_private_urls: bool,
    /// Accept an http:// image-search endpoint (the key then crosses the network in clear text).
    #[arg(long)]
    allow_http_search: bool,
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
    #[arg(long, default_value_t = 0.66, value_parser = crate::output::fraction)]
    train_size: f64,
    /// Keep label proportions in both parts (every label with 2+ images in each).
    #[arg(long)]
    stratify: bool,
    /// Seed of the shuffle; the same seed gives the same split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep each set of duplicates the last `cvtk audit` of the manifest found on one side, so
    /// the test part holds no copy of a training image (moved images are swapped for others of
    /// the same label, keeping the sizes of both parts).
    #[arg(long)]
    keep_duplicates_together: bool,
    /// Manifest to write (JSON), holding the dataset and its split. When it is the manifest being
    /// split, its labels and exclusions (fixes made in `cvtk annotate`) are kept and only the split
    /// changes.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out with a manifest made afresh from a folder, dropping the labels and
    /// exclusions it holds.
    #[arg(long)]
    overwrite: bool,
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

fn print_summary(s: &DatasetSummary<'_>) {
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

fn open(path: &std::path::Path, quick: bool) -> anyhow::Result<ClassificationDataset> {
    ClassificationDataset::open_with(path, &ScanOptions::default().verify(!quick))
        .with_context(|| format!("reading the dataset {}", path.display()))
}

fn info(a: InfoArgs) -> anyhow::Result<()> {
    let ds = open(&a.dataset, a.quick)?;
    // A manifest only names its images: say so when they are gone (the
    // summary still shows what it names, and the run fails after it).
    let missing = ds.missing_images();
    let s = ds.summary();
    if a.json {
        let mut out = serde_json::to_value(&s)?;
        out["missing_images"] = missing.len().into();
        out["missing"] = missing.iter().take(20).map(|i| i.path.display().to_string()).collect();
        print_json(&out)?;
    } else {
        print_summary(&s);
        if !missing.is_empty() {
            println!("  MISSING: {} of the {} images are not where the manifest says", missing.len(), ds.len());
            for i in missing.iter().take(5) {
                println!("    {}", i.path.display());
            }
        }
    }
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "{} of the {} images {} names are missing (the first: {}): was their folder moved or deleted? Put it \
             back, or make a manifest of where the images are now: cvtk dataset split FOLDER --out MANIFEST",
            missing.len(),
            ds.len(),
            a.dataset.display(),
            first.path.display()
        );
    }
    Ok(())
}

fn split(a: SplitArgs) -> anyhow::Result<()> {
    // Held from reading to writing: when --out is the manifest being split
    // (or one `cvtk annotate` edits), no other writer's change is lost.
    let lock = cvtk_core::FileLock::acquire(&a.out)?;
    let same_file = match (std::fs::canonicalize(&a.dataset), std::fs::canonicalize(&a.out)) {
        (Ok(d), Ok(o)) => d == o,
        _ => false,
    };
    if a.out.exists() && !same_file && !a.overwrite {
        anyhow::bail!(
            "{out} exists and may hold fixes made in `cvtk annotate` (labels, exclusions), which a manifest made \
             afresh from {data} would drop. To re-split it keeping them: cvtk dataset split {out} --out {out}; to \
             start over from {data}: add --overwrite",
            out = a.out.display(),
            data = a.dataset.display()
        );
    }
    let mut ds = open(&a.dataset, a.quick)?;
    let (split, together) = if a.keep_duplicates_together {
        let Some(findings) = ds.findings() else {
            if a.dataset.is_dir() {
                anyhow::bail!(
                    "a folder records no audit, so no duplicate sets to keep together: run `cvtk audit {0}` (it \
                     records what it finds in a manifest beside the folder, and prints its name), then split that \
                     manifest: cvtk dataset split MANIFEST --out MANIFEST --keep-duplicates-together",
                    a.dataset.display()
                );
            }
            anyhow::bail!(
                "{} records no audit, so no duplicate sets to keep together: run `cvtk audit {0}` first (it records \
                 what it finds in the manifest), then this again",
                a.dataset.display()
            );
        };
        let sets: Vec<Vec<u64>> = findings.duplicate_sets.iter().map(|s| s.ids.clone()).collect();
        let (split, moved) = ds.split_keeping_together(a.train_size, a.stratify, a.seed, &sets)?;
        (split, Some((sets.len(), moved)))
    } else {
        (ds.split(a.train_size, a.stratify, a.seed)?, None)
    };
    ds.set_split(split)?;
    ds.to_manifest_locked(&lock)?;
    let s = ds.summary();
    if a.json {
        let mut out = serde_json::to_value(&s)?;
        if let Some((sets, moved)) = together {
            out["duplicate_sets_kept_together"] = serde_json::json!({ "sets": sets, "moved": moved });
        }
        print_json(&out)
    } else {
        print_summary(&s);
        if let Some((sets, moved)) = together {
            println!("  kept {sets} duplicate sets each on one side ({moved} images moved to their set's side)");
        }
        println!("wrote {}", a.out.display());
        Ok(())
    }
}

fn collect(a: CollectArgs) -> anyhow::Result<()> {
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !positive(a.timeout_s) || !positive(a.max_mb) {
        anyhow::bail!("--timeout-s and --max-mb must be positive numbers");
    }
    let search_key = crate::secret::read(a.search_key_file.as_deref(), "CVTK_IMAGE_SEARCH_KEY")?;
    let image_search =
        a.search_endpoint.filter(|e| !e.trim().is_empty()).map(|endpoint| ImageSearch { endpoint, key: search_key });
    let options = CollectOptions {
        image_search,
        timeout: std::time::Duration::from_secs_f64(a.timeout_s),
        max_bytes: (a.max_mb * 1024.0 * 1024.0) as u64,
        retries: a.retries,
        search_count: a.search_count,
        link: a.link,
        parallel: a.parallel,
        allow_private_urls: a.allow_private_urls,
        allow_http_search: a.allow_http_search,
        ..CollectOptions::default()
    };
    let (mut ds, report) = ClassificationDataset::create_from_queries_into(&a.queries, &a.out, &options)?;
    let mut kept = cvtk_dataset::KeptFixes::default();
    if let Some(m) = &a.manifest {
        // Fixes made in `cvtk annotate` on an earlier run's manifest stay.
        kept = ds
            .replace_manifest(m, ClassificationDataset::keep_fixes_from)
            .with_context(|| format!("writing the manifest {} (keeping the fixes of the one there)", m.display()))?;
    }
    if a.json {
        return print_json(
            &serde_json::json!({ "out": a.out, "manifest": a.manifest, "kept_fixes": kept, "report": report }),
        );
    }
    if kept.relabelled + kept.excluded > 0 {
        println!("kept the fixes of the earlier manifest: {} relabelled, {} excluded", kept.relabelled, kept.excluded);
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
