//! Fetching `image_url` items, only from allow-listed hosts, with a size and a
//! time limit, following at most three redirects and only to allowed hosts.

use crate::api::ErrorDetail;
use crate::UrlPolicy;

/// An HTTP client for `policy`, or None when URLs are off.
pub(crate) fn client(policy: &UrlPolicy) -> Option<reqwest::Client> {
    if !policy.enabled() {
        return None;
    }
    let allowed = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let ok_host = attempt.url().host_str().is_some_and(|h| allowed.allows(h));
        if attempt.previous().len() >= 3 {
            attempt.error("more than 3 redirects")
        } else if !ok_host {
            let msg = format!("redirect to {} is not on the allow-list", attempt.url());
            attempt.error(msg)
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder().redirect(redirects).timeout(policy.timeout).build().ok()
}

/// Downloads `url` if the policy allows it.
pub(crate) async fn fetch(
    client: Option<&reqwest::Client>,
    policy: &UrlPolicy,
    url: &str,
) -> Result<Vec<u8>, ErrorDetail> {
    let Some(client) = client else {
        return Err(ErrorDetail::new(
            "url_not_allowed",
            "this service does not fetch image URLs; send the image in image_in_base64, or start the service with --allow-url-host HOST",
        ));
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ErrorDetail::new("url_not_allowed", format!("'{url}' is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ErrorDetail::new(
            "url_not_allowed",
            format!("only http and https URLs are fetched, not {}", parsed.scheme()),
        ));
    }
    match parsed.host_str() {
        Some(h) if policy.allows(h) => {}
        h => {
            return Err(ErrorDetail::new(
                "url_not_allowed",
                format!("host {} is not on this service's allow-list", h.unwrap_or("(none)")),
            ))
        }
    }
    let failed = |reason: String| ErrorDetail::new("url_fetch_failed", format!("cannot fetch {url}: {reason}"));
    let mut response = client.get(parsed.clone()).send().await.map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    if response.content_length().is_some_and(|n| n > policy.max_bytes) {
        return Err(failed(format!("larger than the {}-byte limit", policy.max_bytes)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > policy.max_bytes {
            return Err(failed(format!("larger than the {}-byte limit", policy.max_bytes)));
        }
    }
    Ok(body)
}
