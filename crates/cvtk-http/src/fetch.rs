//! [`Fetcher`]: the one bounded GET behind every download cvtk makes (the
//! scoring service's `image_url` items, dataset collection, image searches):
//! a size limit checked on the declared length and while reading, a time
//! limit, at most [`FetchPolicy::max_redirects`] redirects, and, when a host
//! filter is set, only to hosts it allows (redirect targets included).

use std::sync::Arc;
use std::time::Duration;

/// Decides whether a host name may be fetched.
pub type HostFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The limits of a [`Fetcher`].
#[derive(Clone)]
pub struct FetchPolicy {
    /// The largest body accepted, in bytes. By default, 20 MiB.
    pub max_bytes: u64,
    /// Time limit of one request (connect, headers, body). By default, 20 s.
    pub timeout: Duration,
    /// Redirects followed at most. By default, 5.
    pub max_redirects: usize,
    /// Hosts that may be fetched, redirect targets too. By default, any.
    pub allow_host: Option<HostFilter>,
}

impl std::fmt::Debug for FetchPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchPolicy")
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .field("allow_host", &self.allow_host.is_some())
            .finish()
    }
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy { max_bytes: 20 << 20, timeout: Duration::from_secs(20), max_redirects: 5, allow_host: None }
    }
}

/// Why a GET gave no body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The URL is not http(s), or its host is not allowed (nothing was sent).
    NotAllowed(String),
    /// The server answered with this non-success status.
    Status(u16),
    /// The body is over the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The request took longer than the time limit.
    Timeout(Duration),
    /// No connection could be made, or it broke.
    Connect(String),
    /// Anything else (a malformed answer, a redirect refused or one too many, ...).
    Other(String),
}

impl FetchError {
    /// Whether trying again later may help: timeouts, connection errors, 408,
    /// 429 and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout(_) | FetchError::Connect(_) => true,
            FetchError::Status(s) => *s == 408 || *s == 429 || *s >= 500,
            _ => false,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotAllowed(why) => f.write_str(why),
            FetchError::Status(s) => write!(f, "the server answered HTTP {s}"),
            FetchError::TooLarge { limit } => write!(f, "larger than the limit of {limit} bytes"),
            FetchError::Timeout(t) => write!(f, "timed out after {:.1} s", t.as_secs_f64()),
            FetchError::Connect(why) => write!(f, "cannot connect: {why}"),
            FetchError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for FetchError {}

/// A body and the content type its server claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The body.
    pub bytes: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// GETs URLs within a [`FetchPolicy`]. Cheap to clone; share one.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

impl Fetcher {
    /// A fetcher for `policy`.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let allow = policy.allow_host.clone();
        let max = policy.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let host_ok = match (&allow, attempt.url().host_str()) {
                (None, _) => true,
                (Some(f), Some(h)) => f(h),
                (Some(_), None) => false,
            };
            if attempt.previous().len() >= max {
                attempt.error(format!("more than {max} redirects"))
            } else if !host_ok {
                let msg = format!("redirect to {} is not on the allow-list", attempt.url());
                attempt.error(msg)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(policy.timeout)
            .user_agent(concat!("cvtk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Other(format!("cannot build an HTTP client: {e}")))?;
        Ok(Fetcher { client, policy })
    }

    /// The limits.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Checks that `url` is an http(s) URL whose host the policy allows.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, FetchError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| FetchError::NotAllowed(format!("'{url}' is not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError::NotAllowed(format!(
                "only http and https URLs are fetched, not {}",
                parsed.scheme()
            )));
        }
        if let Some(allow) = &self.policy.allow_host {
            match parsed.host_str() {
                Some(h) if allow(h) => {}
                h => {
                    return Err(FetchError::NotAllowed(format!(
                        "host {} is not on the allow-list",
                        h.unwrap_or("(none)")
                    )))
                }
            }
        }
        Ok(parsed)
    }

    /// GETs `url` with the extra request `headers`, within the limits.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, FetchError> {
        let parsed = self.check_url(url)?;
        let mut request = self.client.get(parsed);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout(self.policy.timeout)
            } else if e.is_redirect() {
                FetchError::Other(format!("redirect refused: {e}"))
            } else if e.is_connect() {
                FetchError::Connect(e.to_string())
            } else {
                FetchError::Other(e.to_string())
            }
        };
        let mut response = request.send().await.map_err(describe)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let limit = self.policy.max_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(host: &'static str) -> FetchPolicy {
        FetchPolicy { allow_host: Some(Arc::new(move |h| h == host)), ..FetchPolicy::default() }
    }

    #[test]
    fn urls_must_be_http_and_allowed() {
        let f = Fetcher::new(only("images.example.com")).unwrap();
        assert!(f.check_url("https://images.example.com/a.png").is_ok());
        for bad in ["ftp://images.example.com/a", "file:///etc/passwd", "https://evil.com/a.png", "not a url"] {
            assert!(matches!(f.check_url(bad), Err(FetchError::NotAllowed(_))), "{bad}");
        }
        let any = Fetcher::new(FetchPolicy::default()).unwrap();
        assert!(any.check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn transient_failures_are_the_ones_worth_retrying() {
        assert!(FetchError::Status(503).is_transient() && FetchError::Status(429).is_transient());
        assert!(!FetchError::Status(404).is_transient() && !FetchError::TooLarge { limit: 1 }.is_transient());
        assert!(FetchError::Timeout(Duration::from_secs(1)).is_transient());
    }
}
