//! Shared test helpers: a tiny real model, a scriptable fake scorer (no
//! libtorch in it),
//! images as bytes, and a one-call router helper.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cvtk_deploy::ServeConfig;
use cvtk_model::{Architecture, BaseModel, Device, TransferModel};
use serde_json::Value;
use tower::ServiceExt;

/// The dataset crate's image fixtures (PNG headers that lie, EXIF JPEGs, ...).
#[path = "../../../cvtk-dataset/tests/common/mod.rs"]
pub mod images;

pub const KEY: &str = "test-key-0123456789abcdef";

pub fn config() -> ServeConfig {
    ServeConfig { keys: vec![KEY.into()], port: 0, ..ServeConfig::default() }
}

/// A random-init small CNN over three labels (28x28 gray input).
pub fn tiny_model() -> TransferModel {
    let base = BaseModel::new(Architecture::SmallCnn, None);
    TransferModel::new_seeded(vec!["a".into(), "b".into(), "c".into()], &base, None, Device::Cpu, 7).unwrap()
}

/// The fake scorer (shared with cvtk-score's tests).
#[path = "fake.rs"]
mod fake;
pub use fake::{Fake, FAKE_TEMPERATURE};

fn gradient(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + u32::from(seed)) as u8, (y * 5) as u8, seed]))
}

/// A PNG of `w`x`h` with a colour gradient seeded by `seed`.
pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    images::encode(&gradient(w, h, seed), image::ImageFormat::Png)
}

/// A gray PNG (R = G = B) and its pixel values, row-major.
pub fn gray_png(w: u32, h: u32, seed: u8) -> (Vec<u8>, Vec<f64>) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 9 + y * 4) as u8).wrapping_add(seed);
        image::Rgb([v, v, v])
    });
    let values = img.pixels().map(|p| f64::from(p[0])).collect();
    (images::encode(&img, image::ImageFormat::Png), values)
}

pub fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    images::encode(&gradient(w, h, seed), image::ImageFormat::Jpeg)
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends one request through the router (no socket).
pub async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

pub fn score_req(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/score")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

pub fn json_req(value: &Value) -> Request<Body> {
    score_req("application/json", value.to_string())
}
