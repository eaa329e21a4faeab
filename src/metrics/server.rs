//! The metrics endpoints over HTTP: `/metrics` (this process) and, on the web role,
//! `/metrics/database` (the whole system, [`super::database`]). Served on
//! `--metrics-bind` by every role, and on the web role's own port too. With
//! `POSTRUNNER_METRICS_TOKEN` set, `/metrics/database` (which names every client's
//! sender addresses) answers only a scrape that gives it as a bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::database::DatabaseMetrics;

/// The metrics routes; `/metrics/database` only with `database`.
pub fn routes<S: Clone + Send + Sync + 'static>(database: Option<Arc<DatabaseMetrics>>) -> Router<S> {
    let router = Router::new().route("/metrics", get(process));
    match database {
        Some(database) => router.route("/metrics/database", get(database_text).with_state(database)),
        None => router,
    }
}

async fn process(headers: HeaderMap) -> Response {
    negotiated(&headers, &super::process::encode())
}

async fn database_text(State(database): State<Arc<DatabaseMetrics>>, headers: HeaderMap) -> Response {
    if !database.allows(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint needs its token: Authorization: Bearer <POSTRUNNER_METRICS_TOKEN>\n",
        )
            .into_response();
    }
    match database.text().await {
        Ok(text) => negotiated(&headers, &text),
        Err(error) => {
            super::process::database_error("read the database metrics");
            tracing::warn!(%error, "could not read the database metrics");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database metrics cannot be read now\n",
            )
                .into_response()
        }
    }
}

/// OpenMetrics for a scraper that asks for it (Prometheus does), else the classic text
/// format (`curl`, `promtool check metrics`), as Prometheus's own clients negotiate.
fn negotiated(headers: &HeaderMap, openmetrics: &str) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], openmetrics.to_owned()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            classic(openmetrics),
        )
            .into_response()
    }
}

/// The classic text format of an OpenMetrics text: a counter family's HELP and TYPE
/// name its `_total` samples, and there is no `# EOF`.
fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

/// Serves the metrics routes on `bind` until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    bind: SocketAddr,
    database: Option<Arc<DatabaseMetrics>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the metrics address {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    axum::serve(listener, routes::<()>(database))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving metrics")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let open = "# HELP x_sends Sends.\n# TYPE x_sends counter\nx_sends_total{a=\"b\"} 1\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.0\n# EOF\n";
        assert_eq!(
            super::classic(open),
            "# HELP x_sends_total Sends.\n# TYPE x_sends_total counter\nx_sends_total{a=\"b\"} 1\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.0\n"
        );
    }
}
