//! The Open Inference Protocol (KServe's "v2" protocol, spoken by Triton,
//! KServe, Seldon MLServer and TorchServe's KServe mode), REST side, next to
//! cvtk's own routes:
//!
//! - `GET /v2`: server metadata; `GET /v2/health/live`, `/v2/health/ready`;
//! - `GET /v2/models/{name}[/versions/{v}]`: model metadata, the input
//!   contract included; `.../ready`: 200 when ready, 400 when not;
//! - `POST /v2/models/{name}[/versions/{v}]/infer`: behind the service key,
//!   the body limit and the request timeout, like `/score`.
//!
//! One input per request: `image`, a `BYTES` tensor `[N]` of encoded images
//! (base64 strings in the JSON form, raw bytes in the binary tensor data
//! extension), or `input`, an `FP32` tensor `[N, C, H, W]` already made the
//! way the model's loader makes it (resized, normalised). Outputs:
//! `probabilities` (`FP32 [N, labels]`, calibrated probabilities, or raw
//! scores with the request parameter `"softmax": false`) and `label` (`BYTES
//! [N, top_k]`, best first; `"top_k"` defaults to 1). Outputs come as JSON, or
//! binary when the request asks (`"binary_data": true` per output, or
//! `"binary_data_output": true` for all, as Triton's client does by default).
//! Errors are `{"error": "..."}` with a 4xx (5xx only for the service's own
//! failures, and 503 with `Retry-After` when it is full).

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cvtk_dataset::ColorMode;
use cvtk_http::{ApiError, ErrorCode, ErrorDetail};
use serde_json::{json, Value};

use crate::server::inputs::Source;
use crate::server::score::{decode_all, rejection, run_model};
use crate::server::{refuse_declared_oversize, require_key, AppState, LoadState};

mod request;
use request::{parse, Parsed, Tensor};

/// The encoded-images input.
pub const IMAGE_INPUT: &str = "image";
/// The preprocessed-tensor input.
pub const TENSOR_INPUT: &str = "input";
/// The scores output.
pub const PROBABILITIES_OUTPUT: &str = "probabilities";
/// The top-labels output.
pub const LABEL_OUTPUT: &str = "label";
/// The header that splits a body into its JSON part and its binary part.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// A `/v2` route's result: its errors are [`ApiError`]s, as everywhere in
/// the service, written in the protocol's shape by [`protocol_errors`].
type V2Result<T> = std::result::Result<T, ApiError>;

/// The protocol's routes over `state`.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let limit = state.0.config.max_body_bytes;
    let infer_route = || {
        post(infer)
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn_with_state(state.clone(), refuse_declared_oversize))
            .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
    };
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { Json(json!({ "live": true })) }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_versioned))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_versioned))
        .route("/v2/models/{name}/infer", infer_route())
        .route("/v2/models/{name}/versions/{version}/infer", infer_route())
        .layer(middleware::map_response(protocol_errors))
}

/// Every error answer of these routes, the shared layers' (the key check,
/// the body limits) included, is an [`ApiError`], which leaves its
/// [`ErrorDetail`] in the response's extensions: written here in the
/// protocol's shape `{"error": "message"}`, with the same status and headers.
async fn protocol_errors(response: Response) -> Response {
    in_protocol_shape(response)
}

/// An error answer in the protocol's shape (see [`protocol_errors`]);
/// any other answer as it is.
pub(crate) fn in_protocol_shape(response: impl IntoResponse) -> Response {
    let response = response.into_response();
    let Some(message) = response.extensions().get::<ErrorDetail>().map(|d| d.message.clone()) else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json!({ "error": message }).to_string()))
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "cvtk", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }))
}

/// Why the model cannot answer yet, if it cannot: the protocol's readiness
/// routes say so with a 400, inference with a 503 (retry later).
fn not_ready(state: &AppState) -> Option<ApiError> {
    let why = match state.load_state() {
        LoadState::Ready => return None,
        LoadState::Loading => "the model is still loading".to_string(),
        LoadState::Failed(e) | LoadState::Unready(e) => e,
    };
    Some(ApiError::new(ErrorCode::NotReady, why).with_status(StatusCode::BAD_REQUEST))
}

