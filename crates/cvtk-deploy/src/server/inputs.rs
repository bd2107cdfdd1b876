//! Turning a `/score` request body into images: the payload forms of
//! [`crate::api`], each input checked on its own so one bad image fails alone.

use cvtk_dataset::{ColorMode, ImageLoader};
use std::cell::Cell;

use image::RgbImage;
use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ApiError;
use crate::api::{decode_base64, ErrorCode, ErrorDetail, ImageItem, Parameters};

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

/// How much a JSON body may ask for: checked while it is parsed, so a body of
/// millions of tiny items costs no more than the first few over the limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JsonLimits {
    /// Items (or `data` rows) accepted in one body.
    pub max_images: usize,
    /// Values accepted in one `data` row: the model's `height * width * 3`.
    pub max_row: usize,
}

/// The first limit a body went over, set by the visitors below (serde's own
/// error would carry only a message).
type Overflow = Cell<Option<ApiError>>;

/// The answer to a body holding more than `max` images.
pub(crate) fn too_many(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyImages,
        format!("more than {max} images in one request; this service takes at most {max}"),
    )
}

/// Parses a JSON body in any of the accepted forms, streaming: the list and
/// its rows are counted as they are read, and parsing stops at the first item
/// or value past [`JsonLimits`]. Nothing is parsed into a generic JSON value,
/// so memory stays proportional to what is kept, not to the item count.
pub(crate) fn from_json(body: &[u8], softmax: bool, limits: JsonLimits) -> Result<Vec<Input>, ApiError> {
    let overflow = Overflow::new(None);
    let bad_json = |e: serde_json::Error, overflow: &Overflow| {
        overflow.take().unwrap_or_else(|| ApiError::new(ErrorCode::BadJson, format!("the body is not valid JSON: {e}")))
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let seed = Items { max: limits.max_images, overflow: &overflow };
            let mut de = serde_json::Deserializer::from_slice(body);
            let items = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
            let items = items.map_err(|e| bad_json(e, &overflow))?;
            Ok(items.into_iter().map(|raw| item(raw, softmax)).collect())
        }
        Some(b'{') => {
            let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    ApiError::new(
                        ErrorCode::BadRequest,
                        format!("{e}; expected {{\"data\": [[pixel, ...], ...]}} or {{\"image_in_base64\": \"...\"}}"),
                    )
                } else {
                    bad_json(e, &overflow)
                }
            })?;
            let Some(data) = envelope.data else {
                if envelope.image_in_base64.is_some() || envelope.image_url.is_some() {
                    return Ok(vec![item(serde_json::from_slice(body).map_err(|e| bad_json(e, &overflow))?, softmax)]);
                }
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "expected a list of {\"image_in_base64\": ...} objects, or {\"data\": [[pixel, ...], ...]}",
                ));
            };
            if envelope.image_in_base64.is_some() || envelope.image_url.is_some() {
                return Err(ApiError::new(ErrorCode::BadRequest, "give data or an image, not both"));
            }
            let max_value = envelope.max_value.unwrap_or(255.0);
            if !(max_value.is_finite() && max_value > 0.0) {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("max_value must be positive, not {max_value}"),
                ));
            }
            let seed = Rows { max: limits.max_images, max_row: limits.max_row, overflow: &overflow };
            let mut de = serde_json::Deserializer::from_str(data.get());
            let rows = seed.deserialize(&mut de).map_err(|e| {
                overflow.take().unwrap_or_else(|| {
                    ApiError::new(ErrorCode::BadRequest, format!("{e}; expected {{\"data\": [[pixel, ...], ...]}}"))
                })
            })?;
            let softmax = envelope.parameters.map_or(softmax, |p| p.add_softmax);
            Ok(rows.into_iter().map(|row| Input { source: Ok(Source::Pixels { row, max_value }), softmax }).collect())
        }
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(bad_json(e, &overflow)),
            Ok(_) => Err(ApiError::new(
                ErrorCode::BadRequest,
                "expected a list of {\"image_in_base64\": ...} objects, or {\"data\": [[pixel, ...], ...]}",
            )),
        },
    }
}

/// The object forms: one image item, or the pixel rows. Parts that may be
/// large stay unparsed slices of the body until their own capped pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    max_value: Option<f64>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow, default)]
    image_in_base64: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image_url: Option<&'a RawValue>,
}

