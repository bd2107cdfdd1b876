//! The service's wire format, shared by the server and the [`crate::Client`].
//!
//! `POST /score` accepts:
//! - the original package's payload, a JSON list of
//!   `{"image_in_base64": "...", "parameters": {"add_softmax": true}}` objects
//!   (the Python client's `"b'...'"` form of the string is accepted too, and so
//!   is a `data:image/...;base64,` URL); an item may give `"image_url"`
//!   instead, which the service fetches only when its [`crate::UrlPolicy`]
//!   allows the host;
//! - the MNIST tutorial's `{"data": [[pixel, ...], ...]}`: one row per image,
//!   `height * width` values (or `height * width * 3`, interleaved RGB) on a
//!   0..=`max_value` scale (default 255), for models whose input is small;
//! - a raw `image/jpeg`, `image/png` (any `image/*`) or
//!   `application/octet-stream` body: one image;
//! - `multipart/form-data`: one image per file part.
//!
//! For the last two, and as a default for the others, the query parameter
//! `?add_softmax=true` asks for probabilities.
//!
//! The answer is a [`ScoreResponse`]: one entry per input, in order, either a
//! [`ScoreResult`] or an [`ErrorDetail`]. A request in which every image failed
//! gets a 4xx whose body is an [`ErrorResponse`] holding the same entries.

use base64::Engine;
use cvtk_core::{Ranked, ScoreKind};
/// What went wrong, with a stable code: `bad_json`, `bad_request`,
/// `bad_base64`, `bad_image`, `image_too_large`, `bad_pixels`,
/// `url_not_allowed`, `url_fetch_failed`, `empty`, `too_many_images`,
/// `body_too_large`, `unsupported_media_type`, `unauthorized`, `overloaded`,
/// `timeout`, `not_ready`, `internal`.
pub use cvtk_http::{ErrorCode, ErrorDetail};
use serde::{Deserialize, Serialize};

/// Scoring options of one item (the original's `parameters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// Return calibrated probabilities (the softmax of the raw scores divided
    /// by the model's calibration temperature) instead of raw scores (logits,
    /// or SVM decision values). By default, false, as in the original.
    #[serde(default)]
    pub add_softmax: bool,
}

/// One item of the original package's JSON list payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageItem {
    /// The encoded image (JPEG, PNG, ...) in standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_in_base64: Option<String>,
    /// An image URL for the service to fetch (needs the service's allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Scoring options; absent means the request's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

impl ImageItem {
    /// An item carrying `bytes`, base64-encoded.
    pub fn from_bytes(bytes: &[u8], parameters: Parameters) -> Self {
        ImageItem {
            image_in_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            image_url: None,
            parameters: Some(parameters),
        }
    }
}

/// The MNIST tutorial's payload: rows of pixel values, one row per image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelRequest {
    /// One row per image: `height * width` gray values, or `height * width * 3`
    /// interleaved RGB values, row-major.
    pub data: Vec<Vec<f64>>,
    /// The value that means full intensity. By default, 255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    /// Scoring options for every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// One image's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreResult {
    /// The label with the highest score.
    pub label: String,
    /// Its score.
    pub score: f32,
    /// Every label's score, in [`ScoreResponse::labels`] order.
    pub scores: Vec<f32>,
    /// Whether the scores are probabilities (`add_softmax` was asked for).
    pub softmax: bool,
    /// What the scores are: [`ScoreKind::Probabilities`], or the model's raw
    /// kind with the temperature that turns it into the same probabilities.
    pub score_kind: ScoreKind,
    /// The [`TOP`] most probable labels, best first, with their calibrated
    /// probabilities whatever `softmax` says: a prediction in the shape
    /// `cvtk predict --json` and `cvtk score`'s rows give it.
    #[serde(default)]
    pub top: Vec<Ranked>,
}

/// How many labels a [`ScoreResult`]'s `top` holds at most.
pub const TOP: usize = 5;

/// One entry of a response: scores, or the error of that one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemResult {
    /// The image was scored.
    Scored(ScoreResult),
    /// The image could not be scored.
    Failed {
        /// Why.
        error: ErrorDetail,
    },
}

impl ItemResult {
    /// As a `Result`.
    pub fn into_result(self) -> Result<ScoreResult, ErrorDetail> {
        match self {
            ItemResult::Scored(s) => Ok(s),
            ItemResult::Failed { error } => Err(error),
        }
    }
}

