//! `cvtk`: the command-line program. It parses arguments, calls the cvtk crates
//! and prints; no logic lives here that a library user would need.
//!
//! Exit codes: 0 success, 1 runtime error (the message says what to do next),
//! 2 usage error (bad flags or arguments).

mod commands;
mod output;
mod secret;

use std::process::ExitCode;

use clap::Parser;

/// Image classification by transfer learning: datasets, models, evaluation, deployment.
#[derive(Parser, Debug)]
#[command(
    name = "cvtk",
    version,
    about = "Image classification by transfer learning: datasets, augmentation, models, evaluation, deployment",
    long_about = None,
    propagate_version = true,
    after_help = "The workflow: sample-data (or your own folder per label) -> dataset split -> augment -> train -> \
                  evaluate -> deploy create -> loadtest. Every subcommand has --help; most have --json.\n\
                  Exit codes: 0 success, 1 runtime error (the message says what to do next), 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // Long work shows indicatif bars on stderr (when it is a terminal).
    cvtk_dataset::progress::set_reporter(cvtk_dataset::progress::TerminalProgress);
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each cause once: the library errors
/// already print their source (an I/O error after the path), so a cause whose
/// text is there already is not repeated.
fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Logs go to stderr through `tracing`; `RUST_LOG` sets the level (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
