//! [`collect_images`] and the [`CreateFromQueries`] constructors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cvtk_core::progress::Progress;
use cvtk_core::{write_atomic, write_json_atomic, StorageContext};
use cvtk_dataset::decode::{self, has_image_extension, DEFAULT_MAX_PIXELS};
use cvtk_dataset::ClassificationDataset;
use cvtk_http::{FetchError, FetchPolicy, Fetcher};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::queries::is_url;
use crate::{Error, ImageSearch, Queries, Query, Result};

/// The state file in the output folder (hidden, so dataset scans skip it).
pub const STATE_FILE: &str = ".cvtk-collect.json";

/// How [`collect_images`] fetches and checks images.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// Where text queries go. By default, from `CVTK_IMAGE_SEARCH_ENDPOINT` and
    /// `CVTK_IMAGE_SEARCH_KEY` ([`ImageSearch::from_env`]); without one, text
    /// queries are an error.
    pub image_search: Option<ImageSearch>,
    /// Time limit of one HTTP request (connect, headers and body). Default 20 s.
    pub timeout: Duration,
    /// The largest download accepted, in bytes. Default 20 MiB.
    pub max_bytes: u64,
    /// Retries after a transient failure (timeout, connection error, 429, 5xx). Default 3.
    pub retries: u32,
    /// The first retry's wait; doubled each time. Default 500 ms.
    pub backoff: Duration,
    /// Results per text query when the query file does not say. Default 50.
    pub search_count: usize,
    /// The largest image accepted, in pixels (decompression-bomb guard).
    pub max_pixels: u64,
    /// Link local files (symbolic links) instead of copying them.
    pub link: bool,
    /// Downloads in flight at once. Default 8.
    pub parallel: usize,
    /// Fetch from private, loopback and link-local addresses and any port
    /// too. By default, off: only public addresses on ports 80 and 443, so a
    /// search result or a query-file entry cannot make cvtk fetch from the
    /// user's network or a cloud metadata service.
    pub allow_private_urls: bool,
    /// Accept an `http://` image-search endpoint, which sends the search key
    /// in clear text. By default, off: the endpoint must be https.
    pub allow_http_search: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            image_search: ImageSearch::from_env(),
            timeout: Duration::from_secs(20),
            max_bytes: 20 << 20,
            retries: 3,
            backoff: Duration::from_millis(500),
            search_count: 50,
            max_pixels: DEFAULT_MAX_PIXELS,
            link: false,
            parallel: 8,
            allow_private_urls: false,
            allow_http_search: false,
        }
    }
}

/// An image added to the output folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Its label.
    pub label: String,
    /// Where it came from: a URL or a local file.
    pub source: String,
    /// The file written, relative to the output folder.
    pub file: String,
}

/// A source whose bytes were already collected (same SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The label it was asked for under.
    pub label: String,
    /// Where it came from.
    pub source: String,
    /// The file that already holds the same bytes, relative to the output folder.
    pub same_as: String,
}

/// A source that gave no image, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The label it was asked for under.
    pub label: String,
    /// The URL, file, folder or search.
    pub source: String,
    /// What went wrong.
    pub reason: String,
}

/// What [`collect_images`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CollectReport {
    /// Images added by this run.
    pub added: Vec<Collected>,
    /// Sources already collected by an earlier run (not fetched again).
    pub already_there: usize,
    /// Sources dropped because their bytes were already collected.
    pub duplicates: Vec<Duplicate>,
    /// Sources that gave no image.
    pub failures: Vec<Failure>,
    /// Images per label in the output folder after this run.
    pub per_label: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// `label \t source` -> file (relative to the output folder) holding its bytes.
    sources: BTreeMap<String, String>,
    /// `query \t count` -> result URLs, so a re-run does not search again.
    searches: BTreeMap<String, Vec<String>>,
}

fn state_key(label: &str, source: &str) -> String {
    format!("{label}\t{source}")
}

/// Bytes fetched, and the content type the server claimed (for messages).
type Fetched = (Vec<u8>, String);

/// Downloads through the shared bounded GET, blocking, with retries and
/// exponential backoff on transient failures.
struct Downloader {
    runtime: tokio::runtime::Runtime,
    fetcher: Fetcher,
    retries: u32,
    backoff: Duration,
    allow_http_search: bool,
}

