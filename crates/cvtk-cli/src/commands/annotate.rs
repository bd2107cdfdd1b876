//! `cvtk annotate`: the annotation page for a dataset folder or manifest, with
//! a model's predictions when one is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cvtk_annotate::{AnnotateConfig, Prediction, Store};
use cvtk_dataset::{ClassificationDataset, ImageInfo, Label};
use cvtk_model::{first_max, load_classifier};

use super::dataset::open_dataset;

/// Arguments of `cvtk annotate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Every change is saved to the manifest at once. A folder gets a manifest beside it \
    (FOLDER.json, or --manifest), made on the first run and reused after. \
    Keys on the page: arrows move, 1-9 set a label, x excludes, Enter opens large, u undoes.")]
pub struct Args {
    /// A folder with one sub-folder per label, or a manifest (.json).
    dataset: PathBuf,
    /// For a folder: the manifest to write and edit (default: FOLDER.json beside the folder).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// A model folder from `cvtk train`: show its predictions and offer "most doubtful first".
    #[arg(long)]
    model: Option<PathBuf>,
    /// Device for the model's predictions: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Address to bind; anything but loopback also needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// Allow binding beyond loopback (anyone who reaches the page can edit the dataset).
    #[arg(long)]
    allow_remote: bool,
}

/// The manifest to edit: the one given, or one made for a folder.
fn manifest_for(args: &Args) -> anyhow::Result<PathBuf> {
    if args.dataset.is_file() {
        if args.manifest.is_some() {
            bail!("--manifest is for a dataset folder; {} is already a manifest", args.dataset.display());
        }
        return Ok(args.dataset.clone());
    }
    if !args.dataset.is_dir() {
        bail!("{} is neither a dataset folder nor a manifest", args.dataset.display());
    }
    let manifest = match &args.manifest {
        Some(m) => m.clone(),
        None => {
            let folder = std::fs::canonicalize(&args.dataset)
                .with_context(|| format!("cannot resolve {}", args.dataset.display()))?;
            let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
            folder.with_file_name(format!("{name}.json"))
        }
    };
    if manifest.is_file() {
        eprintln!("using the existing manifest {} (delete it to scan the folder again)", manifest.display());
    } else {
        let ds = open_dataset(&args.dataset, false)?;
        ds.to_manifest(&manifest).with_context(|| format!("writing the manifest {}", manifest.display()))?;
        eprintln!("wrote the manifest {} ({} images)", manifest.display(), ds.len());
    }
    Ok(manifest)
}

/// The model's top label and probability for every image, excluded ones too.
fn predictions(model_dir: &Path, device: &str, manifest: &Path) -> anyhow::Result<HashMap<u64, Prediction>> {
    let device = cvtk_model::resolve_device(Some(device))?;
    let model = load_classifier(model_dir, device)?;
    let ds = ClassificationDataset::from_manifest(manifest)?;
    // Score under the model's labels: the dataset's own may include ones the model never saw.
    let images: Vec<ImageInfo> =
        ds.images().iter().chain(ds.excluded()).map(|i| ImageInfo { labels: vec![0], ..i.clone() }).collect();
    let labels: Vec<Label> = model.labels().iter().map(|name| Label { name: name.clone() }).collect();
    let all = ClassificationDataset::from_parts(ds.name(), labels, images)?;
    let scores = model.score_dataset(&all, 32)?.probabilities();
    Ok(scores
        .ids
        .iter()
        .zip(&scores.values)
        .map(|(&id, row)| {
            let best = first_max(row);
            (id, Prediction { label: scores.labels[best].clone(), score: row[best] })
        })
        .collect())
}

/// Runs `cvtk annotate` until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = manifest_for(&args)?;
    let predictions = match &args.model {
        Some(dir) => predictions(dir, &args.device, &manifest).context("scoring the images with --model")?,
        None => HashMap::new(),
    };
    let store = Store::open(&manifest, predictions)?;
    let config = AnnotateConfig { host: args.host, port: args.port, allow_remote: args.allow_remote };
    cvtk_annotate::serve(store, &config, |addr| {
        // The first line of stdout is the URL, for scripts and tests.
        println!("http://{addr}/");
        eprintln!("annotating {} (Ctrl-C to stop)", manifest.display());
    })?;
    Ok(())
}
