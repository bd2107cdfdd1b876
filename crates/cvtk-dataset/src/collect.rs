//! Building a dataset from a query file: the original package's
//! `create_from_queries`. A JSON file maps each label to a list of queries:
//!
//! ```json
//! {
//!   "bowl":  ["photos/bowls", "https://example.com/bowl.jpg", "blue ceramic bowl"],
//!   "plate": [{ "dir": "photos/plates" }, { "url": "https://example.com/p.png" },
//!             { "search": "white dinner plate", "count": 20 }]
//! }
//! ```
//!
//! A string is a URL when it starts with `http://` or `https://`, a folder when
//! it starts with `/`, `./`, `../` or `~/` or names an existing folder (relative
//! to the query file), and otherwise a text query for the image-search endpoint
//! (the Bing Image Search v7 JSON shape; see [`ImageSearch`]). The object forms
//! say which one explicitly.
//!
//! Images land in `out/<label>/<first 16 hex digits of their SHA-256>.<ext>`.
//! Local folders are copied (or linked, [`CollectOptions::link`]); URLs are
//! downloaded with a time and size limit, checked to really be an image, and
//! retried with exponential backoff on timeouts, connection errors, 429 and 5xx.
//! Identical bytes are kept once and reported. `out/.cvtk-collect.json` records
//! what each source gave, so a re-run downloads nothing it already has (failed
//! sources are tried again).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decode::{self, has_image_extension, DEFAULT_MAX_PIXELS};
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::{progress, ClassificationDataset, Error, Result, StorageContext};

/// The state file in the output folder (hidden, so dataset scans skip it).
pub const STATE_FILE: &str = ".cvtk-collect.json";

/// Where text queries go: an image-search endpoint answering like Bing Image
/// Search v7 (`GET endpoint?q=...&count=N` with the key in the
/// `Ocp-Apim-Subscription-Key` header, answering `{"value": [{"contentUrl": ...}]}`).
#[derive(Clone, PartialEq, Eq)]
pub struct ImageSearch {
    /// The search URL, e.g. `https://api.bing.microsoft.com/v7.0/images/search`.
    pub endpoint: String,
    /// The subscription key, sent in `Ocp-Apim-Subscription-Key` when set.
    pub key: Option<String>,
}

impl std::fmt::Debug for ImageSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ImageSearch")
            .field("endpoint", &self.endpoint)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ImageSearch {
    /// From `CVTK_IMAGE_SEARCH_ENDPOINT` and `CVTK_IMAGE_SEARCH_KEY`, when the
    /// endpoint is set.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        var("CVTK_IMAGE_SEARCH_ENDPOINT").map(|endpoint| ImageSearch { endpoint, key: var("CVTK_IMAGE_SEARCH_KEY") })
    }
}

/// One query of a query file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// Every image under a local folder.
    Dir(PathBuf),
    /// One image URL.
    Url(String),
    /// A text query for the image-search endpoint, and how many results to take.
    Search {
        /// The query text.
        text: String,
        /// Results wanted (the endpoint may give fewer).
        count: usize,
    },
}

impl Query {
    fn describe(&self) -> String {
        match self {
            Query::Dir(p) => format!("folder {}", p.display()),
            Query::Url(u) => u.clone(),
            Query::Search { text, .. } => format!("search \"{text}\""),
        }
    }
}

/// A parsed query file: labels in file order, each with its queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queries {
    /// `(label, queries)`, in the file's order.
    pub labels: Vec<(String, Vec<Query>)>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawQuery {
    Text(String),
    Tagged(TaggedQuery),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaggedQuery {
    dir: Option<PathBuf>,
    url: Option<String>,
    search: Option<String>,
    count: Option<usize>,
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Checks that `name` can be a label folder's name.
pub(crate) fn check_label_name(name: &str) -> std::result::Result<(), String> {
    if name.trim().is_empty()
        || name != name.trim()
        || name.contains(['/', '\\'])
        || name.starts_with('.')
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "'{name}' cannot be a label: use a non-empty name without slashes, control characters, a leading dot \
             or surrounding spaces"
        ));
    }
    Ok(())
}

