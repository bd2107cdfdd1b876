//! Step 1 of the original notebook: create a dataset from a folder per label,
//! split it stratified, and save it as a manifest.
//!
//! ```sh
//! scripts/fetch-sample-data.sh mnist-5k
//! cargo run --release -p cvtk-cli -- sample-data mnist-5k --out outputs/digits --classes 0,1,2 --per-class 21
//! cargo run --release --example create_dataset -- outputs/digits --out outputs/digits.json
//! ```
//! prints the counts per label (21 each), then `split: 41 train / 22 test`.

use std::path::PathBuf;

use clap::Parser;
use cvtk::dataset::ClassificationDataset;

/// Create a dataset from a folder per label and split it.
#[derive(Parser)]
struct Args {
    /// A folder holding one sub-folder per label.
    root: PathBuf,
    /// Where to write the manifest.
    #[arg(long, default_value = "outputs/dataset.json")]
    out: PathBuf,
    /// Fraction of images used for training.
    #[arg(long, default_value_t = 0.66)]
    train_size: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args = Args::parse();
    let mut dataset = ClassificationDataset::create_from_dir("dataset", &args.root)?;
    println!("{} images, {} labels", dataset.len(), dataset.labels().len());
    for (label, n) in dataset.labels().iter().zip(dataset.counts_per_label()) {
        println!("  {:<12} {n}", label.name);
    }
    for s in dataset.skipped() {
        println!("  skipped {}: {}", s.path, s.reason);
    }
    let split = dataset.split(args.train_size, true, args.seed)?;
    println!("split: {} train / {} test", split.train.len(), split.test.len());
    dataset.set_split(split)?;
    dataset.to_manifest(&args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
