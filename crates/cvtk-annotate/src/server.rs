//! The HTTP side: [`app`] builds the router over a [`Store`], [`serve`] runs it
//! on a socket until Ctrl-C.
//!
//! Routes (everything else is a 404):
//! - `GET /`: the page (one self-contained HTML file).
//! - `GET /api/dataset`: the [`DatasetView`](crate::DatasetView) as JSON.
//! - `GET /api/images/{id}/file` and `/thumb`: an image of the dataset, whole or
//!   as a small JPEG. Images are named by id only, so no path from a request
//!   ever reaches the file system; a file that is not an image is not served.
//! - `POST /api/images/{id}`: an [`Edit`](crate::Edit); 409 with the image's
//!   current state when it changed since the page saw it.
//! - `POST /api/undo` (a JSON body, `{}`), `POST /api/labels` (`{"name": ...}`).
//!
//! Errors are JSON, `{"error": {"code", "message"}, "image": ...}`. Bound to
//! loopback, requests must name a loopback host (a guard against DNS
//! rebinding), and every change (edits, undo, labels) must be
//! `application/json` (which a plain cross-site form cannot send).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use cvtk_http::{host_is_loopback, ApiError, ErrorCode};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::store::{Edit, ImageView, Store};
use crate::{Error, Result};

const PAGE: &str = include_str!("page.html");
const THUMB_SIZE: u32 = 200;
const THUMB_CACHE: usize = 4096;

/// Where and how [`serve`] listens.
#[derive(Clone, Debug)]
pub struct AnnotateConfig {
    /// Address to bind. Default 127.0.0.1.
    pub host: IpAddr,
    /// Port; 0 picks a free one. Default 0.
    pub port: u16,
    /// Allow binding beyond loopback (anyone who reaches the page can edit).
    pub allow_remote: bool,
}

impl Default for AnnotateConfig {
    fn default() -> Self {
        AnnotateConfig { host: IpAddr::from([127, 0, 0, 1]), port: 0, allow_remote: false }
    }
}

struct Shared {
    store: Mutex<Store>,
    thumbs: Mutex<HashMap<u64, Bytes>>,
    loopback_only: bool,
}

type AppState = Arc<Shared>;

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave the store half-changed (every
    // change is built on a copy), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such page or image")
}

/// The answer to a store error: its status and code, with the image's current
/// state when the page should show it.
fn from_error(e: Error, image: Option<ImageView>) -> ApiError {
    let code = match &e {
        Error::NoSuchImage { .. } => ErrorCode::NotFound,
        Error::Conflict { .. } => ErrorCode::Conflict,
        Error::NothingToUndo => ErrorCode::NothingToUndo,
        Error::UnknownLabel(_) => ErrorCode::UnknownLabel,
        Error::ReadOnly { .. } => ErrorCode::ManifestReadOnly,
        Error::Dataset(cvtk_dataset::Error::InvalidConfig { .. }) => ErrorCode::Invalid,
        _ => ErrorCode::CannotSave,
    };
    let error = ApiError::new(code, e.to_string());
    if error.status.is_server_error() {
        tracing::error!("{e}");
    }
    match image {
        Some(image) => error.with("image", image),
        None => error,
    }
}

fn bad_json(e: JsonRejection) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("{}: {}", e.status(), e.body_text()))
}

/// Ids come in as text and anything that is not a known id is a 404, so
/// `..`, absolute paths and other tricks all end the same way.
fn parse_id(raw: &str) -> std::result::Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| not_found())
}

/// Runs `f` on the store off the async threads (saving fsyncs).
async fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut Store) -> T + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&state.store)))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn dataset(State(state): State<AppState>) -> std::result::Result<Response, ApiError> {
    let view = with_store(&state, |s| s.view()).await?.map_err(|e| from_error(e, None))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

async fn image_file(State(state): State<AppState>, Path(raw): Path<String>) -> std::result::Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let path = with_store(&state, move |s| s.image_path(id)).await?.ok_or_else(not_found)?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    // Only images leave the server, whatever a manifest points at.
    let format = image::guess_format(&bytes).map_err(|_| not_found())?;
    Ok(([(header::CONTENT_TYPE, format.to_mime_type()), (header::CACHE_CONTROL, "private, max-age=60")], bytes)
        .into_response())
}

/// The image with the model's map over it (a PNG), drawn on request; 404
/// without `--model`, or for an image that cannot be explained.
async fn image_explain(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let (path, overlays) =
        with_store(&state, move |s| s.image_path(id).map(|p| (p, s.overlays()))).await?.ok_or_else(not_found)?;
    let overlays = overlays.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "no maps: start cvtk annotate with --model (a ResNet or EfficientNet-Lite model)",
        )
    })?;
    let png = tokio::task::spawn_blocking(move || overlays(id, &path)).await.ok().flatten().ok_or_else(not_found)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=60")], png).into_response())
}

