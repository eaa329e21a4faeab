//! `GET /status`: the read-only status page (src/status/page.rs), behind a token.
//!
//! The token comes from `POSTRUNNER_STATUS_TOKEN` and is given as `?token=` (a
//! bookmark) or `Authorization: Bearer`; without the variable the page does not exist
//! (404). The page holds no recipient data and never writes.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::pages::page;
use super::AppState;

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

fn given_token<'a>(headers: &'a HeaderMap, query: &'a TokenQuery) -> Option<&'a str> {
    postrunner_providers::secret::bearer(headers).or(query.token.as_deref())
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = &state.config.status_token else {
        return super::error::not_found().await.into_response();
    };
    if !given_token(&headers, &query).is_some_and(|given| expected.matches(given)) {
        return page(
            StatusCode::UNAUTHORIZED,
            "Not authorised",
            "<p>This page needs its token: <code>/status?token=…</code>.</p>",
        );
    }
    match crate::status::read(&state.pool).await {
        Ok(summary) => (
            [(header::CACHE_CONTROL, "no-store")],
            Html(crate::status::page::render(&summary)),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "status page: the summary could not be read");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "<p>Try again in a moment.</p>",
            )
        }
    }
}