/// A JSON list of at most `max` items, each kept as its slice of the body.
struct Items<'o> {
    max: usize,
    overflow: &'o Overflow,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of image items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max {
                self.overflow.set(Some(too_many(self.max)));
                return Err(A::Error::custom("too many items"));
            }
            out.push(raw);
        }
        Ok(out)
    }
}

/// `data`: at most `max` rows of at most `max_row` numbers each.
struct Rows<'o> {
    max: usize,
    max_row: usize,
    overflow: &'o Overflow,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = Vec<Vec<f64>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = Vec<Vec<f64>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of rows of pixel values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(row) = seq.next_element_seed(Row { max: self.max_row, overflow: self.overflow })? {
            if out.len() == self.max {
                self.overflow.set(Some(too_many(self.max)));
                return Err(A::Error::custom("too many rows"));
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// One row of at most `max` numbers.
struct Row<'o> {
    max: usize,
    overflow: &'o Overflow,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = Vec<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = Vec<f64>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row of pixel values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<f64>()? {
            if out.len() == self.max {
                self.overflow.set(Some(ApiError::new(
                    ErrorCode::BadPixels,
                    format!("a row of more than {} values; this model takes at most {} per image", self.max, self.max),
                )));
                return Err(A::Error::custom("row too long"));
            }
            out.push(v);
        }
        Ok(out)
    }
}

fn item(raw: &RawValue, softmax: bool) -> Input {
    let parsed: Result<ImageItem, _> = serde_json::from_str(raw.get());
    match parsed {
        Err(e) => Input {
            source: Err(ErrorDetail::new(
                ErrorCode::BadRequest,
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
                    Err(ErrorDetail::new(ErrorCode::BadRequest, "give image_in_base64 or image_url, not both"))
                }
                (None, None) => {
                    Err(ErrorDetail::new(ErrorCode::BadRequest, "the item has neither image_in_base64 nor image_url"))
                }
            };
            Input { source, softmax }
        }
    }
}

/// Decodes and resizes one input, the request's `index`-th from 0 (URLs must
/// have been fetched already). Errors name it as people count, from 1: "cannot
/// decode image #2 of the request".
pub(crate) fn decode(loader: &ImageLoader, index: usize, source: Source) -> Result<RgbImage, ErrorDetail> {
    match source {
        Source::Bytes(bytes) => loader.load_image_bytes(&bytes, &request_image_name(index)).map_err(|e| match e {
            cvtk_dataset::Error::TooLarge { .. } => ErrorDetail::new(ErrorCode::ImageTooLarge, e.to_string()),
            _ => ErrorDetail::new(ErrorCode::BadImage, format!("{e}; send a JPEG, PNG, GIF, BMP, TIFF or WebP file")),
        }),
        Source::Pixels { row, max_value } => {
            let img = pixels(loader, &row, max_value)?;
            loader.resize(&img).map_err(|e| ErrorDetail::new(ErrorCode::BadPixels, e.to_string()))
        }
        Source::Url(_) => Err(ErrorDetail::new(ErrorCode::Internal, "URL was not fetched")),
    }
}

/// How errors name the request's `index`-th image (from 0).
fn request_image_name(index: usize) -> String {
    format!("#{} of the request", index + 1)
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
            return Err(ErrorDetail::new(
                ErrorCode::BadPixels,
                format!("a row of {n} values; this model takes {hint}"),
            ));
        }
    };
    if let Some(v) = row.iter().find(|v| !(v.is_finite() && **v >= 0.0 && **v <= max_value)) {
        return Err(ErrorDetail::new(
            ErrorCode::BadPixels,
            format!("value {v} is outside 0..={max_value} (set max_value if your scale differs)"),
        ));
    }
    let to_u8 = |v: f64| (v / max_value * 255.0).round() as u8;
    let data: Vec<u8> = if channels == 1 {
        row.iter().flat_map(|&v| [to_u8(v); 3]).collect()
    } else {
        row.iter().map(|&v| to_u8(v)).collect()
    };
    RgbImage::from_raw(w, h, data).ok_or_else(|| ErrorDetail::new(ErrorCode::Internal, "pixel buffer size"))
}
