//! `cvtk dataset info` and `cvtk dataset split`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cvtk_dataset::{ClassificationDataset, ScanOptions, Split};
use serde::Serialize;

use crate::output::print_json;

/// `cvtk dataset ...`
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Counts per label and skipped files, for a folder or a manifest.
    Info(InfoArgs),
    /// Split a dataset into train and test parts and write a manifest.
    Split(SplitArgs),
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