fn make_thumb(path: &std::path::Path) -> Option<Bytes> {
    cvtk_dataset::decode::thumbnail_jpeg(path, THUMB_SIZE, 75).map(Bytes::from)
}

async fn image_thumb(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let cached = state.thumbs.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    let bytes = match cached {
        Some(b) => b,
        None => {
            let path = with_store(&state, move |s| s.image_path(id)).await?.ok_or_else(not_found)?;
            let bytes =
                tokio::task::spawn_blocking(move || make_thumb(&path)).await.ok().flatten().ok_or_else(not_found)?;
            let mut thumbs = state.thumbs.lock().unwrap_or_else(|p| p.into_inner());
            if thumbs.len() >= THUMB_CACHE {
                thumbs.clear();
            }
            thumbs.insert(id, bytes.clone());
            bytes
        }
    };
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=60")], bytes).into_response())
}

async fn edit_image(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: std::result::Result<Json<Edit>, JsonRejection>,
) -> std::result::Result<Json<ImageView>, ApiError> {
    let id = parse_id(&raw)?;
    let Json(edit) = body.map_err(bad_json)?;
    with_store(&state, move |s| s.edit(id, &edit).map_err(|e| from_error(e, s.image_view(id)))).await?.map(Json)
}

/// Takes a JSON body (any, `{}` from the page): a cross-site form cannot send
/// one, so another web page cannot undo the user's last edit.
async fn undo(
    State(state): State<AppState>,
    body: std::result::Result<Json<serde_json::Value>, JsonRejection>,
) -> std::result::Result<Json<ImageView>, ApiError> {
    let _json = body.map_err(bad_json)?;
    with_store(&state, |s| {
        s.undo().map_err(|e| {
            let image = match &e {
                Error::Conflict { id } => s.image_view(*id),
                _ => None,
            };
            from_error(e, image)
        })
    })
    .await?
    .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLabel {
    name: String,
}

async fn add_label(
    State(state): State<AppState>,
    body: std::result::Result<Json<NewLabel>, JsonRejection>,
) -> std::result::Result<Response, ApiError> {
    let Json(NewLabel { name }) = body.map_err(bad_json)?;
    let labels = with_store(&state, move |s| s.add_label(&name)).await?.map_err(|e| from_error(e, None))?;
    Ok(Json(json!({ "labels": labels })).into_response())
}

async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.loopback_only {
        if let Some(host) = req.headers().get(header::HOST).map(HeaderValue::to_str) {
            if !host.is_ok_and(host_is_loopback) {
                return ApiError::new(ErrorCode::HostNotAllowed, "this page answers only to 127.0.0.1 or localhost")
                    .into_response();
            }
        }
    }
    next.run(req).await
}

/// The router over `store`. `loopback_only` turns on the Host-header check
/// (use `true` whenever the socket is bound to loopback).
pub fn app(store: Store, loopback_only: bool) -> Router {
    let state = Arc::new(Shared { store: Mutex::new(store), thumbs: Mutex::new(HashMap::new()), loopback_only });
    Router::new()
        .route("/", get(page))
        .route("/api/dataset", get(dataset))
        .route("/api/images/{id}/file", get(image_file))
        .route("/api/images/{id}/thumb", get(image_thumb))
        .route("/api/images/{id}/explain", get(image_explain))
        .route("/api/images/{id}", post(edit_image))
        .route("/api/undo", post(undo))
        .route("/api/labels", post(add_label))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Serves `store` as `config` says until Ctrl-C or SIGTERM; `on_ready` gets the bound
/// address (print it, or hand it to a browser).
pub fn serve(store: Store, config: &AnnotateConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    if !config.host.is_loopback() && !config.allow_remote {
        return Err(Error::NotLoopback(config.host.to_string()));
    }
    let addr = SocketAddr::new(config.host, config.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Bind { addr: addr.to_string(), source: e })?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Bind { addr: addr.to_string(), source: e })?;
        let bound = listener.local_addr().map_err(|e| Error::Bind { addr: addr.to_string(), source: e })?;
        on_ready(bound);
        let router = app(store, config.host.is_loopback());
        axum::serve(listener, router)
            .with_graceful_shutdown(cvtk_http::shutdown_signal())
            .await
            .map_err(|e| Error::Bind { addr: bound.to_string(), source: e })
    })
}
