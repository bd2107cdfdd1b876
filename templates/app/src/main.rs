//! A transfer-learning classifier in 35 lines: a folder per label in, a
//! stratified split, a linear SVM on EfficientNet-Lite0's ImageNet features,
//! and the test part's accuracy out.
//!
//! Usage: app DATASET_DIR

use cvtk::dataset::ClassificationDataset;
use cvtk::eval::ClassificationEvaluation;
use cvtk::model::{compile, Architecture, BaseModel, Device, EngineChoice, Featurizer, Scorer, SvmClassifier, SvmParams};

fn main() -> anyhow::Result<()> {
    // cvtk's logs on stderr; RUST_LOG sets the level (default: warnings).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: app DATASET_DIR (a folder per label)"))?;
    let mut dataset = ClassificationDataset::create_from_dir("app", &dir)?;
    let split = dataset.split(0.66, true, 0)?;
    dataset.set_split(split)?;
    let (train, test) = (dataset.train()?, dataset.test()?);
    println!(
        "{} images, {} labels: {} train, {} test",
        dataset.len(),
        train.label_names().len(),
        train.len(),
        test.len()
    );

    // Pretrained weights are found by file name in $CVTK_WEIGHTS_DIR, ./weights,
    // ~/.cvtk/weights (`cvtk weights install FILE`), then the cvtk checkout's weights/.
    let base = BaseModel::pretrained(Architecture::EfficientnetLite0)?;
    println!("weights: {}", base.weights.as_ref().map(|w| w.display().to_string()).unwrap_or_default());
    // onnxruntime computes the features and scores when it loads, else libtorch.
    let featurizer = Featurizer::new(&base, Some(112), Device::Cpu)?.compile(EngineChoice::Auto)?;
    let svm = SvmClassifier::fit(featurizer, &train, &SvmParams::default())?;

    let scorer = compile(&svm, EngineChoice::Auto)?;
    let evaluation = ClassificationEvaluation::from_scores(&scorer.score_dataset(&test, 32)?)?;
    println!("accuracy: {:.4}", evaluation.accuracy());
    println!("class-averaged accuracy: {:.4}", evaluation.class_averaged_accuracy());
    Ok(())
}
