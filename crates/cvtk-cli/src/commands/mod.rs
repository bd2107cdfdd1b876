//! The subcommands, one module each.

mod annotate;
mod audit;
mod augment;
mod dataset;
mod deploy;
mod evaluate;
mod explain;
mod export;
mod health;
mod loadtest;
mod predict;
mod sample_data;
mod score;
mod serve;
mod train;
mod weights;

use clap::Subcommand;

/// Every `cvtk` subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write real sample images (MNIST, Fashion-MNIST) as a folder per label.
    SampleData(sample_data::Args),
    /// Inspect and split datasets.
    #[command(subcommand)]
    Dataset(dataset::Command),
    /// Look at a dataset's images and correct their labels in the browser (saved to its manifest).
    Annotate(annotate::Args),
    /// Find the images whose labels are likely wrong (confident learning on out-of-sample probabilities).
    Audit(audit::Args),
    /// Write augmented copies of a dataset's images (imgaug-style pipelines in JSON or TOML).
    Augment(augment::Args),
    /// Train a classifier: fine-tune a network, or a linear SVM on its features.
    Train(train::Args),
    /// Classify images with a trained model, or a pretrained network's ImageNet classes.
    Predict(predict::Args),
    /// Evaluate a model on a dataset: accuracy, confusion matrix, curves, plots, HTML report.
    Evaluate(evaluate::Args),
    /// Show where in each image the evidence for a label was: overlay PNGs and the maps' numbers.
    Explain(explain::Args),
    /// Score a folder, a manifest or a list of paths/URLs into JSON Lines, CSV or Parquet (resumable, sharded).
    Score(score::Args),
    /// Write a model (or a base network's ImageNet classifier) as an ONNX file that runs without cvtk.
    Export(export::Args),
    /// Run the REST scoring service for a model folder.
    Serve(serve::Args),
    /// Local deployments (start, list, show, score, delete) and Docker/Kubernetes artifacts.
    #[command(subcommand)]
    Deploy(deploy::Command),
    /// Load-test a scoring service: throughput, latency percentiles, errors.
    Loadtest(loadtest::Args),
    /// Whether a scoring service answers (exit status 0 on 2xx): the container image's health check.
    Health(health::Args),
    /// Pretrained weights: list what cvtk finds, install files where it looks (~/.cvtk/weights).
    #[command(subcommand)]
    Weights(weights::Command),
}

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::SampleData(args) => sample_data::run(args),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Annotate(args) => annotate::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Augment(args) => augment::run(args),
        Command::Train(args) => train::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Score(args) => score::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Deploy(cmd) => deploy::run(cmd),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Health(args) => health::run(args),
        Command::Weights(cmd) => weights::run(cmd),
    }
}
