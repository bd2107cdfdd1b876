//! [`LoadTest`]: concurrent requests against a scoring service, bounded in
//! time or count, with throughput, latency percentiles (an HDR histogram),
//! errors by kind and a latency plot. The counterpart of the original's
//! web-service load test. It speaks HTTP only, so it tests any scoring
//! service: `cvtk serve`, or another server that takes raw images.
//!
//! ```no_run
//! use cvtk_loadtest::{LoadTest, LoadTestStop};
//! use std::time::Duration;
//!
//! # fn main() -> cvtk_loadtest::Result<()> {
//! let report = LoadTest {
//!     endpoint: "http://127.0.0.1:8080".into(),
//!     key: Some("my-service-key-0123456789".into()),
//!     images: cvtk_loadtest::read_images("digits".as_ref(), 64)?.into_iter().map(|(_, b)| b).collect(),
//!     concurrency: 8,
//!     stop: LoadTestStop::Duration(Duration::from_secs(10)),
//!     ..LoadTest::default()
//! }
//! .run()?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hdrhistogram::Histogram;
use serde::Serialize;

use cvtk_core::progress::Progress;

/// What can go wrong setting up or running a load test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting out of range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in [`LoadTest`] or the flag.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] cvtk_core::IoError),
    /// The HTTP client could not be set up.
    #[error("HTTP client for {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig { field, reason: reason.into() }
    }

    fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(cvtk_core::IoError::new(action, path, source))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When a load test stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadTestStop {
    /// After this long (requests in flight then finish).
    Duration(Duration),
    /// After this many requests.
    Requests(u64),
}

/// How each request carries its images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Payload {
    /// cvtk's JSON list of `{"image_in_base64": ...}` items (softmax on).
    #[default]
    Json,
    /// The encoded image itself as the body, with its `image/*` content type:
    /// one image per request. Other servers take this too (TorchServe's
    /// `/predictions/NAME`).
    Raw,
}

/// A load test: `concurrency` clients, each sending one request at a time.
#[derive(Clone, Debug)]
pub struct LoadTest {
    /// The service's base URL (`http://host:port`), which is sent to its
    /// `/score` route, or the full URL of any other scoring route (for example
    /// another server's, with [`Payload::Raw`]).
    pub endpoint: String,
    /// How requests carry the images. By default, [`Payload::Json`].
    pub payload: Payload,
    /// The service key, if it needs one.
    pub key: Option<String>,
    /// Encoded images, sent in turn.
    pub images: Vec<Vec<u8>>,
    /// Clients sending at the same time. By default, 8.
    pub concurrency: usize,
    /// When to stop. By default, after 10 s.
    pub stop: LoadTestStop,
    /// Images per request. By default, 1.
    pub batch: usize,
    /// Time limit per request. By default, 30 s.
    pub request_timeout: Duration,
}

/// Latency figures, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// What a load test measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadTestReport {
    /// The endpoint tested.
    pub endpoint: String,
    /// Clients at the same time.
    pub concurrency: usize,
    /// Images per request.
    pub batch: usize,
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Requests answered 200.
    pub ok: u64,
    /// Images scored (in 200 answers).
    pub images_scored: u64,
    /// Wall time, in seconds.
    pub duration_s: f64,
    /// Answered-200 requests per second.
    pub requests_per_s: f64,
    /// Images scored per second.
    pub images_per_s: f64,
    /// Latency of all answered requests.
    pub latency_ms: Latency,
    /// Answers by HTTP status.
    pub status_counts: BTreeMap<u16, u64>,
    /// Failures by kind: `http_NNN` for error statuses, `timeout`, `connect`,
    /// `other` for requests that got no answer.
    pub errors: BTreeMap<String, u64>,
    /// 5xx answers other than deliberate back-pressure (a 503 that carries
    /// `Retry-After`): each is a server failure.
    pub server_errors: u64,
    /// (percentile, milliseconds) points of the latency distribution, for plots.
    pub percentiles: Vec<(f64, f64)>,
}

