//! [`Queries`]: a parsed query file, and [`ImageSearch`], where text queries go.

use std::path::{Path, PathBuf};

use cvtk_dataset::check_label_name;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
    pub(crate) fn describe(&self) -> String {
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

pub(crate) fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

impl Queries {
    /// Reads a query file (see the module documentation). Relative folders are
    /// taken relative to the file's folder; text queries take
    /// `default_search_count` results unless they say otherwise.
    pub fn from_file(path: impl AsRef<Path>, default_search_count: usize) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::Queries { path: path.to_path_buf(), reason };
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("cannot read query file", path.to_path_buf(), e))?;
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
