//! `cvtk annotate`: the annotation page for a dataset folder or manifest, with
//! a model's predictions when one is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cvtk_annotate::{manifest_for, AnnotateConfig, Prediction, Store};
use cvtk_dataset::ClassificationDataset;
use cvtk_model::{load_scorer, predict_dataset, EngineChoice};

use super::train::EngineArgs;

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
    device: cvtk_model::DeviceChoice,
    #[command(flatten)]
    engine: EngineArgs,
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

/// The model's top label and probability for every image, excluded ones too.
fn predictions(
    model_dir: &Path,
    device: cvtk_model::DeviceChoice,
    engine: EngineChoice,
    manifest: &Path,
) -> anyhow::Result<HashMap<u64, Prediction>> {
    let model = load_scorer(model_dir, device, engine)?;
    let ds = ClassificationDataset::from_manifest(manifest)?;
    Ok(predict_dataset(&model, &ds, true, 32)?
        .into_iter()
        .map(|(id, p)| (id, Prediction { label: p.label, probability: p.probability }))
        .collect())
}

/// Runs `cvtk annotate` until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let choice = manifest_for(&args.dataset, args.manifest.as_deref())?;
    if let Some(what) = choice.describe(&args.dataset) {
        eprintln!("{what}");
    }
    let manifest = choice.path().to_path_buf();
    let predictions = match &args.model {
        Some(dir) => {
            predictions(dir, args.device, args.engine.engine, &manifest).context("scoring the images with --model")?
        }
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