impl Downloader {
    fn new(options: &CollectOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cvtk-collect")
            .enable_all()
            .build()
            .map_err(|e| Error::InvalidConfig { field: "http client", reason: e.to_string() })?;
        let policy = FetchPolicy {
            max_bytes: options.max_bytes,
            timeout: options.timeout,
            public_only: !options.allow_private_urls,
            ..FetchPolicy::default()
        };
        let fetcher =
            Fetcher::new(policy).map_err(|e| Error::InvalidConfig { field: "http client", reason: e.to_string() })?;
        Ok(Downloader {
            runtime,
            fetcher,
            retries: options.retries,
            backoff: options.backoff,
            allow_http_search: options.allow_http_search,
        })
    }

    /// GETs `url` with the extra `headers`, retrying transient failures.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> std::result::Result<Fetched, String> {
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            match self.runtime.block_on(self.fetcher.get(url, headers)) {
                Ok(f) => return Ok((f.bytes, f.content_type.unwrap_or_default())),
                Err(e) if !e.is_transient() => return Err(describe(&e)),
                Err(e) if attempt >= self.retries => {
                    return Err(if self.retries == 0 {
                        describe(&e)
                    } else {
                        format!("{} (after {} retries)", describe(&e), self.retries)
                    });
                }
                Err(e) => {
                    tracing::debug!(url, attempt, "retrying after: {e}");
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }
}

fn describe(e: &FetchError) -> String {
    match e {
        FetchError::TooLarge { limit } => format!("body is over the limit of {limit} bytes"),
        other => other.to_string(),
    }
}

/// Checks that `bytes` are an image cvtk can decode; returns the file extension.
fn check_image(
    bytes: &[u8],
    content_type: &str,
    source: &str,
    max_pixels: u64,
) -> std::result::Result<&'static str, String> {
    let format = image::guess_format(bytes).map_err(|_| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).trim().to_string();
        let claimed = if content_type.is_empty() { String::new() } else { format!("sent as {content_type}, ") };
        if start.is_empty() {
            format!("not an image ({claimed}empty body)")
        } else {
            format!("not an image ({claimed}starts with {start:?})")
        }
    })?;
    decode::decode_rgb_bytes(bytes, Path::new(source), max_pixels).map_err(|e| match e {
        cvtk_dataset::Error::Decode { reason, .. } => format!("not a usable image: {reason}"),
        other => other.to_string(),
    })?;
    Ok(format.extensions_str().first().copied().unwrap_or("img"))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(default)]
    value: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    #[serde(rename = "contentUrl")]
    content_url: Option<String>,
}

fn search(
    downloader: &Downloader,
    search: &ImageSearch,
    text: &str,
    count: usize,
) -> std::result::Result<Vec<String>, String> {
    let mut url = downloader
        .fetcher
        .check_url(&search.endpoint)
        .map_err(|e| format!("image-search endpoint '{}' is not usable: {e}", search.endpoint))?;
    if url.scheme() != "https" && !downloader.allow_http_search {
        return Err(format!(
            "the image-search endpoint {} is not https: the search key would cross the network in clear text; use \
             an https endpoint (or --allow-http-search for one on a network you trust)",
            search.endpoint
        ));
    }
    url.query_pairs_mut().append_pair("q", text).append_pair("count", &count.to_string());
    let headers: Vec<(&str, &str)> =
        search.key.as_deref().map(|k| vec![("Ocp-Apim-Subscription-Key", k)]).unwrap_or_default();
    let (body, _) = downloader.get(url.as_str(), &headers).map_err(|e| {
        if e.contains("401") || e.contains("403") {
            format!("the image-search endpoint refused the key ({e}); check CVTK_IMAGE_SEARCH_KEY")
        } else {
            format!("image search failed: {e}")
        }
    })?;
    let parsed: SearchResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("the image-search endpoint's answer is not Bing v7 JSON ({{\"value\": [...]}}): {e}"))?;
    Ok(parsed.value.into_iter().filter_map(|r| r.content_url).filter(|u| is_url(u)).take(count).collect())
}

/// Every image file below `dir`, in path order, as absolute paths: the walk
/// every command shares ([`cvtk_dataset::walk::image_files`]); what it skips
/// is logged unless hidden or not an image.
fn image_files_under(dir: &Path) -> Vec<PathBuf> {
    cvtk_dataset::walk::image_files_logged(dir).map(|p| std::path::absolute(&p).unwrap_or(p)).collect()
}

/// One thing to fetch: a URL or a local file, under a label.
struct Job {
    label: String,
    source: String,
    local: Option<PathBuf>,
}

