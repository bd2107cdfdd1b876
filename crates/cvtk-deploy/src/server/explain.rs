//! `POST /explain`: the same inputs as `/score` (and the same key, limits and
//! hardening), at most [`MAX_EXPLAIN_IMAGES`] images; for each, the class
//! activation map of its predicted label (or of `?label=NAME`) as numbers, as
//! a PNG, and over the image as the model took it.

use axum::extract::{Query, Request, State};
use axum::response::Response;
use axum::Json;
use base64::Engine;
use cvtk_http::{ApiError, ErrorCode};
use cvtk_model::Method;

use super::score::{decode_all, none_usable, read_request, run_job, within_time_limit};
use super::worker::decode_maps;
use super::AppState;
use crate::api::{ExplainItem, ExplainResponse, ExplainResult, MAX_EXPLAIN_IMAGES};

/// The side of the map-alone PNG, in pixels.
const MAP_PNG_SIDE: u32 = 112;

pub(super) async fn explain(State(state): State<AppState>, req: Request) -> Response {
    let latency = &state.0.metrics.explain_latency;
    within_time_limit(&state, latency, "explained", explain_request(&state, req)).await
}

/// The query string: `?label=NAME` (percent-encoded), other keys ignored.
#[derive(serde::Deserialize)]
struct ExplainQuery {
    label: Option<String>,
}

async fn explain_request(state: &AppState, req: Request) -> std::result::Result<Json<ExplainResponse>, ApiError> {
    let inner = &state.0;
    let label = Query::<ExplainQuery>::try_from_uri(req.uri())
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("the query string is not valid: {}", e.body_text())))?
        .0
        .label;
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
