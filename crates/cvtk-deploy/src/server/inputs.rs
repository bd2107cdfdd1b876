//! Turning a `/score` request body into images: the payload forms of
//! [`crate::api`], each input checked on its own so one bad image fails alone.

use cvtk_dataset::{ColorMode, ImageLoader};
use image::RgbImage;
use serde_json::Value;

use super::ApiError;
use crate::api::{decode_base64, ErrorDetail, ImageItem, Parameters, PixelRequest};

/// Where one input's pixels come from.
pub(crate) enum Source {
    Bytes(Vec<u8>),
    Url(String),
    Pixels { row: Vec<f64>, max_value: f64 },
}

/// One input of a request: its source (or why it has none) and its options.
pub(crate) struct Input {
    pub source: Result<Source, ErrorDetail>,
    pub softmax: bool,
}

/// Parses a JSON body in any of the accepted forms.
pub(crate) fn from_json(body: &[u8], softmax: bool) -> Result<Vec<Input>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_json", format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Array(items) => Ok(items.into_iter().map(|v| item(v, softmax)).collect()),
        Value::Object(ref map) if map.contains_key("data") => {
            let req: PixelRequest = serde_json::from_value(value).map_err(|e| {
                ApiError::bad_request("bad_request", format!("{e}; expected {{\"data\": [[pixel, ...], ...]}}"))
            })?;
            let max_value = req.max_value.unwrap_or(255.0);
            if !(max_value.is_finite() && max_value > 0.0) {
                return Err(ApiError::bad_request(
                    "bad_request",
                    format!("max_value must be positive, not {max_value}"),
                ));
            }
            let softmax = req.parameters.map_or(softmax, |p| p.add_softmax);
            Ok(req
                .data
                .into_iter()
                .map(|row| Input { source: Ok(Source::Pixels { row, max_value }), softmax })
                .collect())
        }
        Value::Object(ref map) if map.contains_key("image_in_base64") || map.contains_key("image_url") => {
            Ok(vec![item(value, softmax)])
        }
        _ => Err(ApiError::bad_request(
            "bad_request",
            "expected a list of {\"image_in_base64\": ...} objects, or {\"data\": [[pixel, ...], ...]}",
        )),
    }
}

fn item(value: Value, softmax: bool) -> Input {
    let parsed: Result<ImageItem, _> = serde_json::from_value(value);
    match parsed {
        Err(e) => Input {
            source: Err(ErrorDetail::new(
                "bad_request",
                format!(
                    "{e}; each item is {{\"image_in_base64\": \"...\", \"parameters\": {{\"add_softmax\": true}}}}"
                ),
            )),
            softmax,
        },
        Ok(it) => {
            let softmax = it.parameters.map_or(softmax, |p: Parameters| p.add_softmax);
            let source = match (it.image_in_base64, it.image_url) {
                (Some(b), None) => decode_base64(&b).map(Source::Bytes),
                (None, Some(u)) => Ok(Source::Url(u)),
                (Some(_), Some(_)) => {
                    Err(ErrorDetail::new("bad_request", "give image_in_base64 or image_url, not both"))
                }
                (None, None) => {
                    Err(ErrorDetail::new("bad_request", "the item has neither image_in_base64 nor image_url"))
                }
            };
            Input { source, softmax }
        }
    }
}

/// Decodes and resizes one input (URLs must have been fetched already).
pub(crate) fn decode(loader: &ImageLoader, index: usize, source: Source) -> Result<RgbImage, ErrorDetail> {
    match source {
        Source::Bytes(bytes) => loader.load_image_bytes(&bytes, &format!("image {index}")).map_err(|e| match e {
            cvtk_dataset::Error::TooLarge { .. } => ErrorDetail::new("image_too_large", e.to_string()),
            _ => ErrorDetail::new("bad_image", format!("{e}; send a JPEG, PNG, GIF, BMP, TIFF or WebP file")),
        }),
        Source::Pixels { row, max_value } => {
            let img = pixels(loader, &row, max_value)?;
            loader.resize(&img).map_err(|e| ErrorDetail::new("bad_pixels", e.to_string()))
        }
        Source::Url(_) => Err(ErrorDetail::new("internal", "URL was not fetched")),
    }
}

/// A row of pixel values as an image of the model's input size.
fn pixels(loader: &ImageLoader, row: &[f64], max_value: f64) -> Result<RgbImage, ErrorDetail> {
    let c = loader.config();
    let (w, h) = (c.width, c.height);
    let plane = (w * h) as usize;
    let channels = match row.len() {
        n if n == plane => 1,
        n if n == plane * 3 => 3,
        n => {
            let hint = match c.color {
                ColorMode::Gray => format!("{plane} gray values ({w}x{h})"),
                ColorMode::Rgb => format!("{plane} gray values or {} interleaved RGB values ({w}x{h})", plane * 3),
            };
            return Err(ErrorDetail::new("bad_pixels", format!("a row of {n} values; this model takes {hint}")));
        }
    };
    if let Some(v) = row.iter().find(|v| !(v.is_finite() && **v >= 0.0 && **v <= max_value)) {
        return Err(ErrorDetail::new(
            "bad_pixels",
            format!("value {v} is outside 0..={max_value} (set max_value if your scale differs)"),
        ));
    }
    let to_u8 = |v: f64| (v / max_value * 255.0).round() as u8;
    let data: Vec<u8> = if channels == 1 {
        row.iter().flat_map(|&v| [to_u8(v); 3]).collect()
    } else {
        row.iter().map(|&v| to_u8(v)).collect()
    };
    RgbImage::from_raw(w, h, data).ok_or_else(|| ErrorDetail::new("internal", "pixel buffer size"))
}
