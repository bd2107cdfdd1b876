//! The scoring service: [`app`] builds the axum router over an [`AppState`],
//! [`ScoringService`] owns the model worker, and [`serve`] runs it all on a
//! socket until SIGTERM or Ctrl-C.
//!
//! Endpoints:
//! - `POST /score`: scores images (see [`crate::api`] for the payload forms);
//!   needs `Authorization: Bearer KEY` unless the service runs without keys.
//! - `POST /explain`: the same inputs, key and limits, at most
//!   [`crate::api::MAX_EXPLAIN_IMAGES`] images: where in each image the
//!   evidence for its predicted label (or `?label=NAME`) was.
//! - `GET /health`: 200 while the process serves HTTP (liveness).
//! - `GET /ready`: 200 once the model is loaded, 503 before (readiness).
//! - `GET /metrics`: Prometheus text format.
//! - `GET /openapi.json`: the OpenAPI 3 description of all this.
//! - `/v2/...`: the Open Inference Protocol (KServe v2), see [`v2`].

mod explain;
mod fetch;
mod inputs;
mod listen;
mod metrics;
mod score;
pub mod v2;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cvtk_dataset::{ImageLoader, LoaderConfig};
use cvtk_http::{ApiError, ErrorCode};
use cvtk_model::Scorer;
use subtle::ConstantTimeEq;

use crate::{Error, Result, ValidServeConfig};
use cvtk_core::ScoreKind;
use metrics::Metrics;
use worker::Queue;

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Sets its flag when dropped: a request future dropped mid-decode (by the
/// time limit, or a client that left) stops its blocking decoder.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the handlers need to know about the loaded model.
struct ModelInfo {
    labels: Vec<String>,
    /// What the model's raw scores are, and how they become probabilities.
    kind: ScoreKind,
    loader: ImageLoader,
    /// The engine that scores.
    engine: cvtk_model::Engine,
}

struct Inner {
    config: ValidServeConfig,
    model: Arc<OnceLock<ModelInfo>>,
    load_error: Arc<OnceLock<String>>,
    engine_error: Arc<OnceLock<String>>,
    /// Set when the model worker died (a panic in the model): the service is
    /// then not ready and stops, so that a supervisor restarts it.
    worker_died: Arc<OnceLock<String>>,
    queue: Queue,
    metrics: Arc<Metrics>,
    fetcher: Option<cvtk_http::Fetcher>,
    /// Slots for decoding (see [`ServeConfig::decode_threads`]). A slot is
    /// held until its decoding has really stopped, timed out or not.
    decode_slots: Arc<tokio::sync::Semaphore>,
    /// The decoding memory budget ([`ServeConfig::decode_memory_bytes`]), in
    /// KiB: each image holds its share while it decodes.
    decode_memory: Arc<tokio::sync::Semaphore>,
}

/// The handlers' shared state: cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.0.config).finish_non_exhaustive()
    }
}

/// Whether the model is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// Still loading.
    Loading,
    /// Loaded; `/ready` answers 200.
    Ready,
    /// Loading failed, with the reason: the service stops.
    Failed(String),
    /// The model loaded but the engine asked for cannot run it (for example
    /// `engine: onnxruntime` without its library): the service stays up,
    /// `/ready` answers 503 with the reason, `/score` 503.
    Unready(String),
}

/// The model worker and the state its HTTP handlers share. Dropping it stops
/// the worker once the queue is empty.
pub struct ScoringService {
    state: AppState,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScoringService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringService").field("state", &self.state).finish_non_exhaustive()
    }
}

