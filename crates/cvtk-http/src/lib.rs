//! The HTTP pieces cvtk's servers (the scoring service, the annotation page)
//! and fetchers (`image_url` items, dataset collection) share, so each
//! mechanism exists once. A crate takes the side it needs: feature `server`
//! (axum) or `client` (reqwest), so a client-only crate links no server.
//!
//! - [`ErrorCode`] and [`ErrorDetail`]: every error answer carries one stable
//!   code, and the code decides the HTTP status;
//! - [`is_loopback`] and [`host_is_loopback`]: whether an address, or a `Host`
//!   header, names this machine only; [`is_public`]: whether an address is on
//!   the public internet;
//! - `server`: [`ApiError`], every error answer as JSON
//!   `{"error": {"code", "message"}, ...}`, and [`shutdown_signal`], which
//!   resolves on SIGTERM or Ctrl-C;
//! - `client`: [`Fetcher`], one bounded GET (size and time limits, one
//!   redirect policy, an optional host allow-list, and optionally public
//!   addresses only) for every download.
//!
//! ```
//! use cvtk_http::{host_is_loopback, is_loopback};
//! assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && !is_loopback("0.0.0.0"));
//! assert!(host_is_loopback("localhost:8080") && !host_is_loopback("example.com"));
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
#[cfg(feature = "client")]
mod fetch;
mod net;
#[cfg(feature = "server")]
mod server;

pub use error::{ErrorCode, ErrorDetail};
#[cfg(feature = "client")]
pub use fetch::{FetchError, FetchPolicy, Fetched, Fetcher, HostFilter};
pub use net::{host_is_loopback, is_loopback, is_public};
#[cfg(feature = "server")]
pub use server::{shutdown_signal, ApiError};
