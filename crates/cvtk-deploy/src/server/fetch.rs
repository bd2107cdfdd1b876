//! Fetching `image_url` items through the shared bounded GET: only from
//! allow-listed hosts (redirect targets too, at most three redirects), only
//! from public addresses on ports 80 and 443 unless the policy allows private
//! ones, with the policy's size and time limits and a byte budget over all
//! the URLs of one request.

use std::sync::Arc;

use cvtk_http::{FetchError, FetchPolicy, Fetcher};

use crate::api::{ErrorCode, ErrorDetail};
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
        public_only: !policy.allow_private,
    };
    Fetcher::new(limits).map(Some).map_err(|e| Error::config("urls", e.to_string()))
}

/// Downloads `url` if the policy allows it, taking its size from `budget`
/// (the bytes the request may still download, all its URLs together).
pub(crate) async fn fetch(
    fetcher: Option<&Fetcher>,
    url: &str,
    budget: &mut u64,
) -> std::result::Result<Vec<u8>, ErrorDetail> {
    let Some(fetcher) = fetcher else {
        return Err(ErrorDetail::new(ErrorCode::UrlNotAllowed,
            "this service does not fetch image URLs; send the image in image_in_base64, or start the service with --allow-url-host HOST",
        ));
    };
    if *budget == 0 {
        return Err(ErrorDetail::new(ErrorCode::UrlFetchFailed,
            "the request's download budget is spent (the URLs of one request together may fetch at most the body limit); send fewer URLs per request",
        ));
    }
    match fetcher.get_at_most(url, &[], *budget).await {
        Ok(f) => {
            *budget = budget.saturating_sub(f.bytes.len() as u64);
            Ok(f.bytes)
        }
        Err(FetchError::TooLarge { limit }) if limit == *budget => Err(ErrorDetail::new(
            ErrorCode::UrlFetchFailed,
            format!("cannot fetch {url}: larger than the {limit} bytes left of this request's download budget"),
        )),
        Err(FetchError::NotAllowed(why)) => {
            Err(ErrorDetail::new(ErrorCode::UrlNotAllowed, why.replace("the allow-list", "this service's allow-list")))
        }
        Err(e) => Err(ErrorDetail::new(ErrorCode::UrlFetchFailed, format!("cannot fetch {url}: {e}"))),
    }
}
