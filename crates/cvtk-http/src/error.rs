//! [`ApiError`]: an HTTP status and a JSON body `{"error": {"code", "message"},
//! ...}`, the one error shape of cvtk's servers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// What went wrong, with a stable machine-readable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code, e.g. `bad_json`, `not_found`, `unauthorized`.
    pub code: String,
    /// A sentence for a person: what is wrong and what to do.
    pub message: String,
}

impl ErrorDetail {
    /// An error with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorDetail { code: code.into(), message: message.into() }
    }
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

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
    /// An error of `status` with `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, detail: ErrorDetail::new(code, message), extra: serde_json::Map::new() }
    }

    /// A 400 with `code` and `message`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), serde_json::to_value(&self.detail).unwrap_or_default());
        let mut response = (self.status, Json(serde_json::Value::Object(body))).into_response();
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn errors_are_json_with_a_code_and_extra_fields() {
        let r = ApiError::bad_request("bad_json", "not JSON").with("results", [1, 2]).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v = body(r).await;
        assert_eq!(v["error"]["code"], "bad_json");
        assert_eq!(v["error"]["message"], "not JSON");
        assert_eq!(v["results"], serde_json::json!([1, 2]));
    }

    #[tokio::test]
    async fn unavailable_and_unauthorized_say_what_to_do_in_headers() {
        let r = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "busy").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "key").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
