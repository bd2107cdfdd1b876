//! An infer request of the Open Inference Protocol, read and checked: its
//! JSON part capped as it is parsed, its binary part split, its one input
//! checked against the model's contract.

use std::cell::Cell;

use axum::http::HeaderMap;
use cvtk_dataset::ImageBatch;
use cvtk_http::{ApiError, ErrorCode};
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{V2Result, HEADER_LENGTH, IMAGE_INPUT, LABEL_OUTPUT, PROBABILITIES_OUTPUT, TENSOR_INPUT};
use crate::api::decode_base64;
use crate::server::AppState;

/// The JSON part of an infer request. Every list is capped as it is parsed
/// (one input, the model's two outputs, 8 dimensions) and every parameter is
/// typed: unknown ones are skipped without being built, and a known one
/// never holds more than a scalar, so a body costs about its own size in
/// memory, however it is made.
#[derive(Deserialize)]
struct InferRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<RequestParameters>,
    #[serde(borrow, deserialize_with = "one_input")]
    inputs: Vec<InferInput<'a>>,
    #[serde(default, deserialize_with = "model_outputs")]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize, Default)]
struct RequestParameters {
    #[serde(default)]
    softmax: Option<Param>,
    #[serde(default)]
    top_k: Option<Param>,
    #[serde(default)]
    binary_data_output: Option<Param>,
}

#[derive(Deserialize)]
struct InferInput<'a> {
    name: String,
    #[serde(deserialize_with = "dimensions")]
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<InputParameters>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct InputParameters {
    #[serde(default)]
    binary_data_size: Option<Param>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<OutputParameters>,
}

#[derive(Deserialize, Default)]
struct OutputParameters {
    #[serde(default)]
    binary_data: Option<Param>,
}

/// The most outputs a request may name: the model's two.
const MAX_OUTPUTS: usize = 2;
/// The most dimensions a shape may have.
const MAX_DIMENSIONS: usize = 8;

fn one_input<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped(d, 1, || {
        format!("more than one input; send exactly one: '{IMAGE_INPUT}' (BYTES, encoded images) or '{TENSOR_INPUT}' (FP32, preprocessed)")
    })
}

fn model_outputs<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    // `"outputs": null` is no list, as if absent.
    struct OrNull<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrNull<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of outputs, or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            capped(d, MAX_OUTPUTS, || {
                format!("more than {MAX_OUTPUTS} outputs; this model has '{PROBABILITIES_OUTPUT}' and '{LABEL_OUTPUT}', each asked for once")
            })
            .map(Some)
        }
    }
    d.deserialize_option(OrNull(std::marker::PhantomData))
}

fn dimensions<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped(d, MAX_DIMENSIONS, || format!("a shape with more than {MAX_DIMENSIONS} dimensions"))
}

/// A list of at most `max` elements, refused as soon as one more begins (it
/// is skipped, not built).
fn capped<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    max: usize,
    too_many: impl FnOnce() -> String,
) -> Result<Vec<T>, D::Error> {
    struct Capped<T, F> {
        max: usize,
        too_many: F,
        item: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>, F: FnOnce() -> String> Visitor<'de> for Capped<T, F> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {}", self.max)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while out.len() < self.max {
                match seq.next_element()? {
                    Some(v) => out.push(v),
                    None => return Ok(out),
                }
            }
            if seq.next_element::<IgnoredAny>()?.is_some() {
                return Err(A::Error::custom((self.too_many)()));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Capped { max, too_many, item: std::marker::PhantomData })
}

