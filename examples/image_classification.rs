//! The original notebook, steps 1 and 3-8, in one program: create a dataset
//! from a folder per label and split it, augment it (optional), define a model
//! on the pretrained default network, train it (fine-tuning, or an SVM on its
//! features), evaluate it (accuracy, confusion matrix, plots, HTML report),
//! deploy it as a local REST service, score the test images over HTTP, load-test
//! the service and delete it. (Step 2, looking at and correcting labels, is the
//! browser annotation tool.)
//!
//! ```sh
//! make setup && cargo build --release -p cvtk-cli      # the service runs the cvtk program
//! cargo run --release --example image_classification   # what `make demo` runs
//! cargo run --release --example image_classification -- --data DIR --classifier svm
//! cargo run --release --example image_classification -- --calibrate    # temperature-scaled probabilities
//! cargo run --release --example image_classification -- --base-model resnet50 --weights resnet50-0676ba61.pth
//! ```
//! It prints what the notebook printed: counts per label and split, one
//! `Finished Epoch[...]` line per epoch, accuracies and the confusion matrix,
//! the service URL, HTTP timings and the load-test figures, then where the
//! report, plots, model and logs are. docs/guide.md shows a recorded run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use cvtk::augment::{augment_dataset, Pipeline};
use cvtk::core::StorageContext;
use cvtk::dataset::sample::{write_label_tree, SampleSource};
use cvtk::dataset::ClassificationDataset;
use cvtk::deploy::api::ItemResult;
use cvtk::deploy::{DeployConfig, Deployment};
use cvtk::eval::{write_report, ClassificationEvaluation, EvaluationSummary, ReportImage, ReportOptions};
use cvtk::loadtest::{LoadTest, LoadTestStop};
use cvtk::model::{
    compile, resolve_device, Architecture, BaseModel, Classifier, EngineChoice, EpochCallback, EpochStats, Featurizer,
    LrSchedule, Scorer, SvmClassifier, SvmParams, TrainConfig, TrainHooks, TransferModel,
};

/// The notebook's eight steps on a folder of images per label.
#[derive(Parser)]
struct Args {
    /// A folder with one sub-folder of images per label (default: 4 MNIST digits, 60 each, from the sample data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where everything is written.
    #[arg(long, default_value = "outputs/image_classification")]
    out: PathBuf,
    /// dnn: fine-tune the network; svm: a linear SVM on its features.
    #[arg(long, default_value = "dnn", value_parser = ["dnn", "svm"])]
    classifier: String,
    /// The base network.
    #[arg(long, default_value = "efficientnet-lite0")]
    base_model: String,
    /// Its weights file (default: the installed pretrained weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Input size (default: 112 for the built-in digits, else the network's own).
    #[arg(long)]
    image_size: Option<u32>,
    /// Epochs of fine-tuning: the original's schedule shape (a rate, then a tenth of it) over this many epochs.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Learning rate of the first part of the schedule.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// An augmentation pipeline (a JSON or TOML file, or a built-in one: flip_crop, photo): one augmented
    /// copy of each training image.
    #[arg(long)]
    augment: Option<PathBuf>,
    /// Calibrate the fine-tuned network's probabilities: hold out 10% of the
    /// training images and fit a temperature on them (an SVM is always calibrated).
    #[arg(long)]
    calibrate: bool,
    /// Seconds of load test.
    #[arg(long, default_value_t = 10)]
    loadtest_seconds: u64,
    /// Seed of the split, the initialisation and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").init();
    // The deployment below starts this program again as its server: this call runs it there.
    cvtk::deploy::serve_if_deployed();
    cvtk::core::progress::set_reporter(cvtk::core::progress::TerminalProgress);
    let args = Args::parse();
    let storage = StorageContext::under(&args.out);
    std::fs::create_dir_all(&args.out)?;