/// The body of a successful `POST /score`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// The model's labels, in score order.
    pub labels: Vec<String>,
    /// One entry per input, in input order.
    pub results: Vec<ItemResult>,
}

/// At most this many images in one `POST /explain` (fewer when the
/// service's own per-request limit is lower): a map costs more than a score.
pub const MAX_EXPLAIN_IMAGES: usize = 16;

/// One image's explanation in a `POST /explain` answer: where in the image
/// the evidence for a label was (its class activation map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainResult {
    /// The label mapped: the predicted one, or the request's `?label=`.
    pub label: String,
    /// Its calibrated probability.
    pub probability: f32,
    /// The predicted label.
    pub predicted: String,
    /// The predicted label's probability.
    pub predicted_probability: f32,
    /// The map: `height` rows of `width` cells over the image as the model
    /// sees it, in score units (its mean plus the head's bias is the label's
    /// raw score).
    pub map: cvtk_model::Heatmap,
    /// The map alone as a PNG (turbo colours, strongest red), base64.
    pub map_png_base64: String,
    /// The map over the image as the model took it (resized), with a colour
    /// scale on the right, as a PNG in base64: what `cvtk explain` draws.
    pub overlay_png_base64: String,
}

/// One entry of an explain answer: a map, or the error of that one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExplainItem {
    /// The image was explained.
    Explained(Box<ExplainResult>),
    /// The image could not be explained.
    Failed {
        /// Why.
        error: ErrorDetail,
    },
}

/// The body of a successful `POST /explain`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainResponse {
    /// The model's labels, in score order.
    pub labels: Vec<String>,
    /// How the maps were made (`cam`).
    pub method: cvtk_model::Method,
    /// One entry per input, in input order.
    pub results: Vec<ExplainItem>,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorDetail,
    /// For a request whose every image failed: each image's error, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ItemResult>,
}

/// Decodes an `image_in_base64` string: standard base64, padding optional,
/// whitespace ignored; the Python client's `"b'...'"` wrapping and a
/// `data:...;base64,` prefix are stripped first.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, ErrorDetail> {
    let mut s = s.trim();
    for (open, close) in [("b'", "'"), ("b\"", "\"")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            s = inner;
        }
    }
    if s.starts_with("data:") {
        s = s.split_once(";base64,").map(|(_, data)| data).unwrap_or(s);
    }
    // Python's base64.encodebytes breaks lines, and its repr shows them as "\n".
    let cleaned: String = s.replace("\\n", "").chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if cleaned.is_empty() {
        return Err(ErrorDetail::new(ErrorCode::BadBase64, "image_in_base64 is empty"));
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(cleaned.as_bytes()).map_err(|e| {
        ErrorDetail::new(
            ErrorCode::BadBase64,
            format!("image_in_base64 is not valid base64 ({e}); send the file's bytes base64-encoded"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_accepts_the_python_client_forms() {
        let want = b"\x89PNG\r\n".to_vec();
        for s in
            ["iVBORw0K", "b'iVBORw0K'", "b\"iVBORw0K\"", "iVBO\nRw0K", "iVBORw0K\\n", "data:image/png;base64,iVBORw0K"]
        {
            assert_eq!(decode_base64(s).unwrap(), want, "{s}");
        }
        assert_eq!(decode_base64("aGk").unwrap(), b"hi", "padding is optional");
    }

    #[test]
    fn base64_errors_have_codes() {
        assert_eq!(decode_base64("not base64!").unwrap_err().code, ErrorCode::BadBase64);
        assert_eq!(decode_base64("b''").unwrap_err().code, ErrorCode::BadBase64);
    }

    #[test]
    fn item_results_round_trip_untagged() {
        let ok = ItemResult::Scored(ScoreResult {
            label: "a".into(),
            score: 0.5,
            scores: vec![0.5, 0.5],
            softmax: true,
            score_kind: ScoreKind::Probabilities,
            top: vec![Ranked { label: "a".into(), probability: 0.5 }],
        });
        let bad = ItemResult::Failed { error: ErrorDetail::new(ErrorCode::BadImage, "no") };
        for r in [ok, bad] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<ItemResult>(&json).unwrap(), r, "{json}");
        }
    }
}