/// A parameter's value: a scalar, or the kind of anything else (skipped, not
/// built).
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A string, shown cut to 40 characters.
    Str(String),
    /// null, a list or an object.
    Other(&'static str),
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Param::Bool(b) => write!(f, "{b}"),
            Param::Int(i) => write!(f, "{i}"),
            Param::Float(x) => write!(f, "{x}"),
            Param::Str(s) => write!(f, "\"{s}\""),
            Param::Other(what) => f.write_str(what),
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Param;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a parameter value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Param, E> {
                Ok(Param::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Param, E> {
                Ok(Param::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Param, E> {
                Ok(Param::Int(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Param, E> {
                Ok(Param::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Param, E> {
                Ok(Param::Str(v.chars().take(40).collect()))
            }
            fn visit_unit<E>(self) -> Result<Param, E> {
                Ok(Param::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Param, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Param::Other("a list"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Param, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Param::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The JSON part and the binary part of a body.
pub(super) fn split_body<'b>(headers: &HeaderMap, body: &'b [u8]) -> V2Result<(&'b [u8], &'b [u8])> {
    let Some(v) = headers.get(HEADER_LENGTH) else { return Ok((body, &[])) };
    let n: usize = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "Inference-Header-Content-Length is not a number"))?;
    if n > body.len() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("Inference-Header-Content-Length is {n} but the body has only {} bytes", body.len()),
        ));
    }
    Ok(body.split_at(n))
}

/// A true/false parameter.
fn flag(param: Option<&Param>, key: &str) -> V2Result<Option<bool>> {
    match param {
        None => Ok(None),
        Some(Param::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(ApiError::new(ErrorCode::BadRequest, format!("parameter '{key}' must be true or false, not {other}")))
        }
    }
}

/// The one input of a request, checked against the model's contract.
pub(super) enum Tensor {
    Images(Vec<Vec<u8>>),
    Preprocessed(ImageBatch),
}

pub(super) struct Parsed {
    /// The request's id, echoed in the answer.
    pub(super) id: Option<String>,
    /// The one input.
    pub(super) tensor: Tensor,
    /// Probabilities (true) or raw scores.
    pub(super) softmax: bool,
    /// How many labels the `label` output names per image.
    pub(super) top_k: usize,
    /// Outputs to send, in order, and whether each goes in binary.
    pub(super) outputs: Vec<(&'static str, bool)>,
}

pub(super) fn parse(state: &AppState, headers: &HeaderMap, body: &[u8]) -> V2Result<Parsed> {
    let model = state.0.model.get().ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "the model is not loaded"))?;
    let max_images = state.0.config.max_images_per_request;
    let (head, mut binary) = split_body(headers, body)?;
    let request: InferRequest = serde_json::from_slice(head).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(ErrorCode::BadRequest, format!("not a valid inference request: {e}")),
        _ => ApiError::new(ErrorCode::BadRequest, format!(
            "the request is not an inference request: {e}; expected {{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}}"
        )),
    })?;
    let params = request.parameters.unwrap_or_default();
    let softmax = flag(params.softmax.as_ref(), "softmax")?.unwrap_or(true);
    let all_binary = flag(params.binary_data_output.as_ref(), "binary_data_output")?.unwrap_or(false);
    let labels = model.labels.len();
    let top_k = match &params.top_k {
        None => 1,
        Some(Param::Int(k)) if *k >= 1 && *k <= labels as i128 => *k as usize,
        Some(v) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("parameter 'top_k' must be an integer from 1 to {labels}, not {v}"),
            ))
        }
    };
    let outputs = match &request.outputs {
        None => vec![(PROBABILITIES_OUTPUT, all_binary), (LABEL_OUTPUT, all_binary)],
        Some(list) => {
            let mut out = Vec::new();
            for o in list {
                let name = match o.name.as_str() {
                    PROBABILITIES_OUTPUT => PROBABILITIES_OUTPUT,
                    LABEL_OUTPUT => LABEL_OUTPUT,
                    other => {
                        return Err(ApiError::new(
                            ErrorCode::BadRequest,
                            format!(
                            "unknown output '{other}'; this model has '{PROBABILITIES_OUTPUT}' and '{LABEL_OUTPUT}'"
                        ),
                        ))
                    }
                };
                if out.iter().any(|(n, _)| *n == name) {
                    return Err(ApiError::new(
                        ErrorCode::BadRequest,
                        format!("output '{name}' is asked for twice; name each output once"),
                    ));
                }
                let binary = o.parameters.as_ref().and_then(|p| p.binary_data.as_ref());
                out.push((name, flag(binary, "binary_data")?.unwrap_or(all_binary)));
            }
            out
        }
    };
    let [input] = request.inputs.as_slice() else {
        return Err(ApiError::new(ErrorCode::BadRequest, format!(
            "{} inputs; send exactly one: '{IMAGE_INPUT}' (BYTES, encoded images) or '{TENSOR_INPUT}' (FP32, preprocessed)",
            request.inputs.len()
        )));
    };
    let n = match input.shape.first() {
        Some(&n) if n >= 1 => n as usize,
        _ => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "input '{}' has shape {:?}; its first dimension is the image count, at least 1",
                    input.name, input.shape
                ),
            ))
        }
    };
    if input.shape.iter().any(|&d| d < 0) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("input '{}' has a negative dimension in {:?}", input.name, input.shape),
        ));
    }
    if n > max_images {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{n} images in one request; this service takes at most {max_images}"),
        ));
    }
    // This input's binary data, taken from the binary part in order.
    let binary_size = match input.parameters.as_ref().and_then(|p| p.binary_data_size.as_ref()) {
        None => None,
        Some(Param::Int(n)) if *n >= 0 => Some(usize::try_from(*n).unwrap_or(usize::MAX)),
        Some(v) => {
            return Err(ApiError::new(ErrorCode::BadRequest, format!("binary_data_size must be a byte count, not {v}")))
        }
    };
    let own_binary = match binary_size {
        Some(size) => {
            if size > binary.len() {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "input '{}' says binary_data_size {size} but only {} bytes follow the JSON header",
                        input.name,
                        binary.len()
                    ),
                ));
            }
            let (mine, rest) = binary.split_at(size);
            binary = rest;
            Some(mine)
        }
        None => None,
    };
    if !binary.is_empty() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{} bytes after the inputs' binary data belong to no input", binary.len()),
        ));
    }
    if own_binary.is_some() == input.data.is_some() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "input '{}' needs its data either in \"data\" or as binary data (binary_data_size), one of the two",
                input.name
            ),
        ));
    }
    let tensor = match (input.name.as_str(), input.datatype.as_str()) {
        (IMAGE_INPUT, "BYTES") => {
            if !(input.shape.len() == 1 || (input.shape.len() == 2 && input.shape[1] == 1)) {
                return Err(ApiError::new(ErrorCode::BadRequest, format!(
                    "input '{IMAGE_INPUT}' has shape {:?}; it is [N] (or [N, 1]) encoded images",
                    input.shape
                )));
            }
            let images = match (own_binary, input.data) {
                (Some(bytes), _) => split_bytes_elements(bytes, n)?,
                (None, Some(data)) => {
                    let strings = flat::<String>(data.get(), n, IMAGE_INPUT, "elements", "a list of base64 strings")?;
                    strings
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            decode_base64(s).map_err(|e| {
                                ApiError::new(ErrorCode::BadRequest, format!(
                                    "input '{IMAGE_INPUT}' element {i} is not base64 of an image: {}",
                                    e.message
                                ))
                            })
                        })
                        .collect::<V2Result<Vec<_>>>()?
                }
                (None, None) => return Err(ApiError::new(ErrorCode::BadRequest, format!("input '{IMAGE_INPUT}' has no data"))),
            };
            if images.len() != n {
                return Err(ApiError::new(ErrorCode::BadRequest, format!(
                    "input '{IMAGE_INPUT}' has shape {:?} but holds {} elements",
                    input.shape,
                    images.len()
                )));
            }
            Tensor::Images(images)
        }
        (TENSOR_INPUT, "FP32") => {
            let c = model.loader.config();
            let want = [n, c.color.channels(), c.height as usize, c.width as usize];
            let given: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
            if given != want {
                return Err(ApiError::new(ErrorCode::BadRequest, format!(
                    "input '{TENSOR_INPUT}' has shape {:?}; this model takes [N, {}, {}, {}] (see GET /v2/models/NAME)",
                    input.shape, want[1], want[2], want[3]
                )));
            }
            let count: usize = want.iter().product();
            let values = match (own_binary, input.data) {
                (Some(bytes), _) => {
                    if bytes.len() != count * 4 {
                        return Err(ApiError::new(ErrorCode::BadRequest, format!(
                            "input '{TENSOR_INPUT}' has {} bytes of binary data; shape {:?} needs {} (FP32, little-endian)",
                            bytes.len(),
                            input.shape,
                            count * 4
                        )));
                    }
                    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                (None, Some(data)) => flat(data.get(), count, TENSOR_INPUT, "values", "a list of numbers")?,
                (None, None) => return Err(ApiError::new(ErrorCode::BadRequest, format!("input '{TENSOR_INPUT}' has no data"))),
            };
            if values.len() != count {
                return Err(ApiError::new(ErrorCode::BadRequest, format!(
                    "input '{TENSOR_INPUT}' has shape {:?} ({count} values) but holds {}",
                    input.shape,
                    values.len()
                )));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(ApiError::new(ErrorCode::BadRequest, format!("input '{TENSOR_INPUT}' value {i} is not a finite number")));
            }
            Tensor::Preprocessed(ImageBatch::new(values, want).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?)
        }
        (IMAGE_INPUT | TENSOR_INPUT, other) => {
            let want = if input.name == IMAGE_INPUT { "BYTES" } else { "FP32" };
            return Err(ApiError::new(ErrorCode::BadRequest, format!("input '{}' has datatype {other}; it takes {want}", input.name)));
        }
        (other, _) => {
            return Err(ApiError::new(ErrorCode::BadRequest, format!(
                "unknown input '{other}'; this model takes '{IMAGE_INPUT}' (BYTES, encoded images) or '{TENSOR_INPUT}' (FP32, preprocessed)"
            )))
        }
    };
    Ok(Parsed { id: request.id, tensor, softmax, top_k, outputs })
}