    println!("== 1. Create a dataset and split it");
    let root = match &args.data {
        Some(d) => d.clone(),
        None => sample_digits(&args.out.join("digits"))?,
    };
    let mut dataset = ClassificationDataset::open(&root)?;
    println!("{} images, {} labels, from {}", dataset.len(), dataset.labels().len(), root.display());
    for (label, n) in dataset.labels().iter().zip(dataset.counts_per_label()) {
        println!("  {:<16} {n}", label.name);
    }
    for s in dataset.skipped() {
        println!("  skipped {}: {}", s.path, s.reason);
    }
    let split = dataset.split(0.66, true, args.seed)?;
    println!("split (stratified, 66% train): {} train, {} test", split.train.len(), split.test.len());
    dataset.set_split(split)?;
    let manifest = args.out.join("dataset.json");
    dataset.to_manifest(&manifest)?;
    let (mut train, test) = (dataset.train()?, dataset.test()?);

    if let Some(file) = &args.augment {
        println!("\n== 3. Augment the training images");
        let pipeline = Pipeline::open(file)?;
        train = augment_dataset(&train, &[pipeline], &storage, args.seed)?;
        println!("{} training images after augmentation (originals plus one copy each)", train.len());
    }

    println!("\n== 4. Define the model on a pretrained network");
    let arch: Architecture = args.base_model.parse()?;
    let base = BaseModel::resolve(arch, args.weights.clone(), false)?;
    let image_size = args.image_size.or(args.data.is_none().then_some(112));
    let device = resolve_device(Some(&args.device))?;
    println!("{:?} at {} px on {device:?}", arch, image_size.unwrap_or(arch.default_image_size()));

    println!("\n== 5. Train ({})", args.classifier);
    let started = Instant::now();
    let model: Box<dyn Classifier> = if args.classifier == "svm" {
        let featurizer = Featurizer::new(&base, image_size, device)?.compile(EngineChoice::Auto)?;
        Box::new(SvmClassifier::fit(featurizer, &train, &SvmParams::default())?)
    } else {
        let n = train.len();
        let config = TrainConfig {
            lr_per_mb: LrSchedule::step(args.lr, args.epochs),
            seed: args.seed,
            calibration_holdout: args.calibrate.then_some(0.1),
            ..TrainConfig::default()
        };
        let hooks = TrainHooks {
            tensorboard_logdir: Some(args.out.join("tensorboard")),
            on_epoch: Some(Arc::new(move |s: &EpochStats, epochs: usize| println!("{}", s.summary_line(epochs, n)))
                as EpochCallback),
        };
        let mut model = TransferModel::new_seeded(train.label_names(), &base, image_size, device, args.seed)?;
        model.train_with(&train, &config, Some(&test), &hooks)?;
        Box::new(model)
    };
    println!("trained in {:.1}s: {}", started.elapsed().as_secs_f64(), model.describe());
    let model_dir = args.out.join("model");
    model.save(&model_dir)?;

    println!("\n== 6. Evaluate on the test images");
    // onnxruntime scores when its library loads, else libtorch.
    let scorer = compile(&*model, EngineChoice::Auto)?;
    let scores = scorer.score_dataset(&test, 32)?;
    let evaluation = ClassificationEvaluation::from_scores(&scores)?;
    let summary = EvaluationSummary::new(&evaluation);
    println!("class-averaged accuracy: {:.2}%", 100.0 * summary.class_averaged_accuracy);
    println!("overall accuracy:        {:.2}%", 100.0 * summary.accuracy);
    println!(
        "calibration error (ECE): {:.4}, Brier score {:.4} (probabilities from {})",
        summary.expected_calibration_error, summary.brier_score, summary.score_kind
    );
    if let Some(u) = &summary.uncalibrated {
        println!("  without calibration:   ECE {:.4}, Brier score {:.4}", u.expected_calibration_error, u.brier_score);
    }
    println!("confusion matrix:\n{}", summary.confusion_table());
    let mut images: Vec<ReportImage> =
        test.images().iter().map(|i| ReportImage { id: i.id, path: i.path.clone(), overlay: None }).collect();
    // Where the evidence for each previewed image's prediction was: the maps
    // of the report's top losses and result cards (as `cvtk evaluate` adds them).
    let previewed = cvtk::eval::preview_rows(&evaluation, 0);
    let paths: Vec<std::path::PathBuf> = previewed.iter().map(|&i| images[i].path.clone()).collect();
    match cvtk::model::explain::overlay_thumbnails(&scorer, &paths, 112) {
        Ok(overlays) => previewed.iter().zip(overlays).for_each(|(&i, overlay)| images[i].overlay = overlay),
        Err(e) => println!("the report shows no maps: {e}"), // small-cnn has none
    }
    let report_options = ReportOptions {
        title: format!("{} on {} ({} test images)", args.base_model, dataset.name(), test.len()),
        model: model.describe(),
        images,
        history: model.train_eval_accs(),
        max_thumbnails: 0,
    };
    let report = write_report(&args.out.join("report"), &evaluation, &report_options)?;

