//! `/healthz` (the process answers) and `/readyz` (it can do its work: the database
//! answers and holds this binary's migrations and SQL definitions, so a replica of a
//! newer release is not sent traffic before `postrunner migrate` ran).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tokio::sync::OnceCell;

use super::{ApiError, AppState};
use postrunner_schema::statements;

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness, remembered once reached (the schema does not go backwards).
#[derive(Default)]
pub(crate) struct Readiness {
    current: OnceCell<()>,
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .readiness
        .current
        .get_or_try_init(|| async {
            match postrunner_schema::migrate::is_current(&state.pool).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is not migrated to this release (run postrunner migrate)",
                )),
                Err(error) => {
                    tracing::warn!(%error, "readiness check failed");
                    Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the database does not answer",
                    ))
                }
            }
        })
        .await?;
    // Once current, readiness is the database answering.
    statements::common::ping().execute(&state.pool).await.map_err(|error| {
        tracing::warn!(%error, "readiness check failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database does not answer")
    })?;
    Ok(Json(serde_json::json!({ "status": "ready" })))
}