impl Queries {
    /// Reads a query file (see the module documentation). Relative folders are
    /// taken relative to the file's folder; text queries take
    /// `default_search_count` results unless they say otherwise.
    pub fn from_file(path: impl AsRef<Path>, default_search_count: usize) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::Queries { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read query file", path, e))?;
        let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
            bad(format!("{e}; expected a JSON object mapping each label to a list of folders, URLs or search texts"))
        })?;
        if raw.is_empty() {
            return Err(bad("no labels; map each label to a list of queries".into()));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut labels = Vec::new();
        for (label, value) in raw {
            check_label_name(&label).map_err(&bad)?;
            let list: Vec<RawQuery> = serde_json::from_value(value).map_err(|e| {
                bad(format!(
                    "label '{label}': {e}; expected a list of strings or of {{\"dir\"|\"url\"|\"search\": ...}} objects"
                ))
            })?;
            if list.is_empty() {
                return Err(bad(format!("label '{label}' has no queries")));
            }
            let mut queries = Vec::with_capacity(list.len());
            for q in list {
                let resolve_dir = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
                let query = match q {
                    RawQuery::Text(s) if is_url(&s) => Query::Url(s),
                    RawQuery::Text(s)
                        if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s.starts_with("~/") =>
                    {
                        Query::Dir(resolve_dir(&expand_home(&s)))
                    }
                    RawQuery::Text(s) if !s.trim().is_empty() && base.join(&s).is_dir() => Query::Dir(base.join(&s)),
                    RawQuery::Text(s) if s.trim().is_empty() => {
                        return Err(bad(format!("label '{label}' has an empty query")));
                    }
                    RawQuery::Text(s) => Query::Search { text: s, count: default_search_count },
                    RawQuery::Tagged(TaggedQuery { dir: Some(d), url: None, search: None, count: None }) => {
                        Query::Dir(resolve_dir(&d))
                    }
                    RawQuery::Tagged(TaggedQuery { dir: None, url: Some(u), search: None, count: None }) => {
                        if !is_url(&u) {
                            return Err(bad(format!("label '{label}': '{u}' is not an http(s) URL")));
                        }
                        Query::Url(u)
                    }
                    RawQuery::Tagged(TaggedQuery { dir: None, url: None, search: Some(text), count }) => {
                        let count = count.unwrap_or(default_search_count);
                        if count == 0 || text.trim().is_empty() {
                            return Err(bad(format!(
                                "label '{label}': a search needs a text and a count of 1 or more"
                            )));
                        }
                        Query::Search { text, count }
                    }
                    RawQuery::Tagged(_) => {
                        return Err(bad(format!(
                            "label '{label}': each object needs exactly one of \"dir\", \"url\" or \"search\" \
                             (\"count\" only with \"search\")"
                        )));
                    }
                };
                if let Query::Dir(d) = &query {
                    if !d.is_dir() {
                        return Err(bad(format!("label '{label}': folder {} does not exist", d.display())));
                    }
                }
                queries.push(query);
            }
            labels.push((label, queries));
        }
        Ok(Queries { labels })
    }
}

/// How [`collect_images`] fetches and checks images.
#[derive(Clone, Debug)]
pub struct CollectOptions {
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
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            timeout: Duration::from_secs(20),
            max_bytes: 20 << 20,
            retries: 3,
            backoff: Duration::from_millis(500),
            search_count: 50,
            max_pixels: DEFAULT_MAX_PIXELS,
            link: false,
            parallel: 8,
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

/// Fetched bytes, or why not; `Permanent` failures are not retried.
enum FetchError {
    Transient(String),
    Permanent(String),
}

fn http_client(options: &CollectOptions) -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!("cvtk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::InvalidConfig { field: "http client", reason: e.to_string() })
}

fn describe_reqwest(e: &reqwest::Error, options: &CollectOptions) -> FetchError {
    if e.is_timeout() {
        FetchError::Transient(format!("timed out after {:.1} s", options.timeout.as_secs_f64()))
    } else if e.is_redirect() {
        FetchError::Permanent(format!("too many redirects: {e}"))
    } else if e.is_connect() {
        FetchError::Transient(format!("cannot connect: {e}"))
    } else {
        FetchError::Transient(e.to_string())
    }
}

/// Bytes fetched, and the content type the server claimed (for messages).
type Fetched = (Vec<u8>, String);

fn fetch_once(
    request: reqwest::blocking::RequestBuilder,
    options: &CollectOptions,
) -> std::result::Result<Fetched, FetchError> {
    let resp = request.send().map_err(|e| describe_reqwest(&e, options))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = format!("HTTP {status}");
        return Err(if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            FetchError::Transient(msg)
        } else {
            FetchError::Permanent(msg)
        });
    }
    if resp.content_length().is_some_and(|n| n > options.max_bytes) {
        return Err(FetchError::Permanent(format!(
            "{} bytes is over the limit of {} bytes",
            resp.content_length().unwrap_or_default(),
            options.max_bytes
        )));
    }
    let content_type =
        resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut bytes = Vec::new();
    resp.take(options.max_bytes + 1).read_to_end(&mut bytes).map_err(|e| {
        if e.to_string().contains("timed out") || e.kind() == std::io::ErrorKind::TimedOut {
            FetchError::Transient(format!("timed out after {:.1} s", options.timeout.as_secs_f64()))
        } else {
            FetchError::Transient(format!("reading the body: {e}"))
        }
    })?;
    if bytes.len() as u64 > options.max_bytes {
        return Err(FetchError::Permanent(format!("body is over the limit of {} bytes", options.max_bytes)));
    }
    Ok((bytes, content_type))
}