impl ScoringService {
    /// Starts the model worker, which calls `load` on its own thread (a
    /// scorer need not be `Send`: libtorch's tensors are not `Sync`);
    /// `/ready` answers 200 once that returns a scorer. An
    /// [`cvtk_model::Error::Engine`] leaves the service up but not ready.
    pub fn start<F>(config: ValidServeConfig, load: F) -> Result<Self>
    where
        F: FnOnce() -> cvtk_model::Result<Box<dyn Scorer>> + Send + 'static,
    {
        let metrics = Arc::new(Metrics::new());
        let (queue, rx) = worker::queue(config.queue_capacity, config.max_queued_images, metrics.clone());
        let model = Arc::new(OnceLock::new());
        let load_error = Arc::new(OnceLock::new());
        let engine_error = Arc::new(OnceLock::new());
        let worker_died = Arc::new(OnceLock::new());
        let (m, le, ee, mx) = (model.clone(), load_error.clone(), engine_error.clone(), metrics.clone());
        let died = worker_died.clone();
        let (max_batch, max_delay, max_pixels) = (config.max_batch, config.max_delay, config.max_pixels);
        let worker = std::thread::Builder::new()
            .name("cvtk-model".into())
            .spawn(move || {
                let started = Instant::now();
                // An engine that cannot run leaves the service up but not
                // ready; any other failure stops it.
                let failed = |e: cvtk_model::Error| match e {
                    cvtk_model::Error::Engine(reason) => {
                        tracing::error!("the model's engine cannot run: {reason}; /ready answers 503");
                        let _ = ee.set(format!("the engine cannot run the model: {reason}"));
                    }
                    e => {
                        tracing::error!("cannot load the model: {e}");
                        let _ = le.set(format!("the model failed to load: {e}"));
                    }
                };
                let classifier = match load() {
                    Ok(c) => c,
                    Err(e) => return failed(e),
                };
                let engine = classifier.engine();
                let config = LoaderConfig { threads: 1, max_pixels, ..classifier.loader_config() };
                match ImageLoader::new(config) {
                    Ok(loader) => {
                        let _ = m.set(ModelInfo {
                            labels: classifier.labels().to_vec(),
                            kind: classifier.score_kind(),
                            loader,
                            engine,
                        });
                    }
                    Err(e) => {
                        let _ = le.set(format!("the model failed to load: {e}"));
                        return;
                    }
                }
                tracing::info!(
                    "model loaded in {:.1}s: {}; scoring with {engine}",
                    started.elapsed().as_secs_f64(),
                    classifier.describe()
                );
                let run = std::panic::AssertUnwindSafe(|| worker::run(&*classifier, &rx, &mx, max_batch, max_delay));
                if let Err(panic) = std::panic::catch_unwind(run) {
                    let reason = worker::panic_message(&*panic, "a panic");
                    tracing::error!("the model worker died: {reason}; the service stops");
                    let _ = died.set(format!("the model worker died: {reason}"));
                }
            })
            .map_err(|e| Error::config("worker", format!("cannot start the model thread: {e}")))?;
        let fetcher = fetch::fetcher(&config.urls)?;
        let slots = match config.decode_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let decode_slots = Arc::new(tokio::sync::Semaphore::new(slots));
        let budget_kib = (config.decode_memory_bytes >> 10).clamp(1, u64::from(u32::MAX)) as usize;
        let decode_memory = Arc::new(tokio::sync::Semaphore::new(budget_kib));
        let state = AppState(Arc::new(Inner {
            config,
            model,
            load_error,
            engine_error,
            worker_died,
            queue,
            metrics,
            fetcher,
            decode_slots,
            decode_memory,
        }));
        Ok(ScoringService { state, worker: Some(worker) })
    }

    /// Starts a service over a scorer made already (a `Send` one: a
    /// libtorch model is loaded on the worker's thread by [`Self::start`]).
    pub fn with_scorer(config: ValidServeConfig, scorer: Box<dyn Scorer + Send>) -> Result<Self> {
        Self::start(config, move || Ok(scorer as Box<dyn Scorer>))
    }

    /// The handlers' state, for [`app`].
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The router over this service.
    pub fn router(&self) -> Router {
        app(self.state())
    }

    /// Stops the worker once the queue is empty and waits for it. Every router
    /// made from this service must have been dropped first.
    pub fn shutdown(self) {
        let ScoringService { state, worker } = self;
        drop(state);
        if let Some(w) = worker {
            let _ = w.join();
        }
    }

    /// Whether the model is loaded.
    pub fn load_state(&self) -> LoadState {
        self.state.load_state()
    }