/// BYTES elements in the binary form: each a 4-byte little-endian length,
/// then that many bytes; at most `max` of them.
fn split_bytes_elements(mut bytes: &[u8], max: usize) -> V2Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if out.len() == max {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("input '{IMAGE_INPUT}' holds more elements than its shape says ({max})"),
            ));
        }
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("input '{IMAGE_INPUT}': a BYTES element's 4-byte length is cut short"),
            )
        })?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("input '{IMAGE_INPUT}' element {} says {len} bytes but only {} follow", out.len(), rest.len()),
            ));
        }
        let (element, rest) = rest.split_at(len);
        out.push(element.to_vec());
        bytes = rest;
    }
    Ok(out)
}

/// The leaves of input `input`'s (possibly nested) JSON array, at most
/// `max`; `what` names them in the errors ("elements", "values") and
/// `expected` says what the array must hold.
fn flat<T: Leaf>(data: &str, max: usize, input: &str, what: &str, expected: &str) -> V2Result<Vec<T>> {
    let mut out = Vec::new();
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(data);
    Flat { out: &mut out, max, depth: 0, over: &over }.deserialize(&mut de).map_err(|e| {
        let message = if over.get() {
            format!("input '{input}' holds more {what} than its shape says ({max})")
        } else {
            format!("input '{input}' data must be {expected}: {e}")
        };
        ApiError::new(ErrorCode::BadRequest, message)
    })?;
    Ok(out)
}