impl Default for LoadTest {
    fn default() -> Self {
        LoadTest {
            endpoint: String::new(),
            payload: Payload::Json,
            key: None,
            images: Vec::new(),
            concurrency: 8,
            stop: LoadTestStop::Duration(Duration::from_secs(10)),
            batch: 1,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Where requests go: `{endpoint}/score` for a base URL (or one that already
/// ends in `/score`), any other path as it is.
fn scoring_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let path = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest).split_once('/').map_or("", |(_, p)| p);
    if path.is_empty() || path == "score" || path.ends_with("/score") {
        format!("{}/score", trimmed.trim_end_matches("/score").trim_end_matches('/'))
    } else {
        trimmed.to_string()
    }
}

/// Reads up to `limit` image files under `dir`, in path order
/// ([`cvtk_dataset::walk::image_files`]: links followed, hidden files skipped).
pub fn read_images(dir: &Path, limit: usize) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    // The walk every command shares (cvtk_dataset::walk): what `cvtk score`
    // and `cvtk dataset create` would see in the same folder.
    let paths: Vec<PathBuf> = cvtk_dataset::walk::image_files_logged(dir).take(limit).collect();
    if paths.is_empty() {
        return Err(Error::config("images", format!("no image files under {}", dir.display())));
    }
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).map(|b| (p.clone(), b)).map_err(|e| Error::io("cannot read", p, e)))
        .collect()
}

#[derive(Default)]
struct Tally {
    hist: Option<Histogram<u64>>,
    status: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    server_errors: u64,
}