async fn server_ready(State(state): State<AppState>) -> Response {
    match not_ready(&state) {
        None => Json(json!({ "ready": true })).into_response(),
        Some(e) => e.into_response(),
    }
}

/// The served model's name and version.
fn identity(state: &AppState) -> (&str, &str) {
    let c = &state.0.config;
    (c.model_name.as_deref().unwrap_or("model"), c.model_version.as_deref().unwrap_or("1"))
}

/// Checks that the path names the served model (and version, if given).
fn check_model(state: &AppState, name: &str, version: Option<&str>) -> V2Result<()> {
    let (served, served_version) = identity(state);
    if name != served {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("unknown model '{name}'; this service serves '{served}' (GET /v2/models/{served})"),
        ));
    }
    if version.is_some_and(|v| v != served_version) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "model '{served}' has no version '{}'; it serves version '{served_version}'",
                version.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> V2Result<Json<Value>> {
    metadata(&state, &name, None)
}

async fn model_metadata_versioned(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result<Json<Value>> {
    metadata(&state, &name, Some(&version))
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> V2Result<Json<Value>> {
    check_model(state, name, version)?;
    let Some(model) = state.0.model.get() else {
        return Err(not_ready(state).unwrap_or_else(|| ApiError::new(ErrorCode::BadRequest, "the model is not loaded")));
    };
    let (served, served_version) = identity(state);
    let c = model.loader.config();
    let channels = c.color.channels();
    let n = model.labels.len();
    let platform = match model.engine {
        cvtk_model::Engine::Onnxruntime => "onnxruntime_onnx",
        _ => "pytorch_libtorch",
    };
    Ok(Json(json!({
        "name": served,
        "versions": [served_version],
        "platform": platform,
        "inputs": [
            { "name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1] },
            { "name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, channels, c.height, c.width] },
        ],
        "outputs": [
            { "name": PROBABILITIES_OUTPUT, "datatype": "FP32", "shape": [-1, n] },
            { "name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1, -1] },
        ],
        "parameters": {
            "labels": model.labels,
            "max_images_per_request": state.0.config.max_images_per_request,
            "input_contract": {
                "tensor": TENSOR_INPUT,
                "layout": "NCHW",
                "color": match c.color { ColorMode::Rgb => "rgb", ColorMode::Gray => "gray" },
                "height": c.height,
                "width": c.width,
                "resize": c.resize,
                "mean": c.normalization.mean,
                "std": c.normalization.std,
                "formula": "(pixel in 0..255 - mean) / std, per channel",
            },
            "request_parameters": {
                "softmax": "true (default): calibrated probabilities; false: the model's raw scores",
                "top_k": "how many labels the label output gives per image, best first (default 1)",
            },
        },
    })))
}

async fn model_ready(State(state): State<AppState>, Path(name): Path<String>) -> V2Result<Json<Value>> {
    ready(&state, &name, None)
}

async fn model_ready_versioned(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result<Json<Value>> {
    ready(&state, &name, Some(&version))
}

fn ready(state: &AppState, name: &str, version: Option<&str>) -> V2Result<Json<Value>> {
    check_model(state, name, version)?;
    match not_ready(state) {
        None => Ok(Json(json!({ "name": name, "ready": true }))),
        Some(e) => Err(e),
    }
}

async fn infer(State(state): State<AppState>, req: Request) -> Response {
    let timeout = state.0.config.request_timeout;
    let started = std::time::Instant::now();
    let response = match tokio::time::timeout(timeout, infer_request(&state, req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("not answered within {timeout:?}; send fewer images per request or retry later"),
        )
        .into_response(),
    };
    state.0.metrics.latency.observe(started.elapsed().as_secs_f64());
    response
}

async fn infer_request(state: &AppState, req: Request) -> V2Result<Response> {
    let (parts, body) = req.into_parts();
    let name_version = parts.uri.path().trim_start_matches("/v2/models/").trim_end_matches("/infer").to_string();
    let (name, version) = match name_version.split_once("/versions/") {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (name_version, None),
    };
    check_model(state, &name, version.as_deref())?;
    if let Some(e) = not_ready(state) {
        return Err(e.with_status(StatusCode::SERVICE_UNAVAILABLE));
    }
    let body = Bytes::from_request(Request::from_parts(parts.clone(), Body::new(body)), &())
        .await
        .map_err(|e| rejection(e.status(), e.body_text()))?;
    let state_in = state.clone();
    let headers = parts.headers.clone();
    // Parsing a large body takes a while: off the async threads.
    let parsed = tokio::task::spawn_blocking(move || parse(&state_in, &headers, &body))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("parsing failed: {e}")))??;
    let Parsed { id, tensor, softmax, top_k, outputs } = parsed;
    let raw = match tensor {
        Tensor::Images(bytes) => {
            let sources = bytes.into_iter().map(|b| Ok(Source::Bytes(b))).collect();
            let (decoded, batch, _) = decode_all(state, sources, false).await?;
            if let Some((i, e)) = decoded.iter().enumerate().find_map(|(i, d)| d.as_ref().err().map(|e| (i, e))) {
                return Err(ApiError::new(e.code, format!("input '{IMAGE_INPUT}' element {i}: {}", e.message)));
            }
            let batch = batch.ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "no image in the request"))?;
            run_model(state, batch).await?
        }
        Tensor::Preprocessed(batch) => run_model(state, batch).await?,
    };
    // Building the answer (a JSON array of every score) is CPU work: off the
    // async threads, as parsing is.
    let state_in = state.clone();
    tokio::task::spawn_blocking(move || answer(&state_in, id, raw, softmax, top_k, outputs))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("building the answer failed: {e}")))?
}

