//! What the HTTP adapters share: one client with timeouts, reading Retry-After, and the
//! classification of transport failures and of status codes no provider treats specially.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::SendError;

/// Makes ring the process's TLS crypto provider (idempotent; the first call wins).
/// reqwest and OpenDAL build their TLS on the process's provider and panic without one;
/// every other TLS connection postrunner makes names ring itself. One provider in the
/// tree: aws-lc-rs, reqwest's default, was the slowest step of a clean build.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client adapters use: bounded connect and total time, so a hung provider
/// costs an attempt's worth of time, not a worker slot forever.
pub fn client(timeout: Duration) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("postrunner/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with rustls")
}

/// A request that did not get a response. A refused connection never reached the
/// provider; a timeout or a connection dropped after sending may have been taken.
pub fn transport_error(provider: &str, error: &reqwest::Error) -> SendError {
    let may_have_taken = !error.is_connect();
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    SendError::Unavailable {
        provider: provider.to_owned(),
        detail: format!("{what}: {}", without_url(error)),
        retry_after: None,
        may_have_taken,
    }
}

/// The error's text without the request URL (which may carry a domain or token).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// When the provider says to come back: `Retry-After` (seconds or an HTTP date), else
/// a reset header in seconds from now (`ratelimit-reset`) or a Unix time
/// (`X-RateLimit-Reset`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(value) = text("retry-after") {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(value) {
            return (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok();
        }
    }
    if let Some(secs) = text("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if let Some(epoch) = text("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok()) {
        let wait = epoch - chrono::Utc::now().timestamp();
        return Some(Duration::from_secs(wait.max(0) as u64));
    }
    None
}

/// The common reading of a failed status: 429, 5xx, 401/403 (and 402, 404, 405: a
/// misconfigured endpoint or account) are the provider's trouble; other 4xx reject this
/// message as it is. 502 and 504 come from a gateway in front of the provider whose
/// upstream failed or did not answer in time: the provider itself may have taken the
/// message, so they are uncertain, not refusals.
pub fn status_error(provider: &str, status: StatusCode, headers: &HeaderMap, detail: String) -> SendError {
    let detail = format!("HTTP {}: {}", status.as_u16(), truncate(&detail, 300));
    match status.as_u16() {
        429 | 500..=599 | 401..=405 => SendError::Unavailable {
            provider: provider.to_owned(),
            detail,
            retry_after: retry_after(headers),
            may_have_taken: gateway_failed(status.as_u16()),
        },
        _ => SendError::Rejected {
            provider: provider.to_owned(),
            detail,
        },
    }
}

/// A 502 or 504: a gateway in front of the provider whose upstream failed or did not
/// answer in time, so the provider itself may have taken the request.
pub fn gateway_failed(status: u16) -> bool {
    matches!(status, 502 | 504)
}

/// A provider's answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, when it is.
    pub json: Option<serde_json::Value>,
}

impl Reply {
    /// A text field of the JSON body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }
}

/// Sends `request` and reads the whole answer; a request that got no answer is the
/// provider's trouble ([`transport_error`]).
///
/// # Errors
/// [`SendError::Unavailable`] when no answer came.
pub async fn exchange(provider: &str, request: reqwest::RequestBuilder) -> Result<Reply, SendError> {
    let response = request.send().await.map_err(|e| transport_error(provider, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).ok();
    Ok(Reply {
        status,
        headers,
        text,
        json,
    })
}

/// A probe: `request` must answer 2xx.
///
/// # Errors
/// The provider's trouble, classified like a send's.
pub async fn probe(provider: &str, request: reqwest::RequestBuilder) -> Result<(), SendError> {
    let reply = exchange(provider, request).await?;
    if reply.status.is_success() {
        return Ok(());
    }
    Err(match status_error(provider, reply.status, &reply.headers, reply.text) {
        // Any refusal of a probe is the provider's trouble: it sends nothing.
        SendError::Rejected { provider, detail } => SendError::Unavailable {
            provider,
            detail,
            retry_after: None,
            may_have_taken: false,
        },
        other => other,
    })
}

/// At most `max` characters of a provider's error text.
pub fn truncate(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The domain of an address (for Message-IDs on the sender's domain).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("localhost", |(_, domain)| domain)
}
