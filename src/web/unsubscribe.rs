//! `/u/<token>`: one-click unsubscribe (RFC 8058) and its page.
//!
//! - `POST` with `List-Unsubscribe=One-Click` (as `application/x-www-form-urlencoded` or
//!   `multipart/form-data`, both allowed by RFC 8058) suppresses the message's recipient
//!   for its client (reason `unsubscribe`, naming the message) and answers 200 only once
//!   that is committed; no redirect; a second POST changes nothing and answers 200.
//! - `GET` shows a page naming the client with a button that makes that POST. A GET
//!   alone never unsubscribes: mail scanners fetch links.
//! - A malformed, tampered or foreign token (signed for another recipient or client, or
//!   with another key) gets a 400 page and changes nothing.
//! - A link of a person erased since (GDPR) cannot be checked any more (the address it
//!   was signed for is gone), and needs nothing: an erased person is never mailed
//!   again. Both methods show that they are unsubscribed, without an address.
//!
//! Pages are plain HTML with no script: they work without JavaScript and with a
//! screen reader (one heading, one labelled button).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages::page;
use super::AppState;
use crate::html::escape;
use crate::unsubscribe::Token;
use postrunner_schema::statements;

/// What a token stands for once checked.
struct Target {
    message: uuid::Uuid,
    display_name: String,
    /// None when the recipient was erased since the message was sent.
    recipient: Option<String>,
}

/// Why a link cannot be used, as the page says it.
enum Refused {
    NotConfigured,
    Invalid,
    NotAsked,
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            Refused::NotConfigured => (
                StatusCode::NOT_FOUND,
                "Unsubscribe is not set up here",
                "This server does not handle unsubscribe links.",
            ),
            Refused::Invalid => (
                StatusCode::BAD_REQUEST,
                "This unsubscribe link is not valid",
                "The link may have been cut or changed. Use the unsubscribe link in the email itself.",
            ),
            Refused::NotAsked => (
                StatusCode::BAD_REQUEST,
                "Nothing was changed",
                "The request did not ask to unsubscribe (List-Unsubscribe=One-Click).",
            ),
            Refused::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment",
                "Your request could not be recorded just now. Nothing was changed.",
            ),
        };
        page(status, title, &format!("<p>{}</p>", escape(text)))
    }
}

/// `jane@example.org` as `j***@example.org`: enough for the reader to recognise, not
/// the whole address for whoever else holds the link.
fn masked(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Checks `token` against its message's client and recipient.
async fn target(state: &AppState, token: &str) -> Result<Target, Refused> {
    let keys = state.config.unsubscribe.as_ref().ok_or(Refused::NotConfigured)?;
    let token = Token::parse(token).ok_or(Refused::Invalid)?;
    let row: Option<(String, String, String, bool)> = statements::feedback::unsubscribe_target(token.message)
        .rows()
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "unsubscribe: cannot read the message");
            Refused::Unavailable
        })?;
    let (client, display_name, recipient, erased) = row.ok_or(Refused::Invalid)?;
    if erased {
        return Ok(Target {
            message: token.message,
            display_name,
            recipient: None,
        });
    }
    if !keys.verify(&token, &client, &recipient) {
        return Err(Refused::Invalid);
    }
    Ok(Target {
        message: token.message,
        display_name,
        recipient: Some(recipient),
    })
}

/// The page that says `whom` (when known) gets no more mail from `name`.
fn unsubscribed(name: &str, whom: Option<&str>) -> Response {
    let who = whom.map_or_else(|| "You".to_owned(), |address| escape(&masked(address)));
    page(
        StatusCode::OK,
        "You are unsubscribed",
        &format!(
            "<p>{who} will get no more emails from <strong>{name}</strong>.</p>",
            name = escape(name),
        ),
    )
}

/// `GET /u/<token>`: the confirmation page (changes nothing).
pub(crate) async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match target(&state, &token).await {
        Ok(Target {
            display_name,
            recipient: None,
            ..
        }) => unsubscribed(&display_name, None),
        Ok(target) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop emails from <strong>{name}</strong> to {to}?</p>\
                 <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
                 <button type=\"submit\">Unsubscribe</button></form>",
                name = escape(&target.display_name),
                to = escape(&masked(target.recipient.as_deref().unwrap_or_default())),
            ),
        ),
        Err(refused) => refused.into_response(),
    }
}

/// `POST /u/<token>`: one-click unsubscribe, from a mail client or the page's button.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::metrics::process::unsubscribe as count;
    let target = match target(&state, &token).await {
        Ok(target) => target,
        Err(refused) => {
            count("invalid");
            return refused.into_response();
        }
    };
    if !asks_to_unsubscribe(&headers, body).await {
        count("invalid");
        return Refused::NotAsked.into_response();
    }
    if target.recipient.is_none() {
        // Erased: kept from mail for good already; nothing to record.
        count("repeated");
        return unsubscribed(&target.display_name, None);
    }
    let done: Result<bool, sqlx::Error> = statements::feedback::unsubscribe(target.message)
        .scalar()
        .fetch_one(&state.pool)
        .await;
    match done {
        Ok(new) => {
            count(if new { "new" } else { "repeated" });
            unsubscribed(&target.display_name, target.recipient.as_deref())
        }
        Err(e) => {
            crate::metrics::process::database_error("record an unsubscribe");
            tracing::warn!(error = %e, "unsubscribe: cannot record it");
            Refused::Unavailable.into_response()
        }
    }
}

/// Whether the body carries `List-Unsubscribe=One-Click`, in either encoding RFC 8058
/// allows (a body without a content type is read as the URL-encoded form).
async fn asks_to_unsubscribe(headers: &HeaderMap, body: Bytes) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_one_click = |name: &str, value: &str| name == "List-Unsubscribe" && value.trim() == "One-Click";
    if content_type.starts_with("multipart/form-data") {
        let Ok(boundary) = multer::parse_boundary(content_type) else {
            return false;
        };
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = form.next_field().await {
            let name = field.name().unwrap_or_default().to_owned();
            if let Ok(value) = field.text().await {
                if is_one_click(&name, &value) {
                    return true;
                }
            }
        }
        return false;
    }
    if !(content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded")) {
        return false;
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .map(|pairs| pairs.iter().any(|(name, value)| is_one_click(name, value)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked() {
        assert_eq!(masked("jane@example.org"), "j***@example.org");
    }
}