/// Collects the images `queries` name into `out/<label>/`, and reports what
/// happened. Text queries need [`CollectOptions::image_search`]; without one
/// they are an error before anything is fetched.
pub fn collect_images(queries: &Queries, out: &Path, options: &CollectOptions) -> Result<CollectReport> {
    if options.parallel == 0 {
        return Err(Error::InvalidConfig { field: "parallel", reason: "must be at least 1".into() });
    }
    let searches: Vec<(&str, &str)> = queries
        .labels
        .iter()
        .flat_map(|(l, qs)| {
            qs.iter().filter_map(move |q| match q {
                Query::Search { text, .. } => Some((l.as_str(), text.as_str())),
                _ => None,
            })
        })
        .collect();
    let image_search = options.image_search.as_ref();
    if let (Some((label, text)), None) = (searches.first(), image_search) {
        return Err(Error::InvalidConfig {
            field: "image search",
            reason: format!(
                "label '{label}' has the text query \"{text}\" ({} text queries in all), but no image-search endpoint \
                 is configured: set CVTK_IMAGE_SEARCH_ENDPOINT (and CVTK_IMAGE_SEARCH_KEY), or \
                 CollectOptions::image_search, or give folders and URLs instead",
                searches.len()
            ),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create folder", out, e))?;
    let state_path = out.join(STATE_FILE);
    let mut state: State = match std::fs::read(&state_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Dataset(cvtk_dataset::Error::Manifest {
                path: state_path.clone(),
                reason: format!("{e}; delete it to start the collection afresh"),
            })
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(Error::io("cannot read", &state_path, e)),
    };
    let downloader = Downloader::new(options)?;
    let mut report = CollectReport::default();

    // 1. Sources: files of folders, URLs, and search results (searched once).
    let mut jobs = Vec::new();
    for (label, qs) in &queries.labels {
        for q in qs {
            let job = |source: String, local: Option<PathBuf>| Job { label: label.clone(), source, local };
            let found: std::result::Result<Vec<Job>, String> = match q {
                Query::Dir(dir) => {
                    let files = image_files_under(dir);
                    if files.is_empty() {
                        Err("no image files in this folder".into())
                    } else {
                        Ok(files.into_iter().map(|f| job(f.to_string_lossy().into_owned(), Some(f))).collect())
                    }
                }
                Query::Url(u) => Ok(vec![job(u.clone(), None)]),
                Query::Search { text, count } => {
                    let key = format!("{text}\t{count}");
                    let urls = match (state.searches.get(&key), image_search) {
                        (Some(urls), _) => Ok(urls.clone()),
                        (None, Some(s)) => search(&downloader, s, text, *count),
                        // Refused above, before anything was fetched.
                        (None, None) => Err("no image-search endpoint".into()),
                    };
                    urls.and_then(|urls| {
                        state.searches.insert(key, urls.clone());
                        if urls.is_empty() {
                            Err("the search gave no results".into())
                        } else {
                            Ok(urls.into_iter().map(|u| job(u, None)).collect())
                        }
                    })
                }
            };
            match found {
                Ok(found) => jobs.extend(found),
                Err(reason) => report.failures.push(Failure { label: label.clone(), source: q.describe(), reason }),
            }
        }
    }

    // 2. What earlier runs collected: their files' hashes, for duplicates.
    let mut by_hash: HashMap<String, String> = HashMap::new();
    let mut kept = BTreeMap::new();
    for (key, file) in &state.sources {
        if out.join(file).is_file() {
            if let Some(stem) = Path::new(file).file_stem() {
                by_hash.entry(stem.to_string_lossy().into_owned()).or_insert_with(|| file.clone());
            }
            kept.insert(key.clone(), file.clone());
        }
    }
    state.sources = kept;
    let todo: Vec<Job> = jobs
        .into_iter()
        .filter(|j| {
            let done = state.sources.contains_key(&state_key(&j.label, &j.source));
            if done {
                report.already_there += 1;
            }
            !done
        })
        .collect();

    // 3. Fetch in parallel (in chunks, to bound memory), then keep, in query
    //    order, each new hash once.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.parallel)
        .build()
        .map_err(|e| Error::InvalidConfig { field: "parallel", reason: e.to_string() })?;
    let bar = Progress::start(todo.len() as u64, "collecting");
    for chunk in todo.chunks(options.parallel * 4) {
        let fetched: Vec<std::result::Result<(Vec<u8>, &'static str), String>> = pool.install(|| {
            chunk
                .par_iter()
                .map(|job| {
                    let bytes = match &job.local {
                        Some(p) => {
                            std::fs::read(p).map(|b| (b, String::new())).map_err(|e| format!("cannot read: {e}"))
                        }
                        None => downloader.get(&job.source, &[]),
                    };
                    let result = bytes.and_then(|(b, content_type)| {
                        check_image(&b, &content_type, &job.source, options.max_pixels).map(|ext| (b, ext))
                    });
                    bar.inc(1);
                    result
                })
                .collect()
        });
        for (job, result) in chunk.iter().zip(fetched) {
            let (bytes, ext) = match result {
                Ok(ok) => ok,
                Err(reason) => {
                    tracing::warn!(label = %job.label, source = %job.source, "not collected: {reason}");
                    report.failures.push(Failure { label: job.label.clone(), source: job.source.clone(), reason });
                    continue;
                }
            };
            let hash = sha256_hex(&bytes)[..16].to_string();
            if let Some(existing) = by_hash.get(&hash) {
                report.duplicates.push(Duplicate {
                    label: job.label.clone(),
                    source: job.source.clone(),
                    same_as: existing.clone(),
                });
                state.sources.insert(state_key(&job.label, &job.source), existing.clone());
                continue;
            }
            let file = format!("{}/{hash}.{ext}", job.label);
            let dest = out.join(&file);
            match (&job.local, options.link) {
                (Some(src), true) => {
                    if let Some(dir) = dest.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
                    }
                    let _ = std::fs::remove_file(&dest);
                    link(src, &dest)?;
                }
                _ => write_atomic(&dest, &bytes)?,
            }
            by_hash.insert(hash, file.clone());
            state.sources.insert(state_key(&job.label, &job.source), file.clone());
            report.added.push(Collected { label: job.label.clone(), source: job.source.clone(), file });
        }
        // Saved after every chunk: an interrupted run resumes from here.
        write_json_atomic(&state_path, &state)?;
    }
    bar.finish();
    write_json_atomic(&state_path, &state)?;

    for (label, _) in &queries.labels {
        let dir = out.join(label);
        let n = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| has_image_extension(&e.path())).count())
            .unwrap_or(0);
        report.per_label.insert(label.clone(), n);
    }
    Ok(report)
}

