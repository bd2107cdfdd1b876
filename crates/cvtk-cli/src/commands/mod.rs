//! The subcommands, one module each.

mod dataset;
mod sample_data;

use clap::Subcommand;

/// Every `cvtk` subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write real sample images (MNIST, Fashion-MNIST) as a folder per label.
    SampleData(sample_data::Args),
    /// Inspect and split datasets.
    #[command(subcommand)]
    Dataset(dataset::Command),
}

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::SampleData(args) => sample_data::run(args),
        Command::Dataset(cmd) => dataset::run(cmd),
    }
}