impl LoadTest {
    fn validate(&self) -> Result<()> {
        if self.images.is_empty() {
            return Err(Error::config("images", "no images to send"));
        }
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Err(Error::config("concurrency", format!("{} is not in 1..=1024", self.concurrency)));
        }
        if self.batch == 0 || self.batch > 256 {
            return Err(Error::config("batch", format!("{} is not in 1..=256", self.batch)));
        }
        if self.payload == Payload::Raw && self.batch != 1 {
            return Err(Error::config(
                "batch",
                format!("a raw request carries one image, not {}; use batch 1 or the JSON payload", self.batch),
            ));
        }
        if self.payload == Payload::Raw {
            if let Some(i) = self.images.iter().position(|b| image::guess_format(b).is_err()) {
                return Err(Error::config("images", format!("image {i} is not in a format that can be sent raw")));
            }
        }
        match self.stop {
            LoadTestStop::Duration(d) if d.is_zero() || d > Duration::from_secs(3600) => {
                Err(Error::config("duration", format!("{d:?} is not in (0, 1 h]")))
            }
            LoadTestStop::Requests(0) => Err(Error::config("requests", "must be at least 1")),
            _ => Ok(()),
        }
    }

    /// Runs the test on its own runtime and reports.
    pub fn run(&self) -> Result<LoadTestReport> {
        self.validate()?;
        let url = scoring_url(&self.endpoint);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::config("runtime", e.to_string()))?;
        // Each image as a ready JSON item (a request joins `batch` of them),
        // or as its bytes with their content type.
        let items: Arc<Vec<(&'static str, bytes::Bytes)>> = Arc::new(
            self.images
                .iter()
                .map(|b| match self.payload {
                    Payload::Json => (
                        "application/json",
                        bytes::Bytes::from(format!(
                            "{{\"image_in_base64\":\"{}\",\"parameters\":{{\"add_softmax\":true}}}}",
                            base64::engine::general_purpose::STANDARD.encode(b)
                        )),
                    ),
                    Payload::Raw => (
                        image::guess_format(b).map_or("application/octet-stream", |f| f.to_mime_type()),
                        bytes::Bytes::copy_from_slice(b),
                    ),
                })
                .collect(),
        );
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .pool_max_idle_per_host(self.concurrency)
            .build()
            .map_err(|e| Error::Http { url: url.clone(), reason: e.to_string() })?;
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let (bar_len, by_time) = match self.stop {
            LoadTestStop::Duration(d) => (d.as_secs().max(1), true),
            LoadTestStop::Requests(n) => (n, false),
        };
        let bar = Arc::new(Progress::start(bar_len, "load test"));
        let tallies = runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..self.concurrency {
                let (client, url, items, next, done) =
                    (client.clone(), url.clone(), items.clone(), next.clone(), done.clone());
                let (key, stop, batch, payload) = (self.key.clone(), self.stop, self.batch, self.payload);
                tasks.push(tokio::spawn(async move {
                    let mut t = Tally { hist: Histogram::new_with_bounds(1, 600_000_000, 3).ok(), ..Tally::default() };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        match stop {
                            LoadTestStop::Requests(n) if i >= n => break,
                            LoadTestStop::Duration(d) if started.elapsed() >= d => break,
                            _ => {}
                        }
                        let (content_type, body) = match payload {
                            Payload::Raw => items[i as usize % items.len()].clone(),
                            Payload::Json => {
                                let parts: Vec<&[u8]> = (0..batch)
                                    .map(|j| items[((i as usize) * batch + j) % items.len()].1.as_ref())
                                    .collect();
                                let body = [b"[".as_slice(), &parts.join(b",".as_slice()), b"]"].concat();
                                ("application/json", bytes::Bytes::from(body))
                            }
                        };
                        let mut req = client.post(&url).header("content-type", content_type).body(body);
                        if let Some(k) = &key {
                            req = req.bearer_auth(k);
                        }
                        let t0 = Instant::now();
                        let answer = match req.send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
                                r.bytes().await.map(|_| (status, retry_after))
                            }
                            Err(e) => Err(e),
                        };
                        let micros = t0.elapsed().as_micros().max(1) as u64;
                        match answer {
                            Ok((status, retry_after)) => {
                                if let Some(h) = t.hist.as_mut() {
                                    let _ = h.record(micros);
                                }
                                *t.status.entry(status).or_default() += 1;
                                if status >= 400 {
                                    *t.errors.entry(format!("http_{status}")).or_default() += 1;
                                }
                                if status >= 500 && !(status == 503 && retry_after) {
                                    t.server_errors += 1;
                                }
                            }
                            Err(e) => {
                                let kind = if e.is_timeout() {
                                    "timeout"
                                } else if e.is_connect() {
                                    "connect"
                                } else {
                                    "other"
                                };
                                *t.errors.entry(kind.into()).or_default() += 1;
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    t
                }));
            }
            let ticker = {
                let (bar, done) = (bar.clone(), done.clone());
                tokio::spawn(async move {
                    let mut shown = 0;
                    loop {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let now = if by_time { started.elapsed().as_secs() } else { done.load(Ordering::Relaxed) };
                        bar.inc(now.saturating_sub(shown));
                        shown = shown.max(now);
                    }
                })
            };
            let mut tallies = Vec::new();
            for t in tasks {
                if let Ok(t) = t.await {
                    tallies.push(t);
                }
            }
            ticker.abort();
            tallies
        });
        drop(bar);
        let duration = started.elapsed().as_secs_f64();
        Ok(self.report(url, tallies, duration))
    }

    fn report(&self, endpoint: String, tallies: Vec<Tally>, duration_s: f64) -> LoadTestReport {
        let mut hist: Option<Histogram<u64>> = None;
        let mut status_counts = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut server_errors_total = 0;
        for t in tallies {
            server_errors_total += t.server_errors;
            if let Some(h) = t.hist {
                match hist.as_mut() {
                    Some(all) => {
                        let _ = all.add(&h);
                    }
                    None => hist = Some(h),
                }
            }
            for (k, v) in t.status {
                *status_counts.entry(k).or_default() += v;
            }
            for (k, v) in t.errors {
                *errors.entry(k).or_default() += v;
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let (latency_ms, percentiles) = match hist.as_ref().filter(|h| !h.is_empty()) {
            Some(h) => (
                Latency {
                    p50: ms(h.value_at_quantile(0.50)),
                    p90: ms(h.value_at_quantile(0.90)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                    mean: h.mean() / 1000.0,
                },
                (0..99)
                    .map(f64::from)
                    .chain((990..=1000).map(|i| f64::from(i) / 10.0))
                    .map(|p| (p, ms(h.value_at_percentile(p))))
                    .collect(),
            ),
            None => (Latency { p50: 0.0, p90: 0.0, p99: 0.0, max: 0.0, mean: 0.0 }, Vec::new()),
        };
        let ok = status_counts.get(&200).copied().unwrap_or(0);
        let requests = status_counts.values().sum::<u64>()
            + errors.iter().filter(|(k, _)| !k.starts_with("http_")).map(|(_, v)| v).sum::<u64>();
        let server_errors = server_errors_total;
        let images_scored = ok * self.batch as u64;
        LoadTestReport {
            endpoint,
            concurrency: self.concurrency,
            batch: self.batch,
            requests,
            ok,
            images_scored,
            duration_s,
            requests_per_s: ok as f64 / duration_s.max(1e-9),
            images_per_s: images_scored as f64 / duration_s.max(1e-9),
            latency_ms,
            status_counts,
            errors,
            server_errors,
            percentiles,
        }
    }
}

impl LoadTestReport {
    /// Writes the latency distribution as a PNG or SVG plot.
    pub fn write_latency_plot(&self, path: &Path) -> Result<()> {
        let title = format!(
            "Latency, concurrency {}, batch {} ({:.1} req/s)",
            self.concurrency, self.batch, self.requests_per_s
        );
        cvtk_eval::plots::graph_latency_percentiles(&self.percentiles, &title, cvtk_eval::plots::Target::File(path))
            .map_err(|e| Error::config("plot", e.to_string()))
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let statuses: Vec<String> = self.status_counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let errors: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        format!(
            "{} requests in {:.1}s at concurrency {} (batch {}): {:.1} requests/s, {:.1} images/s\nlatency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}, mean {:.1}\nstatus: {}\nerrors: {}",
            self.requests,
            self.duration_s,
            self.concurrency,
            self.batch,
            self.requests_per_s,
            self.images_per_s,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.latency_ms.mean,
            if statuses.is_empty() { "none".into() } else { statuses.join(", ") },
            if errors.is_empty() { "none".into() } else { errors.join(", ") },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_go_to_score_and_other_paths_stay() {
        for base in
            ["http://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/score", "http://127.0.0.1:9/score/"]
        {
            assert_eq!(scoring_url(base), "http://127.0.0.1:9/score", "{base}");
        }
        assert_eq!(scoring_url("http://h:9/api/v1/score"), "http://h:9/api/v1/score");
        assert_eq!(scoring_url("http://h:9/predictions/resnet18/"), "http://h:9/predictions/resnet18");
    }

    #[test]
    fn a_raw_payload_takes_one_known_image_per_request() {
        let png = {
            let mut out = std::io::Cursor::new(Vec::new());
            image::RgbImage::new(2, 2).write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        };
        let test = LoadTest {
            endpoint: "http://127.0.0.1:9".into(),
            payload: Payload::Raw,
            images: vec![png],
            ..LoadTest::default()
        };
        assert!(test.validate().is_ok());
        let err = LoadTest { batch: 2, ..test.clone() }.validate().unwrap_err().to_string();
        assert!(err.contains("a raw request carries one image"), "{err}");
        let err = LoadTest { images: vec![b"not an image".to_vec()], ..test }.validate().unwrap_err().to_string();
        assert!(err.contains("image 0 is not in a format"), "{err}");
    }
}
