//! [`Fetcher`]: the one bounded GET behind every download cvtk makes (the
//! scoring service's `image_url` items, dataset collection, image searches):
//! a size limit checked on the declared length and while reading, a time
//! limit, at most [`FetchPolicy::max_redirects`] redirects, when a host
//! filter is set, only to hosts it allows (redirect targets included), and
//! with [`FetchPolicy::public_only`], only to public addresses on ports 80 and
//! 443, names resolved and checked before connecting, proxies ignored.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::net::is_public;

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
    /// Connect only to public addresses ([`crate::is_public`]) on ports 80
    /// and 443, with no proxy: a host name is resolved and every address it
    /// gives is checked before a connection is made (redirects too), so an
    /// allowed name that resolves to 127.0.0.1, 10.x or 169.254.169.254 is
    /// refused. By default, off (for fetchers the user points at their own
    /// network); the scoring service turns it on.
    pub public_only: bool,
}

impl std::fmt::Debug for FetchPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchPolicy")
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .field("allow_host", &self.allow_host.is_some())
            .field("public_only", &self.public_only)
            .finish()
    }
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            max_bytes: 20 << 20,
            timeout: Duration::from_secs(20),
            max_redirects: 5,
            allow_host: None,
            public_only: false,
        }
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
        let max = policy.max_redirects;
        let checks = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max {
                return attempt.error(format!("more than {max} redirects"));
            }
            match check_target(&checks, attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let msg = format!("redirect to {}: {why}", attempt.url());
                    attempt.error(msg)
                }
            }
        });
        let mut builder = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(policy.timeout)
            .user_agent(concat!("cvtk/", env!("CARGO_PKG_VERSION")));
        if policy.public_only {
            builder = builder.no_proxy().dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().map_err(|e| FetchError::Other(format!("cannot build an HTTP client: {e}")))?;
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
        check_target(&self.policy, &parsed).map_err(FetchError::NotAllowed)?;
        Ok(parsed)
    }

    /// GETs `url` with the extra request `headers`, within the limits.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, FetchError> {
        self.get_at_most(url, headers, self.policy.max_bytes).await
    }

    /// [`Self::get`] with a smaller size limit for this one call (a caller's
    /// budget over several downloads); the policy's limit still applies.
    pub async fn get_at_most(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        max_bytes: u64,
    ) -> Result<Fetched, FetchError> {
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
        let mut response = request.send().await.map_err(|e| match refused_address(&e) {
            Some(why) => FetchError::NotAllowed(why),
            None => describe(e),
        })?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let limit = self.policy.max_bytes.min(max_bytes);
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

/// Whether `url`'s host (and, with `public_only`, its port and literal
/// address) may be fetched under `policy`; the reason when not.
fn check_target(policy: &FetchPolicy, url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    if let Some(allow) = &policy.allow_host {
        if host.is_empty() || !allow(host) {
            return Err(format!("host {} is not on the allow-list", if host.is_empty() { "(none)" } else { host }));
        }
    }
    if policy.public_only {
        if let Some(port) = url.port() {
            if port != 80 && port != 443 {
                return Err(format!("port {port} is not fetched; only 80 and 443"));
            }
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
            return Err(format!("{ip} is not a public address; only public addresses are fetched"));
        }
    }
    Ok(())
}

/// The marker in a resolver error that [`refused_address`] looks for.
const NOT_PUBLIC: &str = "resolves only to addresses that are not public";

/// A resolver that keeps only public addresses, and fails when none is left.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let shown: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                let why = format!("{host} {NOT_PUBLIC} ({}); only public addresses are fetched", shown.join(", "));
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver's refusal, if that is what `e` is.
fn refused_address(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains(NOT_PUBLIC) {
            return Some(text);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn public_only_refuses_private_addresses_ports_and_names_that_resolve_to_them() {
        let policy = FetchPolicy { public_only: true, ..FetchPolicy::default() };
        let f = Fetcher::new(policy).unwrap();
        for bad in [
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x",
            "http://[::ffff:7f00:1]/x",
            "http://8.8.8.8:8080/x",
        ] {
            assert!(matches!(f.check_url(bad), Err(FetchError::NotAllowed(_))), "{bad}");
        }
        assert!(f.check_url("https://8.8.8.8/x").is_ok() && f.check_url("http://example.com:443/x").is_ok());
        // "localhost" passes the URL check; its addresses are refused before connecting.
        let e = f.get("http://localhost/x", &[]).await.unwrap_err();
        assert!(matches!(&e, FetchError::NotAllowed(why) if why.contains("not public")), "{e:?}");
    }

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
