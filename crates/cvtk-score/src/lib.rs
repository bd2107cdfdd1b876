//! Batch scoring: a trained model over more images than fit in memory or on
//! one machine. [`score_to_file`] streams a [`ScoreInput`] (a folder, a
//! manifest, or a list of paths and URLs) through a classifier a batch at a
//! time into JSON Lines, CSV or Parquet ([`Format`]), with memory that does
//! not grow with the input, a progress bar with rate and ETA, bad images as
//! rows with an error, and:
//!
//! - **resumable**: rerun with the same output and it continues after the
//!   last complete row; a crash loses at most the batch being written;
//! - **sharded**: [`Shard`] `K/N` scores the items whose path hashes to `K`
//!   (CRC-32 modulo `N`), so `N` processes (a Kubernetes Indexed Job's pods)
//!   split any input, and their outputs together hold the rows of one
//!   unsharded run (concatenate JSON Lines; see docs/deployment.md).
//!
//! [`BatchScorer`] is the same scoring as an iterator of rows, for programs
//! that consume results themselves.
//!
//! ```no_run
//! use cvtk_score::{score_to_file, ScoreInput, ScoreOptions};
//! use cvtk_model::{load_scorer, DeviceChoice, EngineChoice};
//! let model = load_scorer("model".as_ref(), DeviceChoice::Cpu, EngineChoice::Auto)?;
//! let report = score_to_file(&model, &ScoreInput::Folder("photos".into()), "scores.jsonl".as_ref(), &ScoreOptions::default())?;
//! println!("{} scored, {} failed", report.scored, report.failed);
//! # Ok::<(), cvtk_score::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
mod input;
mod output;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cvtk_dataset::ImageLoader;
use cvtk_model::Scorer;
use rayon::prelude::*;
use serde::Serialize;

pub use error::{Error, Result};
pub use input::{Item, ScoreInput, Shard};
pub use output::{Format, Row};

/// How a batch run scores.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Images per forward pass (and per write). By default, 32.
    pub batch: usize,
    /// Labels kept per image, best first. By default, 3.
    pub top: usize,
    /// The part of the input this process scores; all of it by default.
    pub shard: Option<Shard>,
    /// Threads for decoding and for the model (0: one per core). By default, 0.
    pub threads: usize,
    /// Largest download of a URL item, in bytes. By default, 20 MiB.
    pub url_max_bytes: u64,
    /// Time limit per URL item. By default, 20 s.
    pub url_timeout: Duration,
    /// Fetch URL items from private, loopback and link-local addresses and
    /// any port too. By default, off: only public addresses on ports 80 and
    /// 443, so a list entry cannot make a batch pod fetch from its cluster
    /// or the cloud's metadata service.
    pub allow_private_urls: bool,
    /// What makes the scores (the model folder and its weights, say),
    /// recorded beside the output (`OUT.cvtk-score.json`, with `top` and the
    /// shard): a rerun into an output made by another model or with other
    /// options is refused instead of keeping the old rows. By default, the
    /// classifier's own description.
    pub model_id: Option<String>,
    /// Start over: remove what an earlier run left in the output. By
    /// default, off: a rerun continues it.
    pub restart: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            batch: 32,
            top: 3,
            shard: None,
            threads: 0,
            url_max_bytes: 20 << 20,
            url_timeout: Duration::from_secs(20),
            allow_private_urls: false,
            model_id: None,
            restart: false,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreReport {
    /// The output file.
    pub out: PathBuf,
    /// The shard scored (`K/N`), if any.
    pub shard: Option<String>,
    /// Images in the input (in this shard).
    pub images: u64,
    /// Rows already in the output from an earlier run, not scored again.
    pub already_done: u64,
    /// Images scored by this run.
    pub scored: u64,
    /// Of these, images that could not be scored (a row with an error).
    pub failed: u64,
    /// Wall time of this run, in seconds.
    pub seconds: f64,
    /// Images per second this run.
    pub images_per_s: f64,
}

