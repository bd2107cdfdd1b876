//! [`Fetcher`]: the one bounded GET behind every download cvtk makes (the
//! scoring service's `image_url` items, dataset collection, image searches,
//! `cvtk score` URL lists), so all follow one policy: a size limit checked on
//! the declared length and while reading, one time limit over the request and
//! its redirects, at most [`FetchPolicy::max_redirects`] redirects, each
//! checked like the first URL, when a host filter is set, only to hosts it
//! allows; by default ([`FetchPolicy::public_only`]) only to public addresses
//! on ports 80 and 443, names resolved and checked before connecting, proxies
//! ignored; and a caller's headers (credentials) sent only to the URL's own
//! origin, never after a redirect to another one.

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
    /// Redirects followed at most. By default, 3.
    pub max_redirects: usize,
    /// Hosts that may be fetched, redirect targets too. By default, any.
    pub allow_host: Option<HostFilter>,
    /// Connect only to public addresses ([`crate::is_public`]) on ports 80
    /// and 443, with no proxy: a host name is resolved and every address it
    /// gives is checked before a connection is made (redirects too), so an
    /// allowed name that resolves to 127.0.0.1, 10.x or 169.254.169.254 is
    /// refused. By default, on, for every fetcher: a URL from a search result,
    /// a list or a request that points (or redirects) at 169.254.169.254 or a
    /// cluster-internal host is not fetched from the user's machine or pod.
    /// Each command has a flag (`--allow-private-urls`) to turn it off.
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
            max_redirects: 3,
            allow_host: None,
            public_only: true,
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
        // Redirects are followed here, not by reqwest, so that each target is
        // checked like the first URL and the caller's headers stay with
        // their origin.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
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
    /// `headers` go to the URL's origin (scheme, host and port) only: after
    /// a redirect to another origin they are not sent.
    pub async fn get_at_most(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        max_bytes: u64,
    ) -> Result<Fetched, FetchError> {
        let timeout = self.policy.timeout;
        match tokio::time::timeout(timeout, self.get_following(url, headers, max_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    async fn get_following(&self, url: &str, headers: &[(&str, &str)], max_bytes: u64) -> Result<Fetched, FetchError> {
        let mut target = self.check_url(url)?;
        let origin = target.origin();
        let mut redirects = 0;
        let mut response = loop {
            let mut request = self.client.get(target.clone());
            if target.origin() == origin {
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
            }
            let response = request.send().await.map_err(|e| match refused_address(&e) {
                Some(why) => FetchError::NotAllowed(why),
                None => self.describe(e),
            })?;
            if !response.status().is_redirection() {
                break response;
            }
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            let Some(next) = location.and_then(|l| target.join(l).ok()) else {
                return Err(FetchError::Other(format!(
                    "redirect refused: {} answered {} without a usable Location",
                    target,
                    response.status().as_u16()
                )));
            };
            redirects += 1;
            if redirects > self.policy.max_redirects {
                return Err(FetchError::Other(format!(
                    "redirect refused: more than {} redirects",
                    self.policy.max_redirects
                )));
            }
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Other(format!("redirect refused: to {next}, not http(s)")));
            }
            check_target(&self.policy, &next)
                .map_err(|why| FetchError::Other(format!("redirect refused: to {next}: {why}")))?;
            target = next;
        };
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
        while let Some(chunk) = response.chunk().await.map_err(|e| self.describe(e))? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
    }

    fn describe(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.policy.timeout)
        } else if e.is_connect() {
            FetchError::Connect(e.to_string())
        } else {
            FetchError::Other(e.to_string())
        }
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
        let f = Fetcher::new(FetchPolicy::default()).unwrap();
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
        let any = Fetcher::new(FetchPolicy { public_only: false, ..FetchPolicy::default() }).unwrap();
        assert!(any.check_url("http://127.0.0.1:9/x").is_ok());
    }

    /// A loopback server: `/hop/N` redirects to `/hop/N-1` (`/hop/0`
    /// answers), `/away` redirects to `other`'s `/hop/0`; each answer says
    /// whether the request carried the `x-key` header.
    async fn hops(other: Option<String>) -> String {
        use axum::extract::Path;
        use axum::http::HeaderMap;
        use axum::response::{IntoResponse, Redirect};
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/hop/{n}",
                get(|Path(n): Path<u32>, headers: HeaderMap| async move {
                    if n == 0 {
                        format!("key: {}", headers.contains_key("x-key")).into_response()
                    } else {
                        Redirect::temporary(&format!("/hop/{}", n - 1)).into_response()
                    }
                }),
            )
            .route(
                "/away",
                get(move || {
                    let to = format!("{}/hop/0", other.clone().unwrap_or_default());
                    async move { Redirect::temporary(&to) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn loopback() -> Fetcher {
        Fetcher::new(FetchPolicy { public_only: false, ..FetchPolicy::default() }).unwrap()
    }

    #[tokio::test]
    async fn exactly_max_redirects_are_followed() {
        let base = hops(None).await;
        let f = loopback();
        assert_eq!(f.policy().max_redirects, 3);
        let body = f.get(&format!("{base}/hop/3"), &[]).await.unwrap().bytes;
        assert_eq!(body, b"key: false");
        let e = f.get(&format!("{base}/hop/4"), &[]).await.unwrap_err();
        assert!(e.to_string().contains("more than 3 redirects"), "{e}");
    }

    #[tokio::test]
    async fn a_callers_headers_go_to_its_origin_only_never_after_a_redirect_elsewhere() {
        let other = hops(None).await;
        let base = hops(Some(other)).await;
        let f = loopback();
        let key = [("x-key", "s3cret")];
        // Same origin, redirects included: the header goes along.
        assert_eq!(f.get(&format!("{base}/hop/2"), &key).await.unwrap().bytes, b"key: true");
        // Another origin (here another port): it does not.
        assert_eq!(f.get(&format!("{base}/away"), &key).await.unwrap().bytes, b"key: false");
    }

    #[tokio::test]
    async fn a_redirect_target_is_checked_like_the_first_url() {
        let base = hops(Some("http://169.254.169.254".into())).await;
        // The first URL passes the allow-list; the redirect target does not.
        let f = Fetcher::new(FetchPolicy {
            public_only: false,
            allow_host: Some(Arc::new(|h| h == "127.0.0.1")),
            ..FetchPolicy::default()
        })
        .unwrap();
        let e = f.get(&format!("{base}/away"), &[]).await.unwrap_err();
        assert!(e.to_string().contains("169.254.169.254") && e.to_string().contains("allow-list"), "{e}");
        assert!(FetchPolicy::default().public_only, "public addresses only must be the default");
    }

    #[test]
    fn transient_failures_are_the_ones_worth_retrying() {
        assert!(FetchError::Status(503).is_transient() && FetchError::Status(429).is_transient());
        assert!(!FetchError::Status(404).is_transient() && !FetchError::TooLarge { limit: 1 }.is_transient());
        assert!(FetchError::Timeout(Duration::from_secs(1)).is_transient());
    }
}
