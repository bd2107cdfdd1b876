//! `POST /score`: read the request's images (JSON, raw bytes or multipart),
//! decode them within the decoding-memory budget, score them through the
//! model worker's batching queue, and answer with one result per image.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cvtk_core::{first_max, Ranked, ScoreKind};
use cvtk_dataset::ImageBatch;
use cvtk_http::{ApiError, ErrorCode};
use tokio::sync::oneshot;

use super::fetch;
use super::inputs::{self, Input, Source};
use super::worker::{Job, Refused};
use super::{AppState, CancelOnDrop, LoadState};
use crate::api::{ErrorDetail, ItemResult, ScoreResponse, ScoreResult, TOP};

pub(super) async fn score(State(state): State<AppState>, req: Request) -> Response {
    within_time_limit(&state, &state.0.metrics.latency, "scored", score_request(&state, req)).await
}

/// `answer`'s response, or a `timeout` error once the request time limit
/// passes (the answer is then dropped, which stops its decoding); the time
/// taken goes into `latency`. `done` says what did not happen in time.
pub(super) async fn within_time_limit<T: IntoResponse>(
    state: &AppState,
    latency: &prometheus_client::metrics::histogram::Histogram,
    done: &str,
    answer: impl std::future::Future<Output = std::result::Result<T, ApiError>>,
) -> Response {
    let started = Instant::now();
    let timeout = state.0.config.request_timeout;
    let response = match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(r)) => r.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("not {done} within {timeout:?}; send fewer images per request or retry later"),
        )
        .into_response(),
    };
    latency.observe(started.elapsed().as_secs_f64());
    response
}

/// `add_softmax` from the query string (default false).
fn query_softmax(query: Option<&str>) -> std::result::Result<bool, ApiError> {
    let mut softmax = false;
    for (k, v) in query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
    {
        match (k, v) {
            ("add_softmax", "true" | "1" | "") => softmax = true,
            ("add_softmax", "false" | "0") => softmax = false,
            ("add_softmax", other) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("add_softmax must be true or false, not '{other}'"),
                ))
            }
            _ => {}
        }
    }
    Ok(softmax)
}

/// The answer to a body the HTTP stack refused to read: over the limit (413,
/// `body_too_large`), or malformed (its status, `bad_request`).
pub(super) fn rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            "the request body is over this service's limit; send fewer or smaller images per request",
        )
    } else {
        ApiError::new(ErrorCode::BadRequest, text).with_status(status)
    }
}

async fn read_inputs(
    req: Request,
    default_softmax: bool,
    limits: inputs::JsonLimits,
) -> std::result::Result<Vec<Input>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if content_type.as_deref() == Some("multipart/form-data") {
        let mut multipart =
            Multipart::from_request(req, &()).await.map_err(|e| rejection(e.status(), e.body_text()))?;
        let mut inputs = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(|e| rejection(e.status(), e.body_text()))? {
            if inputs.len() == limits.max_images {
                return Err(inputs::too_many(limits.max_images));
            }
            let bytes = field.bytes().await.map_err(|e| rejection(e.status(), e.body_text()))?;
            inputs.push(Input { source: Ok(Source::Bytes(bytes.to_vec())), softmax: default_softmax });
        }
        return Ok(inputs);
    }
    let body = Bytes::from_request(req, &()).await.map_err(|e| rejection(e.status(), e.body_text()))?;
    let is_json = match content_type.as_deref() {
        Some(t) if t == "application/json" || t.ends_with("+json") => true,
        Some(t) if t.starts_with("image/") || t == "application/octet-stream" => false,
        None => body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'[' || *b == b'{'),
        Some(t) => {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType,
                format!("content type {t} is not accepted; use application/json, image/*, application/octet-stream or multipart/form-data"),
            ))
        }
    };
    if is_json {
        // Parsing a large body takes a while: off the async threads.
        tokio::task::spawn_blocking(move || inputs::from_json(&body, default_softmax, limits))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("parsing failed: {e}")))?
    } else {
        Ok(vec![Input { source: Ok(Source::Bytes(body.to_vec())), softmax: default_softmax }])
    }
}