    println!("\n== 7. Deploy it as a local web service and score the test images over HTTP");
    let config = DeployConfig { device: args.device.clone(), ..DeployConfig::default() };
    let service = Deployment::new("image-classification", &model_dir, config).deploy(&storage)?;
    println!("service {} at {}/score (key in {})", service.name, service.url, service.key_file.display());
    let result = score_over_http(&service, &test, &scores.probabilities().values);
    let loadtest = result.and_then(|()| {
        println!("\n== 8. Load-test the service ({} s at concurrency 8)", args.loadtest_seconds);
        let images = test.images().iter().take(64).map(|i| std::fs::read(&i.path)).collect::<Result<Vec<_>, _>>()?;
        let report = LoadTest {
            endpoint: service.url.clone(),
            key: Some(service.key()?),
            images,
            concurrency: 8,
            stop: LoadTestStop::Duration(Duration::from_secs(args.loadtest_seconds)),
            ..LoadTest::default()
        }
        .run()?;
        println!("{}", report.summary());
        report.write_latency_plot(&args.out.join("loadtest-latency.png"))?;
        Ok(())
    });
    service.delete(&storage)?;
    println!("service deleted");
    loadtest?;

    println!("\n== Done. Results are in {}:", args.out.display());
    println!("   manifest:    {}", manifest.display());
    println!("   model:       {}", model_dir.display());
    println!("   report:      {}", report.html.display());
    println!("   plots:       {}", report.html.parent().unwrap_or(Path::new(".")).display());
    println!("   load test:   {}", args.out.join("loadtest-latency.png").display());
    if args.classifier == "dnn" {
        println!("   tensorboard: {} (tensorboard --logdir ...)", args.out.join("tensorboard").display());
    }
    Ok(())
}

/// Scores every test image over HTTP, one request each, timing the calls, and
/// checks the answers against the in-process probabilities.
fn score_over_http(
    service: &cvtk::deploy::DeploymentRecord,
    test: &ClassificationDataset,
    local: &[Vec<f32>],
) -> anyhow::Result<()> {
    let client = service.client()?;
    let mut times = Vec::new();
    let mut right = 0;
    let mut max_diff = 0f32;
    for (img, want) in test.images().iter().zip(local) {
        let t = Instant::now();
        let answer = client.score_files(&[&img.path], true)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let ItemResult::Scored(s) = &answer[0] else {
            bail!("{} failed over HTTP: {:?}", img.path.display(), answer[0])
        };
        right += usize::from(test.label_names()[img.label()] == s.label);
        max_diff = s.scores.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(max_diff, f32::max);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} images scored over HTTP: accuracy {:.2}%, median {:.1} ms per call, slowest {:.1} ms; largest difference from in-process scores {max_diff:.1e}",
        times.len(),
        100.0 * right as f64 / times.len().max(1) as f64,
        times[times.len() / 2],
        times.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

/// Writes 4 MNIST digits, 60 each, from the sample data (fetched by `make setup`).
fn sample_digits(out: &Path) -> anyhow::Result<PathBuf> {
    let searched = cvtk::dataset::sample::sample_data_dirs();
    let data_dir = SampleSource::Mnist5k.find(&searched).with_context(|| {
        format!(
            "no mnist-5k sample data in {}: run `make setup` (or `cvtk sample-data mnist-5k`, which downloads it)",
            searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let images = SampleSource::Mnist5k
        .load(&data_dir)
        .with_context(|| format!("reading the sample data in {}", data_dir.display()))?;
    let classes: Vec<String> = ["0", "1", "2", "3"].iter().map(|s| s.to_string()).collect();
    let _ = std::fs::remove_dir_all(out);
    write_label_tree(&images, &SampleSource::Mnist5k.class_names(), out, Some(&classes), Some(60), true)?;
    Ok(out.to_path_buf())
}
