//! [`ApiError`] (an error answer in cvtk's JSON shape) and
//! [`shutdown_signal`]: the pieces of an axum server (feature `server`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::{ErrorCode, ErrorDetail};

/// An error answer: a status, an [`ErrorDetail`], and more top-level JSON
/// fields when a server has more to say (the scoring service's per-image
/// `results`, the annotation page's current `image`). A 503 carries
/// `Retry-After: 1` and a 401 `WWW-Authenticate: Bearer`.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Code and message.
    pub detail: ErrorDetail,
    /// More fields of the body, beside `error`.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `code` and `message`, sent with the code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from(ErrorDetail::new(code, message))
    }

    /// The same error sent with another status (a rejection whose status
    /// the HTTP stack chose).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds the top-level field `key` to the body.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(v) = serde_json::to_value(value) {
            self.extra.insert(key.to_string(), v);
        }
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl From<ErrorDetail> for ApiError {
    fn from(detail: ErrorDetail) -> Self {
        let status = StatusCode::from_u16(detail.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError { status, detail, extra: serde_json::Map::new() }
    }
}

/// The answer: the JSON body, and the [`ErrorDetail`] in the response's
/// extensions, so a layer that speaks another protocol (the scoring service's
/// `/v2`) can write it in its own shape without parsing the body.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), serde_json::to_value(&self.detail).unwrap_or_default());
        let mut response = (self.status, Json(serde_json::Value::Object(body))).into_response();
        response.extensions_mut().insert(self.detail);
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn errors_are_json_with_a_code_and_extra_fields() {
        let r = ApiError::new(ErrorCode::BadJson, "not JSON").with("results", [1, 2]).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.extensions().get::<ErrorDetail>().map(|d| d.code), Some(ErrorCode::BadJson));
        let v = body(r).await;
        assert_eq!(v["error"]["code"], "bad_json");
        assert_eq!(v["error"]["message"], "not JSON");
        assert_eq!(v["results"], serde_json::json!([1, 2]));
    }

    #[tokio::test]
    async fn unavailable_and_unauthorized_say_what_to_do_in_headers() {
        let r = ApiError::new(ErrorCode::Overloaded, "busy").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::new(ErrorCode::Unauthorized, "key").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