/// GETs `url` with retries and backoff.
fn fetch(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
    options: &CollectOptions,
) -> std::result::Result<Fetched, String> {
    let mut wait = options.backoff;
    let mut attempt = 0;
    loop {
        let mut request = client.get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        match fetch_once(request, options) {
            Ok(bytes) => return Ok(bytes),
            Err(FetchError::Permanent(msg)) => return Err(msg),
            Err(FetchError::Transient(msg)) if attempt >= options.retries => {
                return Err(if options.retries == 0 {
                    msg
                } else {
                    format!("{msg} (after {} retries)", options.retries)
                });
            }
            Err(FetchError::Transient(msg)) => {
                tracing::debug!(url, attempt, "retrying after: {msg}");
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
                attempt += 1;
            }
        }
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
        Error::Decode { reason, .. } => format!("not a usable image: {reason}"),
        other => other.to_string(),
    })?;
    Ok(format.extensions_str().first().copied().unwrap_or("img"))
}

fn sha256_hex(bytes: &[u8]) -> String {
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
    client: &reqwest::blocking::Client,
    search: &ImageSearch,
    text: &str,
    count: usize,
    options: &CollectOptions,
) -> std::result::Result<Vec<String>, String> {
    let mut url = reqwest::Url::parse(&search.endpoint)
        .map_err(|e| format!("image-search endpoint '{}' is not a URL: {e}", search.endpoint))?;
    url.query_pairs_mut().append_pair("q", text).append_pair("count", &count.to_string());
    let headers: Vec<(&str, &str)> =
        search.key.as_deref().map(|k| vec![("Ocp-Apim-Subscription-Key", k)]).unwrap_or_default();
    let (body, _) = fetch(client, url.as_str(), &headers, options).map_err(|e| {
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

/// Every image file below `dir` (links followed, hidden files skipped), sorted,
/// as absolute paths.
fn image_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && has_image_extension(e.path()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| std::path::absolute(e.path()).unwrap_or_else(|_| e.path().to_path_buf()))
        .collect();
    files.sort();
    files
}

/// One thing to fetch: a URL or a local file, under a label.
struct Job {
    label: String,
    source: String,
    local: Option<PathBuf>,
}

/// Collects the images `queries` name into `out/<label>/`, and reports what
/// happened. Text queries need `storage`'s [`ImageSearch`]; without one they are
/// an error before anything is fetched.
pub fn collect_images(
    queries: &Queries,
    out: &Path,
    storage: &StorageContext,
    options: &CollectOptions,
) -> Result<CollectReport> {
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
    let image_search = storage.image_search();
    if let (Some((label, text)), None) = (searches.first(), image_search) {
        return Err(Error::InvalidConfig {
            field: "image search",
            reason: format!(
                "label '{label}' has the text query \"{text}\" ({} text queries in all), but no image-search endpoint \
                 is configured: set CVTK_IMAGE_SEARCH_ENDPOINT (and CVTK_IMAGE_SEARCH_KEY), or \
                 StorageContext::with_image_search, or give folders and URLs instead",
                searches.len()
            ),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create folder", out, e))?;
    let state_path = out.join(STATE_FILE);
    let mut state: State = match std::fs::read(&state_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: state_path.clone(),
            reason: format!("{e}; delete it to start the collection afresh"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(Error::io("cannot read", &state_path, e)),
    };
    let client = http_client(options)?;
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
                        (None, Some(s)) => search(&client, s, text, *count, options),
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
    let bar = progress::bar(todo.len() as u64, "collecting");
    for chunk in todo.chunks(options.parallel * 4) {
        let fetched: Vec<std::result::Result<(Vec<u8>, &'static str), String>> = pool.install(|| {
            chunk
                .par_iter()
                .map(|job| {
                    let bytes = match &job.local {
                        Some(p) => {
                            std::fs::read(p).map(|b| (b, String::new())).map_err(|e| format!("cannot read: {e}"))
                        }
                        None => fetch(&client, &job.source, &[], options),
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
    bar.finish_and_clear();
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

impl ClassificationDataset {
    /// Builds a dataset from a query file (the original package's
    /// `create_from_queries`; see the [module documentation](crate::collect)):
    /// collects the images into `storage.outputs()/datasets/<file stem>/` and
    /// scans that folder. Returns the dataset and what the collection did
    /// (failures, duplicates). [`collect_images`] does the same into any folder.
    pub fn create_from_queries(
        file: impl AsRef<Path>,
        storage: &StorageContext,
    ) -> Result<(ClassificationDataset, CollectReport)> {
        let file = file.as_ref();
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
        let out = storage.outputs().join("datasets").join(&name);
        Self::create_from_queries_into(file, &out, storage, &CollectOptions::default())
    }

    /// [`create_from_queries`](Self::create_from_queries) into the folder `out`,
    /// with explicit options. An error when no image at all could be collected.
    pub fn create_from_queries_into(
        file: impl AsRef<Path>,
        out: &Path,
        storage: &StorageContext,
        options: &CollectOptions,
    ) -> Result<(ClassificationDataset, CollectReport)> {
        let file = file.as_ref();
        let queries = Queries::from_file(file, options.search_count)?;
        let report = collect_images(&queries, out, storage, options)?;
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