/// The response: each requested output built once, JSON or binary.
fn answer(
    state: &AppState,
    id: Option<String>,
    raw: Vec<Vec<f32>>,
    softmax: bool,
    top_k: usize,
    outputs: Vec<(&'static str, bool)>,
) -> V2Result<Response> {
    let model = state.0.model.get().ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "the model is not loaded"))?;
    let n = raw.len();
    let scores: Vec<Vec<f32>> =
        raw.into_iter().map(|r| if softmax { model.kind.probabilities(&r) } else { r }).collect();
    let any_binary = outputs.iter().any(|(_, as_binary)| *as_binary);
    let mut json_outputs = Vec::new();
    let mut binary = Vec::new();
    for (output, as_binary) in outputs {
        let (datatype, shape, data, bytes): (&str, Vec<usize>, Value, Vec<u8>) = if output == PROBABILITIES_OUTPUT {
            let flat: Vec<f32> = scores.iter().flatten().copied().collect();
            let bytes = if as_binary { flat.iter().flat_map(|v| v.to_le_bytes()).collect() } else { Vec::new() };
            ("FP32", vec![n, model.labels.len()], json!(flat), bytes)
        } else {
            let top: Vec<&str> = scores
                .iter()
                .flat_map(|row| {
                    cvtk_core::top_k(row, top_k).into_iter().map(|i| model.labels[i].as_str()).collect::<Vec<_>>()
                })
                .collect();
            let bytes = if as_binary {
                top.iter().flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes())).collect()
            } else {
                Vec::new()
            };
            ("BYTES", vec![n, top_k], json!(top), bytes)
        };
        let mut o = json!({ "name": output, "datatype": datatype, "shape": shape });
        if as_binary {
            o["parameters"] = json!({ "binary_data_size": bytes.len() });
            binary.extend_from_slice(&bytes);
        } else {
            o["data"] = data;
        }
        json_outputs.push(o);
    }
    let (served, served_version) = identity(state);
    let mut answer = json!({ "model_name": served, "model_version": served_version, "outputs": json_outputs });
    if let Some(id) = id {
        answer["id"] = json!(id);
    }
    if !any_binary {
        return Ok(Json(answer).into_response());
    }
    let head = serde_json::to_vec(&answer).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let length = head.len().to_string();
    let mut body = head;
    body.extend_from_slice(&binary);
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&length) {
        h.insert(HEADER_LENGTH, v);
    }
    Ok(response)
}
