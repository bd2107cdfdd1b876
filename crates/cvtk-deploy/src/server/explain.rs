//! `POST /explain`: the same inputs as `/score` (and the same key, limits and
//! hardening), at most [`MAX_EXPLAIN_IMAGES`] images; for each, the class
//! activation map of its predicted label (or of `?label=NAME`) as numbers, as
//! a PNG, and over the image as the model took it.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use cvtk_http::{ApiError, ErrorCode};
use cvtk_model::Method;

use super::score::{decode_all, none_usable, read_request, run_job};
use super::worker::decode_maps;
use super::AppState;
use crate::api::{ExplainItem, ExplainResponse, ExplainResult, MAX_EXPLAIN_IMAGES};

/// The side of the map-alone PNG, in pixels.
const MAP_PNG_SIDE: u32 = 112;

pub(super) async fn explain(State(state): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let timeout = state.0.config.request_timeout;
    let response = match tokio::time::timeout(timeout, explain_request(&state, req)).await {
        Ok(Ok(r)) => r.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("not explained within {timeout:?}; send fewer images per request or retry later"),
        )
        .into_response(),
    };
    state.0.metrics.explain_latency.observe(started.elapsed().as_secs_f64());
    response
}

/// `label` from the query string, if given.
fn query_label(query: Option<&str>) -> std::result::Result<Option<String>, ApiError> {
    let mut label = None;
    for (k, v) in query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
    {
        if k == "label" {
            let decoded = percent_decode(v)
                .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "label= is not valid percent-encoded UTF-8"))?;
            label = Some(decoded);
        }
    }
    Ok(label)
}

/// `%XX` and `+` decoding of a query value; None if it is not UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn explain_request(state: &AppState, req: Request) -> std::result::Result<Json<ExplainResponse>, ApiError> {
    let inner = &state.0;
    let label = query_label(req.uri().query())?;
    let (labels, kind, loader) = inner
        .model
        .get()
        .map(|m| (m.labels.clone(), m.kind, m.loader.config().clone()))
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "the model is not loaded yet; retry"))?;
    let target = match &label {
        Some(name) => Some(labels.iter().position(|l| l == name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("the model has no label '{name}' (its labels: {})", labels.join(", ")),
            )
        })?),
        None => None,
    };
    let max = inner.config.max_images_per_request.min(MAX_EXPLAIN_IMAGES);
    let inputs = read_request(state, req, false, max).await?;
    let (decoded, batch, pictures) = decode_all(state, inputs.into_iter().map(|i| i.source).collect(), true).await?;
    let Some(images) = batch else {
        return Err(none_usable(decoded));
    };
    let rows = run_job(state, images, true).await?;
    // Drawing PNGs takes a while: off the async threads.
    let results = tokio::task::spawn_blocking(move || {
        let mut made = rows.iter().zip(pictures);
        decoded
            .into_iter()
            .map(|d| match d {
                Err(error) => ExplainItem::Failed { error },
                Ok(()) => match made
                    .next()
                    .and_then(|(row, picture)| explained(row, &picture, &labels, kind, target, &loader))
                {
                    Some(r) => ExplainItem::Explained(Box::new(r)),
                    None => ExplainItem::Failed {
                        error: cvtk_http::ErrorDetail::new(ErrorCode::Internal, "the model gave no map for this image"),
                    },
                },
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("drawing the maps failed: {e}")))?;
    let labels = inner.model.get().map(|m| m.labels.clone()).unwrap_or_default();
    Ok(Json(ExplainResponse { labels, method: Method::Cam, results }))
}

/// One image's answer from its worker row.
fn explained(
    row: &[f32],
    picture: &image::RgbImage,
    labels: &[String],
    kind: cvtk_core::ScoreKind,
    target: Option<usize>,
    loader: &cvtk_dataset::LoaderConfig,
) -> Option<ExplainResult> {
    let maps = decode_maps(row, labels.len())?;
    let probabilities = kind.probabilities(&maps.scores);
    let best = cvtk_core::first_max(&probabilities);
    let t = target.unwrap_or(best);
    let map = maps.map(t)?;
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let map_png = map.png(MAP_PNG_SIDE).ok()?;
    // The picture is the model's input already: its whole area is the map's.
    let whole = cvtk_dataset::LoaderConfig { resize: cvtk_dataset::ResizeMode::Squash, ..loader.clone() };
    let overlay = cvtk_model::explain::encode_png(&map.overlay(picture, &whole)).ok()?;
    Some(ExplainResult {
        label: labels.get(t)?.clone(),
        probability: probabilities.get(t).copied()?,
        predicted: labels.get(best)?.clone(),
        predicted_probability: probabilities.get(best).copied()?,
        map,
        map_png_base64: b64(map_png),
        overlay_png_base64: b64(overlay),
    })
}