async fn score_request(state: &AppState, req: Request) -> std::result::Result<Json<ScoreResponse>, ApiError> {
    let inner = &state.0;
    let default_softmax = query_softmax(req.uri().query())?;
    let inputs = read_request(state, req, default_softmax, inner.config.max_images_per_request).await?;
    let softmaxes: Vec<bool> = inputs.iter().map(|i| i.softmax).collect();
    let (decoded, batch, _) = decode_all(state, inputs.into_iter().map(|i| i.source).collect(), false).await?;
    let Some(images) = batch else {
        return Err(none_usable(decoded));
    };

    let rows = run_model(state, images).await?;
    let (labels, kind) = inner
        .model
        .get()
        .map(|m| (m.labels.clone(), m.kind))
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "the model is not loaded"))?;
    let mut rows = rows.into_iter();
    let results = decoded
        .into_iter()
        .zip(softmaxes)
        .map(|(d, sm)| match d {
            Err(error) => ItemResult::Failed { error },
            Ok(()) => {
                let raw = rows.next().unwrap_or_default();
                let probabilities = kind.probabilities(&raw);
                let top = Ranked::top(&labels, &probabilities, TOP);
                let (scores, score_kind) = if sm { (probabilities, ScoreKind::Probabilities) } else { (raw, kind) };
                let best = first_max(&scores);
                ItemResult::Scored(ScoreResult {
                    label: labels.get(best).cloned().unwrap_or_default(),
                    score: scores.get(best).copied().unwrap_or(f32::NAN),
                    scores,
                    softmax: sm,
                    score_kind,
                    top,
                })
            }
        })
        .collect();
    Ok(Json(ScoreResponse { labels, results }))
}

/// What [`decode_all`] gives: each input's outcome, the batch of those that
/// decoded, and (when kept) those images as the model takes them.
pub(super) type Decoded = (Vec<std::result::Result<(), ErrorDetail>>, Option<ImageBatch>, Vec<image::RgbImage>);

/// A request's inputs, read and checked: the model is ready (the body's
/// limits depend on its input size), there is at least one image and at most
/// `max`, and its URLs are fetched (all of them together at most the body
/// limit).
pub(super) async fn read_request(
    state: &AppState,
    req: Request,
    default_softmax: bool,
    max: usize,
) -> std::result::Result<Vec<Input>, ApiError> {
    let inner = &state.0;
    let max_row = match (state.load_state(), inner.model.get()) {
        (LoadState::Ready, Some(model)) => {
            let c = model.loader.config();
            (c.width as usize) * (c.height as usize) * 3
        }
        (LoadState::Unready(e), _) => return Err(ApiError::new(ErrorCode::NotReady, e)),
        _ => return Err(ApiError::new(ErrorCode::NotReady, "the model is not loaded yet; retry")),
    };
    let mut inputs = read_inputs(req, default_softmax, inputs::JsonLimits { max_images: max, max_row }).await?;
    if inputs.is_empty() {
        return Err(ApiError::new(ErrorCode::Empty, "the request holds no image; send at least one"));
    }
    if inputs.len() > max {
        return Err(ApiError::new(
            ErrorCode::TooManyImages,
            format!("{} images in one request; this service takes at most {max}", inputs.len()),
        ));
    }
    let mut budget = inner.config.max_body_bytes as u64;
    for input in &mut inputs {
        if let Ok(Source::Url(url)) = &input.source {
            input.source = fetch::fetch(inner.fetcher.as_ref(), url, &mut budget).await.map(Source::Bytes);
        }
    }
    Ok(inputs)
}

/// The answer to a request none of whose images decoded: the one error, or
/// the first with the count, and every image's error.
pub(super) fn none_usable(decoded: Vec<std::result::Result<(), ErrorDetail>>) -> ApiError {
    let results: Vec<ItemResult> =
        decoded.into_iter().filter_map(|d| d.err()).map(|error| ItemResult::Failed { error }).collect();
    let first = match results.first() {
        Some(ItemResult::Failed { error }) => error.clone(),
        _ => ErrorDetail::new(ErrorCode::BadRequest, "no usable image"),
    };
    let detail = if results.len() == 1 {
        first
    } else {
        ErrorDetail::new(
            first.code,
            format!("none of the {} images could be scored; the first: {}", results.len(), first.message),
        )
    };
    ApiError::from(detail).with("results", results)
}

