//! Fetching `image_url` items through the shared bounded GET: only from
//! allow-listed hosts (redirect targets too, at most three redirects), with
//! the policy's size and time limits.

use std::sync::Arc;

use cvtk_http::{FetchError, FetchPolicy, Fetcher};

use crate::api::ErrorDetail;
use crate::{Error, Result, UrlPolicy};

/// The fetcher for `policy`, or None when URLs are off.
pub(crate) fn fetcher(policy: &UrlPolicy) -> Result<Option<Fetcher>> {
    if !policy.enabled() {
        return Ok(None);
    }
    let allowed = policy.clone();
    let limits = FetchPolicy {
        max_bytes: policy.max_bytes,
        timeout: policy.timeout,
        max_redirects: 3,
        allow_host: Some(Arc::new(move |h| allowed.allows(h))),
    };
    Fetcher::new(limits).map(Some).map_err(|e| Error::config("urls", e.to_string()))
}

/// Downloads `url` if the policy allows it.
pub(crate) async fn fetch(fetcher: Option<&Fetcher>, url: &str) -> std::result::Result<Vec<u8>, ErrorDetail> {
    let Some(fetcher) = fetcher else {
        return Err(ErrorDetail::new(
            "url_not_allowed",
            "this service does not fetch image URLs; send the image in image_in_base64, or start the service with --allow-url-host HOST",
        ));
    };
    match fetcher.get(url, &[]).await {
        Ok(f) => Ok(f.bytes),
        Err(FetchError::NotAllowed(why)) => {
            Err(ErrorDetail::new("url_not_allowed", why.replace("the allow-list", "this service's allow-list")))
        }
        Err(e) => Err(ErrorDetail::new("url_fetch_failed", format!("cannot fetch {url}: {e}"))),
    }
}
