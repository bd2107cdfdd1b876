//! `cvtk score`: batch scoring of a folder, a manifest or a list of paths and
//! URLs into JSON Lines, CSV or Parquet; streaming, resumable, sharded.

use std::path::PathBuf;

use cvtk_model::{load_scorer, Scorer};
use cvtk_score::{score_to_file, ScoreInput, ScoreOptions, Shard};

use super::train::{BaseModelArgs, EngineArgs};
use crate::output::print_json;

/// Arguments of `cvtk score`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to score: a folder of images (searched recursively), a dataset manifest (.json), or a text
    /// file with one image path or http(s) URL per line.
    input: PathBuf,
    /// The model folder (written by `cvtk train`); without it, the base network's 1000 ImageNet classes
    /// (--base-model, pretrained).
    #[arg(long, conflicts_with_all = ["base_model", "weights", "random_init"])]
    model: Option<PathBuf>,
    /// The output: .jsonl, .csv or .parquet. An existing one is continued where it stopped.
    #[arg(long, value_parser = output_file)]
    out: PathBuf,
    /// Of a manifest, score only this part of its split: train or test.
    #[arg(long)]
    part: Option<cvtk_dataset::SplitPart>,
    /// Score only shard K of N (e.g. 0/4): the images whose path hashes to K. The N outputs together hold
    /// one unsharded run's rows. In a Kubernetes Indexed Job: --shard $JOB_COMPLETION_INDEX/N.
    #[arg(long)]
    shard: Option<Shard>,
    /// Images per forward pass (and per write: a crash loses at most this many).
    #[arg(long, default_value_t = 32, value_parser = crate::output::at_least_one)]
    batch: usize,
    /// Labels kept per image, best first.
    #[arg(long, default_value_t = 3, value_parser = crate::output::at_least_one)]
    top: usize,
    /// Threads for decoding and the model (0: one per core); 1 when several shards share a machine.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Fetch URL items from private, loopback and link-local addresses and any port too (by default only
    /// public addresses on ports 80 and 443, so a list entry cannot point into this network).
    #[arg(long)]
    allow_private_urls: bool,
    /// Replace what an earlier run left in --out, instead of continuing it. A rerun with another model,
    /// --top or --shard is refused without it.
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    base: BaseModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print the run's report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--out`: a file whose extension names a format ([`cvtk_score::Format::of`]).
fn output_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    cvtk_score::Format::of(&path).map(|_| path).map_err(|e| e.to_string())
}

/// Runs `cvtk score`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let input = ScoreInput::from_path(&args.input, args.part)?;
    // Before the engine's session is built: it takes its threads then.
    if args.threads > 0 {
        cvtk_model::engine::set_threads(args.threads);
    }
    let (model, model_id): (Box<dyn Scorer>, String) = match &args.model {
        Some(dir) => (
            Box::new(args.engine.tta(load_scorer(dir, args.base.device, args.engine.engine)?)),
            format!(
                "{} (weights {})",
                // Resolved, so that `model/`, `./model` and a link to it are one model.
                std::fs::canonicalize(dir)
                    .or_else(|_| std::path::absolute(dir))
                    .unwrap_or_else(|_| dir.clone())
                    .display(),
                cvtk_deploy::model_version_of(dir)
            ),
        ),
        None => {
            let (base, model) = args.base.imagenet_classifier(args.engine)?;
            let id =
                format!("{} ImageNet classifier (weights {})", base.arch, describe_weights(base.weights.as_deref()));
            (Box::new(model), id)
        }
    };
    let options = ScoreOptions {
        batch: args.batch,
        top: args.top,
        shard: args.shard,
        threads: args.threads,
        allow_private_urls: args.allow_private_urls,
        model_id: Some(model_id),
        restart: args.restart,
        ..ScoreOptions::default()
    };
    let report = score_to_file(&*model, &input, &args.out, &options)?;
    if args.json {
        return print_json(&report);
    }
    let shard = report.shard.as_deref().map(|s| format!(" (shard {s})")).unwrap_or_default();
    // `scored` counts every row this run wrote, the failed ones too.
    println!(
        "scored {} of {} images{shard} into {} in {:.1} s ({:.1} images/s)",
        report.scored - report.failed,
        report.scored,
        report.out.display(),
        report.seconds,
        report.images_per_s,
    );
    if report.failed > 0 {
        println!("{} could not be scored: their rows say why (\"error\")", report.failed);
    }
    if report.already_done > 0 {
        println!("{} rows were there from an earlier run and were kept", report.already_done);
    }
    Ok(())
}

/// A pretrained weights file, resolved, with its size and modification time:
/// what tells one file from another without hashing it.
fn describe_weights(path: Option<&std::path::Path>) -> String {
    let Some(path) = path else { return "none".into() };
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stamp = std::fs::metadata(&resolved)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())))
        .map(|(len, secs)| format!(", {len} bytes, modified {secs}"))
        .unwrap_or_default();
    format!("{}{stamp}", resolved.display())
}
