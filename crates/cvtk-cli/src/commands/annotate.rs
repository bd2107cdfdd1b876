//! `cvtk annotate`: the annotation page for a dataset folder or manifest, with
//! a model's predictions when one is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cvtk_annotate::{manifest_for, AnnotateConfig, Overlays, Prediction, Store};
use cvtk_dataset::ClassificationDataset;
use cvtk_model::explain::{explain_files, overlay_png, Method};
use cvtk_model::{load_scorer, predict_dataset, Classifier, Compiled, Scorer};

use super::train::EngineArgs;

/// Arguments of `cvtk annotate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Every change is saved to the manifest at once. A folder gets a manifest beside it \
    (FOLDER.json, or --manifest), made on the first run and reused after. \
    Keys on the page: arrows move, 1-9 set a label, x excludes, Enter opens large, m shows the model's map \
    on the large view (with --model), u undoes.")]
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

/// A model folder loaded for scoring on the engine chosen.
type Model = Compiled<Box<dyn Classifier>>;

/// The model's top label and probability for every image, excluded ones
/// too, and the model itself.
fn predictions(
    model_dir: &Path,
    device: cvtk_model::DeviceChoice,
    engine: EngineArgs,
    manifest: &Path,
) -> anyhow::Result<(HashMap<u64, Prediction>, Model)> {
    let model = engine.tta(load_scorer(model_dir, device, engine.engine)?);
    let ds = ClassificationDataset::from_manifest(manifest)?;
    let predictions = predict_dataset(&model, &ds, true, 32)?
        .into_iter()
        .map(|(id, p)| (id, Prediction { label: p.label, probability: p.probability }))
        .collect();
    Ok((predictions, model))
}

/// The large view's maps: the map of the model's predicted label over the
/// image, drawn on request as `cvtk explain` draws it. None when the model
/// has no maps (tried on the first image).
fn overlays(model: Model, first: Option<&Path>) -> Option<Overlays> {
    if let Some(path) = first {
        // Only a model without maps turns them off; an image that does not
        // decode is that image's problem, not the model's.
        let probe = cvtk_dataset::ImageLoader::new(model.loader_config())
            .and_then(|loader| loader.load_batch(&[path]))
            .map_err(cvtk_model::Error::from)
            .and_then(|batch| model.class_maps(&batch));
        match probe {
            Err(cvtk_model::Error::Dataset(e)) => tracing::info!("could not try the maps on {}: {e}", path.display()),
            Err(e) => {
                tracing::info!("no maps on the large view: {e}");
                return None;
            }
            Ok(_) => {}
        }
    }
    let model = std::sync::Mutex::new(model);
    Some(std::sync::Arc::new(move |_id, path: &Path| {
        let model = model.lock().unwrap_or_else(|p| p.into_inner());
        let (_, explained) = explain_files(&*model, &[path.to_path_buf()], None, Method::Cam).ok()?.pop()?;
        overlay_png(&explained.ok()?, path, &model.loader_config()).ok()
    }))
}

/// Runs `cvtk annotate` until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let choice = manifest_for(&args.dataset, args.manifest.as_deref())?;
    if let Some(what) = choice.describe(&args.dataset) {
        eprintln!("{what}");
    }
    let manifest = choice.path().to_path_buf();
    let (predictions, model) = match &args.model {
        Some(dir) => {
            let (p, m) =
                predictions(dir, args.device, args.engine, &manifest).context("scoring the images with --model")?;
            (p, Some(m))
        }
        None => (HashMap::new(), None),
    };
    let mut store = Store::open(&manifest, predictions)?;
    if let Some(model) = model {
        let first = ClassificationDataset::from_manifest(&manifest)?.images().first().map(|i| i.path.clone());
        if let Some(maps) = overlays(model, first.as_deref()) {
            store = store.with_overlays(maps);
        }
    }
    let config = AnnotateConfig { host: args.host, port: args.port, allow_remote: args.allow_remote };
    cvtk_annotate::serve(store, &config, |addr| {
        // The first line of stdout is the URL, for scripts and tests.
        println!("http://{addr}/");
        eprintln!("annotating {} (Ctrl-C to stop)", manifest.display());
    })?;
    Ok(())
}