/// Scores items in batches: an iterator of rows over an iterator of items.
pub struct BatchScorer<'a> {
    classifier: &'a dyn Scorer,
    loader: ImageLoader,
    pool: rayon::ThreadPool,
    fetcher: cvtk_http::Fetcher,
    runtime: tokio::runtime::Runtime,
    options: ScoreOptions,
}

impl<'a> BatchScorer<'a> {
    /// A scorer for `classifier` with `options`.
    pub fn new(classifier: &'a dyn Scorer, options: &ScoreOptions) -> Result<Self> {
        if options.batch == 0 || options.top == 0 {
            return Err(Error::Invalid("batch and top must be at least 1".into()));
        }
        if options.threads > 0 {
            // libtorch takes them now; an onnxruntime session took its
            // threads when it was built (call `set_threads` before compiling).
            cvtk_model::engine::set_threads(options.threads);
            if classifier.engine() == cvtk_model::Engine::Onnxruntime {
                tracing::debug!(
                    "threads {}: the onnxruntime session keeps the threads it was built with",
                    options.threads
                );
            }
        }
        let threads = options.threads;
        let loader = ImageLoader::new(cvtk_dataset::LoaderConfig { threads, ..classifier.loader_config() })?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cvtk-score-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the decoding threads: {e}")))?;
        let fetcher = cvtk_http::Fetcher::new(cvtk_http::FetchPolicy {
            max_bytes: options.url_max_bytes,
            timeout: options.url_timeout,
            public_only: !options.allow_private_urls,
            ..cvtk_http::FetchPolicy::default()
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the download runtime: {e}")))?;
        Ok(BatchScorer { classifier, loader, pool, fetcher, runtime, options: options.clone() })
    }

    /// Scores one batch of items: one row each, in order. Images that cannot
    /// be read, downloaded or decoded get a row with an error; a failure of
    /// the model itself is an error.
    pub fn score(&self, items: &[Item]) -> Result<Vec<Row>> {
        let kind = self.classifier.score_kind();
        let labels = self.classifier.labels();
        Ok(items
            .iter()
            .zip(self.score_raw(items)?)
            .map(|(item, raw)| {
                let (top, error) = match raw {
                    Ok(raw) => (cvtk_core::Ranked::top(labels, &kind.probabilities(&raw), self.options.top), None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                Row { index: item.index, id: item.id, path: item.source.clone(), top, error }
            })
            .collect())
    }

    /// The raw scores of one batch of items (of the classifier's
    /// [`Scorer::score_kind`], one value per label), in order, or for
    /// each image that cannot be read, downloaded or decoded, why; a failure
    /// of the model itself is an error.
    pub fn score_raw(&self, items: &[Item]) -> Result<Vec<std::result::Result<Vec<f32>, String>>> {
        // URLs first, all of the batch's at once.
        let mut fetched: Vec<Option<std::result::Result<Vec<u8>, String>>> = items.iter().map(|_| None).collect();
        self.runtime.block_on(async {
            let mut downloads = tokio::task::JoinSet::new();
            for (i, item) in items.iter().enumerate().filter(|(_, item)| item.is_url()) {
                let (fetcher, url) = (self.fetcher.clone(), item.source.clone());
                downloads.spawn(async move {
                    (i, fetcher.get(&url, &[]).await.map(|f| f.bytes).map_err(|e| format!("cannot download: {e}")))
                });
            }
            while let Some(done) = downloads.join_next().await {
                match done {
                    Ok((i, result)) => fetched[i] = Some(result),
                    Err(e) => return Err(Error::Invalid(format!("a download task failed: {e}"))),
                }
            }
            Ok(())
        })?;
        let loader = &self.loader;
        let decoded: Vec<std::result::Result<image::RgbImage, String>> = self.pool.install(|| {
            items
                .par_iter()
                .zip(fetched.into_par_iter())
                .map(|(item, bytes)| match bytes {
                    None => loader.load_image(Path::new(&item.source)).map_err(|e| e.to_string()),
                    Some(Ok(b)) => loader.load_image_bytes(&b, &item.source).map_err(|e| e.to_string()),
                    Some(Err(e)) => Err(e),
                })
                .collect()
        });
        // The images that decoded go to the model; each item keeps its error.
        let mut images = Vec::new();
        let errors: Vec<Option<String>> = decoded
            .into_iter()
            .map(|d| match d {
                Ok(img) => {
                    images.push(img);
                    None
                }
                Err(e) => Some(e),
            })
            .collect();
        let mut scores = if images.is_empty() {
            Vec::new()
        } else {
            self.classifier.score_images(&self.loader.to_batch(&images)?)?
        }
        .into_iter();
        Ok(errors.into_iter().map(|e| e.map_or_else(|| Ok(scores.next().unwrap_or_default()), Err)).collect())
    }

    /// The rows of `items`, a batch at a time.
    pub fn rows<I>(&'a self, items: I) -> impl Iterator<Item = Result<Vec<Row>>> + 'a
    where
        I: Iterator<Item = Result<Item>> + 'a,
    {
        let batch = self.options.batch;
        let mut items = items.peekable();
        std::iter::from_fn(move || {
            let mut chunk = Vec::with_capacity(batch);
            while chunk.len() < batch {
                match items.next()? {
                    Ok(item) => chunk.push(item),
                    Err(e) => return Some(Err(e)),
                }
                if items.peek().is_none() {
                    break;
                }
            }
            if chunk.is_empty() {
                None
            } else {
                Some(self.score(&chunk))
            }
        })
    }
}

/// Scores `input` (this `options.shard` of it) with `classifier` into `out`
/// (format by extension), continuing what an earlier run left in `out`.
pub fn score_to_file(
    classifier: &dyn Scorer,
    input: &ScoreInput,
    out: &Path,
    options: &ScoreOptions,
) -> Result<ScoreReport> {
    let format = Format::of(out)?;
    let started = Instant::now();
    let scorer = BatchScorer::new(classifier, options)?;
    let run = output::RunRecord {
        model: options.model_id.clone().unwrap_or_else(|| classifier.describe()),
        top: options.top,
        shard: options.shard.map(|s| s.to_string()),
    };
    output::check_run(out, format, &run, options.restart)?;
    let (mut sink, done) = output::Sink::open(out, format, options.top)?;
    // A counting pass first, for the progress bar's length and ETA.
    let mut images = 0u64;
    for item in input.items(options.shard)? {
        item?;
        images += 1;
    }
    let already_done = done.as_ref().map_or(0, |d| d.rows);
    if let Some(d) = &done {
        tracing::info!(out = %out.display(), "continuing: {} rows already there, up to image {}", d.rows, d.last_index);
    }
    let bar = cvtk_core::progress::Progress::start(images, "scoring");
    bar.inc(already_done.min(images));
    // Skip what the output already holds: its rows are a prefix of the
    // input's order, ending at `last_index`, whose path must still match.
    let mut items = input.items(options.shard)?;
    if let Some(d) = &done {
        loop {
            let item = items.next().transpose()?.ok_or_else(|| Error::Resume {
                path: out.to_path_buf(),
                reason: format!("it holds image {} ({}), which this input no longer has", d.last_index, d.last_path),
            })?;
            if item.index > d.last_index || (item.index == d.last_index && item.source != d.last_path) {
                return Err(Error::Resume {
                    path: out.to_path_buf(),
                    reason: format!(
                        "its rows end at image {} ({}) but the input has changed there; write to a new file",
                        d.last_index, d.last_path
                    ),
                });
            }
            if item.index == d.last_index {
                break;
            }
        }
    }
    let (mut scored, mut failed) = (0u64, 0u64);
    for rows in scorer.rows(items) {
        let rows = rows?;
        sink.write(&rows)?;
        scored += rows.len() as u64;
        failed += rows.iter().filter(|r| r.error.is_some()).count() as u64;
        bar.inc(rows.len() as u64);
    }
    drop(bar);
    sink.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(ScoreReport {
        out: out.to_path_buf(),
        shard: options.shard.map(|s| s.to_string()),
        images,
        already_done,
        scored,
        failed,
        seconds,
        images_per_s: if seconds > 0.0 { scored as f64 / seconds } else { 0.0 },
    })
}