/// Decodes `sources` on a decoding slot (held until the decoding really
/// stops; a dropped request stops it after the image in hand): each input's
/// outcome, and the batch of those that decoded, in order; with `keep`, the
/// decoded images too (resized as the model takes them).
pub(super) async fn decode_all(
    state: &AppState,
    sources: Vec<std::result::Result<Source, ErrorDetail>>,
    keep: bool,
) -> std::result::Result<Decoded, ApiError> {
    let inner = &state.0;
    let decoder = state.clone();
    // The semaphore is never closed, so acquiring only waits.
    let slot = inner
        .decode_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    // When this request is dropped (its time limit passed, or its client
    // left), the guard tells the decoder to stop after the current image.
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let cancelled = cancel.0.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let Some(model) = decoder.0.model.get() else {
            return Err(ApiError::new(ErrorCode::NotReady, "the model is not loaded"));
        };
        let mut ok_images = Vec::new();
        let mut decoded: Vec<std::result::Result<(), ErrorDetail>> = Vec::with_capacity(sources.len());
        for (i, source) in sources.into_iter().enumerate() {
            if cancelled.load(Ordering::Relaxed) {
                decoder.0.metrics.decodes_cancelled.inc();
                return Err(ApiError::new(ErrorCode::Timeout, "cancelled"));
            }
            // The image's share of the decoding memory, held while it decodes.
            let _memory = match &source {
                Ok(Source::Bytes(bytes)) => decoder.decode_memory_for(bytes),
                _ => None,
            };
            // Waiting for memory may have outlived the request.
            if cancelled.load(Ordering::Relaxed) {
                decoder.0.metrics.decodes_cancelled.inc();
                return Err(ApiError::new(ErrorCode::Timeout, "cancelled"));
            }
            let img = source.and_then(|source| inputs::decode(&model.loader, i, source));
            decoder.0.metrics.decoded.inc();
            decoded.push(img.map(|img| ok_images.push(img)));
        }
        let batch = if ok_images.is_empty() {
            None
        } else {
            Some(model.loader.to_batch(&ok_images).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?)
        };
        Ok((decoded, batch, if keep { ok_images } else { Vec::new() }))
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("decoding failed: {e}")))?;
    drop(cancel);
    result
}

impl AppState {
    /// Waits for, and takes, the decoding memory an encoded image's header
    /// says it needs: `2 x bytes per pixel + 3` a pixel for its decoded
    /// colour type, at most the whole budget (none for an image the decoder
    /// will refuse from its header, or one whose header cannot be read).
    /// Called on a blocking thread.
    fn decode_memory_for(&self, bytes: &[u8]) -> Option<tokio::sync::OwnedSemaphorePermit> {
        use image::ImageDecoder;
        let decoder =
            image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().ok()?.into_decoder().ok()?;
        let (w, h) = decoder.dimensions();
        let pixels = u64::from(w) * u64::from(h);
        if pixels > self.0.config.max_pixels {
            return None;
        }
        let per_pixel = 2 * u64::from(decoder.color_type().bytes_per_pixel()) + 3;
        let budget_kib = (self.0.config.decode_memory_bytes >> 10).clamp(1, u64::from(u32::MAX));
        let kib = (pixels * per_pixel).div_ceil(1024).clamp(1, budget_kib) as u32;
        let memory = self.0.decode_memory.clone();
        match memory.clone().try_acquire_many_owned(kib) {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.0.metrics.decode_memory_waits.inc();
                tokio::runtime::Handle::current().block_on(memory.acquire_many_owned(kib)).ok()
            }
        }
    }
}

/// Scores `images` through the model worker's batching queue: one row of raw
/// scores per image.
pub(super) async fn run_model(state: &AppState, images: ImageBatch) -> std::result::Result<Vec<Vec<f32>>, ApiError> {
    run_job(state, images, false).await
}

/// [`run_model`], or with `explain` the images' class activation maps (rows
/// for [`super::worker::decode_maps`]); a model that cannot make them is a
/// `bad_request` saying so.
pub(super) async fn run_job(
    state: &AppState,
    images: ImageBatch,
    explain: bool,
) -> std::result::Result<Vec<Vec<f32>>, ApiError> {
    let (tx, rx) = oneshot::channel();
    let job = if explain { Job::explain(images, tx) } else { Job::new(images, tx) };
    state.0.queue.try_send(job).map_err(|e| match e {
        Refused::Full => ApiError::new(ErrorCode::Overloaded, "the service is at capacity; retry after a second"),
        Refused::Stopped => ApiError::new(ErrorCode::NotReady, "the model worker has stopped"),
    })?;
    rx.await.map_err(|_| ApiError::new(ErrorCode::NotReady, "the model worker has stopped"))?.map_err(|e| {
        if e.out_of_memory {
            ApiError::new(
                ErrorCode::OutOfMemory,
                "the model ran out of memory scoring this request; retry later, or with fewer images",
            )
        } else if explain && (e.message.contains("no feature map") || e.message.contains("no class activation maps")) {
            ApiError::new(ErrorCode::BadRequest, format!("this model cannot explain: {}", e.message))
        } else {
            ApiError::new(ErrorCode::Internal, "scoring failed; see the service log")
        }
    })
}