    /// Waits until the model is loaded, failed, or `timeout` passed.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.load_state() {
                LoadState::Ready => return Ok(()),
                LoadState::Failed(e) | LoadState::Unready(e) => return Err(Error::config("model", e)),
                LoadState::Loading if Instant::now() > deadline => {
                    return Err(Error::config("model", format!("not loaded after {timeout:?}")))
                }
                LoadState::Loading => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl AppState {
    fn load_state(&self) -> LoadState {
        if let Some(e) = self.0.worker_died.get() {
            LoadState::Failed(e.clone())
        } else if self.0.model.get().is_some() {
            LoadState::Ready
        } else if let Some(e) = self.0.load_error.get() {
            LoadState::Failed(e.clone())
        } else if let Some(e) = self.0.engine_error.get() {
            LoadState::Unready(e.clone())
        } else {
            LoadState::Loading
        }
    }
}

/// The service's router: `/score` behind the key check and body limit, the
/// operational endpoints open, JSON errors for unknown routes and methods.
pub fn app(state: AppState) -> Router {
    let limit = state.0.config.max_body_bytes;
    let guarded = |route: axum::routing::MethodRouter<AppState>| {
        route
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn_with_state(state.clone(), refuse_declared_oversize))
            .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
    };
    Router::new()
        .route("/score", guarded(post(score::score)))
        .route("/explain", guarded(post(explain::explain)))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .merge(v2::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// A body whose declared length is over the limit is refused at once, before
/// any of it is read (the body limit alone would wait for the bytes).
async fn refuse_declared_oversize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.0.config.max_body_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => ApiError::new(
            ErrorCode::TooLarge,
            format!("the body is {n} bytes; this service takes at most {limit} (--max-body-mb)"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        p @ ("/score" | "/explain" | "/health" | "/ready" | "/metrics" | "/openapi.json") => p.to_string(),
        p if p.starts_with("/v2/") && p.ends_with("/infer") => "/v2/infer".to_string(),
        p if p == "/v2" || p.starts_with("/v2/") => "/v2".to_string(),
        _ => "other".to_string(),
    };
    let response = next.run(req).await;
    state.0.metrics.count(&route, response.status().as_u16());
    response
}

async fn require_key(State(state): State<AppState>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let config = &state.0.config;
    if config.auth_disabled && config.keys.is_empty() {
        // No key (allowed on loopback only): a web page the user opens could
        // still reach this port through DNS rebinding, with its own host name
        // in the Host header. Only requests addressed to this machine pass.
        let host = headers.get(header::HOST).map(|v| v.to_str());
        if host.is_some_and(|h| !h.is_ok_and(cvtk_http::host_is_loopback)) {
            return ApiError::new(
                ErrorCode::HostNotAllowed,
                "this service runs with --no-auth and answers only requests addressed to 127.0.0.1 or localhost",
            )
            .into_response();
        }
        return next.run(req).await;
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(given) = given else {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "missing service key; send the header 'Authorization: Bearer KEY' (`cvtk deploy show NAME` prints it)",
        )
        .into_response();
    };
    // Every key is compared, in constant time, whatever the first ones gave.
    let ok = config.keys.iter().fold(subtle::Choice::from(0), |acc, k| acc | k.as_bytes().ct_eq(given.as_bytes()));
    if bool::from(ok) {
        next.run(req).await
    } else {
        ApiError::new(ErrorCode::Unauthorized, "wrong service key").into_response()
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.load_state() {
        LoadState::Ready => {
            let engine = state.0.model.get().map(|m| m.engine.to_string());
            Json(serde_json::json!({ "status": "ready", "engine": engine })).into_response()
        }
        LoadState::Loading => ApiError::new(ErrorCode::NotReady, "the model is still loading").into_response(),
        LoadState::Failed(e) => ApiError::new(ErrorCode::NotReady, e).into_response(),
        LoadState::Unready(e) => ApiError::new(ErrorCode::NotReady, e).into_response(),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut response = state.0.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Whether `uri` is under the Open Inference Protocol's `/v2`, whose errors
/// have the protocol's shape `{"error": "message"}`.
fn is_v2(uri: &axum::http::Uri) -> bool {
    uri.path() == "/v2" || uri.path().starts_with("/v2/")
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if is_v2(&uri) {
        return v2::in_protocol_shape(ApiError::new(ErrorCode::NotFound, format!(
            "no such endpoint: {}; the protocol's routes are /v2, /v2/health/{{live,ready}} and /v2/models/NAME[/versions/V][/ready|/infer]",
            uri.path()
        )));
    }
    ApiError::new(ErrorCode::NotFound,
        "no such endpoint; see /openapi.json (POST /score, GET /health, /ready, /metrics, and the Open Inference Protocol under /v2)",
    )
    .into_response()
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    if is_v2(&uri) {
        return v2::in_protocol_shape(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "wrong method; /v2/models/NAME/infer takes POST, the rest of /v2 GET",
        ));
    }
    ApiError::new(ErrorCode::MethodNotAllowed, "wrong method; /score takes POST, the rest GET").into_response()
}

/// Serves `service` on `listener` until `shutdown` resolves, the model fails
/// to load or its worker dies (a panic in the model), then stops accepting
/// connections and lets in-flight requests finish. A load failure or the
/// worker's death is returned as the error, so `cvtk serve` exits non-zero
/// and a supervisor restarts it.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    service: &ScoringService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = service.state();
    let failed = Arc::new(OnceLock::new());
    let failed_in = failed.clone();
    let watch_state = state.clone();
    let stop = async move {
        let load_failed = async {
            loop {
                if let LoadState::Failed(e) = watch_state.load_state() {
                    let _ = failed_in.set(e);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = load_failed => {}
        }
    };
    let config = &state.0.config;
    let (max_connections, header_timeout, request_timeout) =
        (config.max_connections, config.header_timeout, config.request_timeout);
    listen::serve_connections(listener, app(state), max_connections, header_timeout, request_timeout, stop).await;
    match failed.get() {
        Some(e) => Err(Error::config("model", e.clone())),
        None => Ok(()),
    }
}

/// Runs the service on a socket until SIGTERM or Ctrl-C, then lets in-flight
/// requests finish. The model in `model_dir` loads in the background: `/health`
/// answers at once, `/ready` once it is loaded. If it fails to load, the
/// service stops with that error. When `addr_file` is given, the bound URL
/// (`http://IP:PORT`) is written there once listening.
pub fn serve(
    config: ValidServeConfig,
    model_dir: &Path,
    device: cvtk_model::DeviceChoice,
    addr_file: Option<PathBuf>,
) -> Result<()> {
    // A device this machine lacks fails now, not once the service listens.
    device.resolve().map_err(|e| Error::config("device", e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cvtk-http")
        .build()
        .map_err(|e| Error::config("runtime", e.to_string()))?;
    let config = config.with_model_identity(model_dir);
    let dir = model_dir.to_path_buf();
    let (engine, tta) = (config.engine, config.tta);
    let service = ScoringService::start(config.clone(), move || {
        let scorer = cvtk_model::load_scorer(&dir, device, engine)?;
        let scorer = match tta {
            Some(mode) => scorer.with_tta(mode),
            None => scorer,
        };
        Ok(Box::new(scorer) as Box<dyn Scorer>)
    })?;
    let result = runtime.block_on(async {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Listen { addr: addr.clone(), source })?;
        let bound: SocketAddr = listener.local_addr().map_err(|e| Error::io("cannot read the address of", &addr, e))?;
        let url = format!("http://{bound}");
        if let Some(f) = &addr_file {
            cvtk_core::write_atomic(f, url.as_bytes())?;
        }
        eprintln!("cvtk serve: listening on {url} (model {}); Ctrl-C or SIGTERM stops", model_dir.display());
        serve_on(listener, &service, async {
            cvtk_http::shutdown_signal().await;
            eprintln!("cvtk serve: stopping; finishing requests in flight");
        })
        .await
    });
    service.shutdown();
    result
}
