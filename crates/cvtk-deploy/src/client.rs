//! [`Client`]: calls a scoring service over HTTP and parses its answers into
//! typed results. The counterpart of the original's `score_image` and
//! `score_existing_service_with_image`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::{ErrorResponse, ImageItem, ItemResult, Parameters, PixelRequest, ScoreResponse};
use crate::{Error, Result};

/// An image to score: a file, a URL (downloaded by the client), or bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageInput {
    /// A file on this machine.
    Path(PathBuf),
    /// An `http(s)://` URL, downloaded here and sent as bytes.
    Url(String),
    /// Encoded image bytes (JPEG, PNG, ...).
    Bytes(Vec<u8>),
}

impl From<&str> for ImageInput {
    /// `http://` and `https://` strings are URLs; anything else is a path.
    fn from(s: &str) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            ImageInput::Url(s.to_string())
        } else {
            ImageInput::Path(PathBuf::from(s))
        }
    }
}

impl From<&Path> for ImageInput {
    fn from(p: &Path) -> Self {
        ImageInput::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for ImageInput {
    fn from(p: PathBuf) -> Self {
        ImageInput::Path(p)
    }
}

impl From<Vec<u8>> for ImageInput {
    fn from(b: Vec<u8>) -> Self {
        ImageInput::Bytes(b)
    }
}

/// Largest image the client downloads from a URL.
const MAX_DOWNLOAD: u64 = 50 << 20;

/// A blocking client of one scoring service. Do not use it inside an async
/// runtime (use `spawn_blocking` there).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    key: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of the service at `endpoint` (`http://host:port`, with or
    /// without a trailing `/score`), sending `key` as a bearer token.
    pub fn new(endpoint: &str, key: Option<String>) -> Result<Self> {
        let base = base_url(endpoint);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::config("endpoint", format!("'{endpoint}' is not an http(s) URL")));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Http { url: base.clone(), reason: e.to_string() })?;
        Ok(Client { base, key, http })
    }

    /// The service's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn get_ok(&self, path: &str) -> bool {
        self.http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }

    /// Whether `/health` answers 200.
    pub fn health(&self) -> bool {
        self.get_ok("/health")
    }

    /// Whether `/ready` answers 200 (the model is loaded).
    pub fn ready(&self) -> bool {
        self.get_ok("/ready")
    }

    fn post(
        &self,
        query: &str,
        build: impl FnOnce(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder,
    ) -> Result<ScoreResponse> {
        let url = format!("{}/score{query}", self.base);
        let mut req = build(self.http.post(&url));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let response = req.send().map_err(|e| Error::Http { url: url.clone(), reason: e.to_string() })?;
        let status = response.status();
        let body = response.bytes().map_err(|e| Error::Http { url: url.clone(), reason: e.to_string() })?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| Error::Http { url, reason: format!("unexpected answer: {e}") });
        }
        match serde_json::from_slice::<ErrorResponse>(&body) {
            // Every image failed: still an answer per image.
            Ok(err) if !err.results.is_empty() => Ok(ScoreResponse { labels: Vec::new(), results: err.results }),
            Ok(err) => Err(Error::Service { url, status: status.as_u16(), message: err.error.to_string() }),
            Err(_) => Err(Error::Service {
                url,
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// Sends the original package's payload as it is.
    pub fn score_items(&self, items: &[ImageItem]) -> Result<ScoreResponse> {
        self.post("", |r| r.json(items))
    }

    /// Scores encoded images (one JSON request, base64 items).
    pub fn score_bytes(&self, images: &[Vec<u8>], add_softmax: bool) -> Result<Vec<ItemResult>> {
        let items: Vec<ImageItem> =
            images.iter().map(|b| ImageItem::from_bytes(b, Parameters { add_softmax })).collect();
        Ok(self.score_items(&items)?.results)
    }

    /// Scores image files (one JSON request).
    pub fn score_files<P: AsRef<Path>>(&self, paths: &[P], add_softmax: bool) -> Result<Vec<ItemResult>> {
        let images = paths.iter().map(|p| read(p.as_ref())).collect::<Result<Vec<_>>>()?;
        self.score_bytes(&images, add_softmax)
    }

    /// Scores rows of pixel values (the MNIST tutorial's `{"data": ...}`).
    pub fn score_pixels(&self, rows: Vec<Vec<f64>>, max_value: f64, add_softmax: bool) -> Result<Vec<ItemResult>> {
        let req = PixelRequest { data: rows, max_value: Some(max_value), parameters: Some(Parameters { add_softmax }) };
        Ok(self.post("", |r| r.json(&req))?.results)
    }

    /// Sends one image as the raw body with `content_type` (e.g. `image/png`).
    pub fn score_raw(&self, bytes: Vec<u8>, content_type: &str, add_softmax: bool) -> Result<ItemResult> {
        let ct = content_type.to_string();
        let r = self.post(&format!("?add_softmax={add_softmax}"), |r| r.header("content-type", ct).body(bytes))?;
        first(r.results, &self.base)
    }

    /// Sends images as a multipart upload, one file part each.
    pub fn score_multipart(&self, images: Vec<(String, Vec<u8>)>, add_softmax: bool) -> Result<Vec<ItemResult>> {
        let mut form = reqwest::blocking::multipart::Form::new();
        for (i, (name, bytes)) in images.into_iter().enumerate() {
            form = form.part(format!("image{i}"), reqwest::blocking::multipart::Part::bytes(bytes).file_name(name));
        }
        Ok(self.post(&format!("?add_softmax={add_softmax}"), |r| r.multipart(form))?.results)
    }

    /// Scores one image given as a path, URL or bytes, optionally resized to
    /// `resize_dims` (width, height) here first, as the original client did to
    /// send less.
    pub fn score_image(
        &self,
        image: impl Into<ImageInput>,
        resize_dims: Option<(u32, u32)>,
        parameters: Parameters,
    ) -> Result<ItemResult> {
        let mut bytes = match image.into() {
            ImageInput::Path(p) => read(&p)?,
            ImageInput::Bytes(b) => b,
            ImageInput::Url(u) => self.download(&u)?,
        };
        if let Some((w, h)) = resize_dims {
            bytes = resize_png(&bytes, w, h)?;
        }
        let items = [ImageItem::from_bytes(&bytes, parameters)];
        first(self.score_items(&items)?.results, &self.base)
    }

    fn download(&self, url: &str) -> Result<Vec<u8>> {
        let failed = |reason: String| Error::Http { url: url.to_string(), reason };
        let response = self.http.get(url).timeout(Duration::from_secs(30)).send().map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(response, MAX_DOWNLOAD + 1), &mut body)
            .map_err(|e| failed(e.to_string()))?;
        if body.len() as u64 > MAX_DOWNLOAD {
            return Err(failed(format!("over {MAX_DOWNLOAD} bytes")));
        }
        Ok(body)
    }
}

/// A service's base URL from an endpoint given with or without `/score`.
pub(crate) fn base_url(endpoint: &str) -> String {
    endpoint.trim_end_matches('/').trim_end_matches("/score").trim_end_matches('/').to_string()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}

fn first(results: Vec<ItemResult>, url: &str) -> Result<ItemResult> {
    results
        .into_iter()
        .next()
        .ok_or_else(|| Error::Http { url: url.to_string(), reason: "the answer holds no result".into() })
}

fn resize_png(bytes: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    if w == 0 || h == 0 {
        return Err(Error::config("resize_dims", format!("{w}x{h}: both must be positive")));
    }
    let img =
        cvtk_dataset::decode::decode_rgb_bytes(bytes, Path::new("<image>"), cvtk_dataset::decode::DEFAULT_MAX_PIXELS)?;
    let resized = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    let mut out = Cursor::new(Vec::new());
    resized
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::config("resize_dims", format!("cannot encode the resized image: {e}")))?;
    Ok(out.into_inner())
}

/// Scores one image on a service given by its endpoint and key: the
/// original's `score_existing_service_with_image`.
pub fn score_existing_service_with_image(
    image: impl Into<ImageInput>,
    endpoint: &str,
    key: Option<String>,
) -> Result<ItemResult> {
    Client::new(endpoint, key)?.score_image(image, None, Parameters { add_softmax: true })
}