/// A flattening visitor: the leaves of nested JSON arrays, in order, into
/// `out`, stopping at `max` leaves or 8 levels of nesting.
struct Flat<'o, T> {
    out: &'o mut Vec<T>,
    max: usize,
    depth: usize,
    over: &'o Cell<bool>,
}

/// A leaf type [`Flat`] collects.
trait Leaf: Sized {
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

impl Leaf for f32 {
    fn from_f64(v: f64) -> Option<Self> {
        Some(v as f32)
    }
}

impl Leaf for String {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_string())
    }
}

impl<T: Leaf> Flat<'_, T> {
    fn push<E: serde::de::Error>(self, v: Option<T>, what: &str) -> Result<(), E> {
        let v = v.ok_or_else(|| E::custom(format!("unexpected {what}")))?;
        if self.out.len() == self.max {
            self.over.set(true);
            return Err(E::custom("too many elements"));
        }
        self.out.push(v);
        Ok(())
    }
}

impl<'de, T: Leaf> DeserializeSeed<'de> for Flat<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Leaf> Visitor<'de> for Flat<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 8 {
            return Err(A::Error::custom("lists nest deeper than 8 levels"));
        }
        let Flat { out, max, depth, over } = self;
        while seq.next_element_seed(Flat { out: &mut *out, max, depth: depth + 1, over })?.is_some() {}
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.push(T::from_f64(v), "a number")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.push(T::from_f64(v as f64), "a number")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.push(T::from_f64(v as f64), "a number")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.push(T::from_str(v), "a string")
    }
}
