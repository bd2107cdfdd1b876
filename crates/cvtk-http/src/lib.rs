//! The HTTP pieces cvtk's servers (the scoring service, the annotation page)
//! and fetchers (`image_url` items, dataset collection) share, so each
//! mechanism exists once:
//!
//! - [`ApiError`] and [`ErrorDetail`]: every error answer is JSON
//!   `{"error": {"code", "message"}, ...}` with a stable code;
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C;
//! - [`is_loopback`] and [`host_is_loopback`]: whether an address, or a `Host`
//!   header, names this machine only;
//! - [`Fetcher`]: one bounded GET (size and time limits, one redirect policy,
//!   an optional host allow-list, and optionally public addresses only) for
//!   every download; [`is_public`] is its test of an address.
//!
//! ```
//! use cvtk_http::{host_is_loopback, is_loopback};
//! assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && !is_loopback("0.0.0.0"));
//! assert!(host_is_loopback("localhost:8080") && !host_is_loopback("example.com"));
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
mod fetch;
mod net;

pub use error::{ApiError, ErrorDetail};
pub use fetch::{FetchError, FetchPolicy, Fetched, Fetcher, HostFilter};
pub use net::{host_is_loopback, is_loopback, is_public, shutdown_signal};