#[cfg(unix)]
fn link(src: &Path, dest: &Path) -> Result<()> {
    std::os::unix::fs::symlink(src, dest).map_err(|e| Error::io("cannot link", dest, e))
}

#[cfg(not(unix))]
fn link(src: &Path, dest: &Path) -> Result<()> {
    std::fs::copy(src, dest).map(|_| ()).map_err(|e| Error::io("cannot copy to", dest, e))
}

/// `ClassificationDataset::create_from_queries` and `create_from_queries_into`:
/// bring this trait into scope to build a dataset from a query file.
pub trait CreateFromQueries: Sized {
    /// Builds a dataset from a query file (the original package's
    /// `create_from_queries`; see the [crate documentation](crate)): collects
    /// the images into `storage.outputs()/datasets/<file stem>/` and scans that
    /// folder. Returns the dataset and what the collection did (failures,
    /// duplicates). [`collect_images`] does the same into any folder.
    fn create_from_queries(file: impl AsRef<Path>, storage: &StorageContext) -> Result<(Self, CollectReport)>;

    /// [`create_from_queries`](Self::create_from_queries) into the folder
    /// `out`, with explicit options. An error when no image at all could be
    /// collected.
    fn create_from_queries_into(
        file: impl AsRef<Path>,
        out: &Path,
        options: &CollectOptions,
    ) -> Result<(Self, CollectReport)>;
}

impl CreateFromQueries for ClassificationDataset {
    fn create_from_queries(
        file: impl AsRef<Path>,
        storage: &StorageContext,
    ) -> Result<(ClassificationDataset, CollectReport)> {
        let file = file.as_ref();
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
        let out = storage.outputs().join("datasets").join(&name);
        Self::create_from_queries_into(file, &out, &CollectOptions::default())
    }

    fn create_from_queries_into(
        file: impl AsRef<Path>,
        out: &Path,
        options: &CollectOptions,
    ) -> Result<(ClassificationDataset, CollectReport)> {
        let file = file.as_ref();
        let queries = Queries::from_file(file, options.search_count)?;
        let report = collect_images(&queries, out, options)?;
        if report.per_label.values().all(|&n| n == 0) {
            let reasons: Vec<String> =
                report.failures.iter().take(5).map(|f| format!("{} ({}): {}", f.source, f.label, f.reason)).collect();
            return Err(Error::NothingCollected { path: file.to_path_buf(), failures: reasons.join("; ") });
        }
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
        let dataset = ClassificationDataset::create_from_dir(name, out)?;
        Ok((dataset, report))
    }
}
