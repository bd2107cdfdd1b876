//! [`ErrorCode`] and [`ErrorDetail`]: the stable codes of cvtk's error
//! answers and the `{"code", "message"}` they travel in; with the `server`
//! feature, [`ApiError`]: an HTTP status and a JSON body
//! `{"error": {"code", "message"}, ...}`, the one error shape of cvtk's servers.

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal;)*) => {
        /// Every code an error answer of cvtk's servers can carry, each with
        /// the HTTP status it is sent with. Written on the wire as its
        /// [`name`](Self::name), e.g. `bad_json`; a code this version does not
        /// know reads as [`ErrorCode::Unknown`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
            /// A code from a newer or other server.
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl ErrorCode {
            /// Every code but [`ErrorCode::Unknown`].
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as written on the wire, e.g. `bad_json`.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The HTTP status an answer with this code has.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }
        }
    };
}

codes! {
    /// A request cvtk cannot use; the message says what is wrong.
    BadRequest = "bad_request", 400;
    /// The body is not valid JSON, or not of the documented shape.
    BadJson = "bad_json", 400;
    /// `image_in_base64` is not valid base64.
    BadBase64 = "bad_base64", 400;
    /// Pixels (`data`) of the wrong count or range.
    BadPixels = "bad_pixels", 400;
    /// The request holds no image.
    Empty = "empty", 400;
    /// More images in one request than the service takes.
    TooManyImages = "too_many_images", 400;
    /// An `image_url` the service's allow-list refuses.
    UrlNotAllowed = "url_not_allowed", 400;
    /// The annotation page: a label that is not in the dataset.
    UnknownLabel = "unknown_label", 400;
    /// The annotation page: a change the dataset refuses.
    Invalid = "invalid", 400;
    /// The service key is missing or wrong.
    Unauthorized = "unauthorized", 401;
    /// The `Host` header names another machine than a loopback-only server.
    HostNotAllowed = "host_not_allowed", 403;
    /// The annotation page: the manifest is read-only.
    ManifestReadOnly = "manifest_read_only", 403;
    /// No such route, model or image.
    NotFound = "not_found", 404;
    /// A route asked with the wrong method.
    MethodNotAllowed = "method_not_allowed", 405;
    /// The annotation page: the image changed elsewhere since the page read it.
    Conflict = "conflict", 409;
    /// The annotation page: undo with nothing to undo.
    NothingToUndo = "nothing_to_undo", 409;
    /// The declared body is over the limit (refused before it is read).
    TooLarge = "too_large", 413;
    /// The body grew over the limit while it was read.
    BodyTooLarge = "body_too_large", 413;
    /// One image is over the pixel limit (a decompression-bomb guard).
    ImageTooLarge = "image_too_large", 413;
    /// A content type the route does not take.
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// The bytes are not an image the decoder can read.
    BadImage = "bad_image", 422;
    /// A server-side failure; the service log has the details.
    Internal = "internal", 500;
    /// The annotation page: the change could not be written.
    CannotSave = "cannot_save", 500;
    /// An `image_url` could not be fetched.
    UrlFetchFailed = "url_fetch_failed", 502;
    /// The model is not loaded (yet, or it failed): retry later.
    NotReady = "not_ready", 503;
    /// The queue is full: retry later.
    Overloaded = "overloaded", 503;
    /// The scoring ran out of memory: send fewer images per request.
    OutOfMemory = "out_of_memory", 503;
    /// Not answered within the request time-out.
    Timeout = "timeout", 504;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong, with a stable machine-readable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The code, e.g. `bad_json`, `not_found`, `unauthorized`.
    pub code: ErrorCode,
    /// A sentence for a person: what is wrong and what to do.
    pub message: String,
}

impl ErrorDetail {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorDetail { code, message: message.into() }
    }
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_by_name_and_an_unknown_one_is_read_as_unknown() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
        let d: ErrorDetail = serde_json::from_str(r#"{"code": "from_the_future", "message": "m"}"#).unwrap();
        assert_eq!(d.code, ErrorCode::Unknown);
        let names: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "two codes share a name");
    }
}
