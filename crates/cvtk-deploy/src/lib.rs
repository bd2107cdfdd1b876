//! Deployment for cvtk: the counterpart of the original package's
//! `AMLDeployment` and its web-service load testing.
//!
//! - [`ScoringService`] and [`app`]: the REST scoring service (axum). One
//!   thread owns the model and scores batches from a bounded queue; handlers
//!   only decode, validate and wait. [`serve`] runs it on a socket.
//! - [`api`]: the wire format (the original's base64 payload, the MNIST
//!   tutorial's `{"data": ...}`, raw and multipart images), shared with
//!   [`Client`], which parses answers back into typed results.
//! - [`ServeConfig`]: the service's settings, checked once into a
//!   [`ValidServeConfig`]; a deployment writes them to a file its server reads.
//! - [`Deployment`]: starts the service as a background process, records it
//!   under the [`cvtk_core::StorageContext`], lists, scores and deletes it.
//! - [`artifacts`]: a container image (context, libraries, build) and Kubernetes manifests.
//!
//! Load tests are `cvtk-loadtest`'s; the HTTP pieces shared with the
//! annotation page (errors, shutdown, loopback checks, bounded GET) are
//! `cvtk-http`'s.
//!
//! ```no_run
//! use cvtk_deploy::{Deployment, DeployConfig};
//! use cvtk_core::StorageContext;
//!
//! # fn main() -> cvtk_deploy::Result<()> {
//! let storage = StorageContext::new();
//! let record = Deployment::new("flowers", "outputs/model", DeployConfig::default()).deploy(&storage)?;
//! let result = record.client()?.score_files(&["flower.jpg"], true)?;
//! println!("{} at {}: {:?}", record.name, record.url, result[0]);
//! record.delete(&storage)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod api;
pub mod artifacts;
mod client;
mod config;
mod deployment;
mod error;
mod server;

pub use client::{score_existing_service_with_image, Client, ImageInput};
pub use config::{
    client_key, generate_key, is_loopback, keys_from_env, model_name_of, model_version_of, read_key_file, ServeConfig,
    UrlPolicy, ValidServeConfig, DECODE_BYTES_PER_PIXEL, DEFAULT_SERVE_MAX_PIXELS,
};
pub use deployment::{
    check_name, delete_if_service_exist, get_deployment, is_existing_service, list_deployments, serve_if_deployed,
    DeployConfig, Deployment, DeploymentRecord, DeploymentStatus, ServiceSpec, SERVE_SPEC_ENV,
};
pub use error::{Error, Result};
pub use server::{app, serve, serve_on, v2, AppState, LoadState, ScoringService, OPENAPI};
