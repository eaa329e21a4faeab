//! Storing a verified request's events: one call of postrunner.record_events
//! (sql/definitions/330_feedback_record_events.sql), committed before the web role answers.

use postrunner_schema::statements;
use sqlx::PgPool;

use super::Verified;

/// What recording a request did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// Events new to postrunner.
    pub stored: i32,
    /// Events it had already (a provider's retry, or another replica's copy).
    pub duplicates: i32,
    /// New events for no message postrunner knows (kept, counted).
    pub unmatched: i32,
}

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request's nonce was honoured before: nothing was stored.
    #[error("this request was already received")]
    Replayed,
    #[error("cannot record the events")]
    Database(#[from] sqlx::Error),
}

/// Records `verified`'s events for provider `provider` in one transaction.
///
/// # Errors
/// [`StoreError::Replayed`] for a nonce seen before; a database error otherwise (the
/// provider should retry: nothing was committed).
pub async fn record(pool: &PgPool, provider: &str, verified: &Verified) -> Result<Recorded, StoreError> {
    if verified.events.is_empty() && verified.nonce.is_none() {
        return Ok(Recorded::default());
    }
    let mut events = serde_json::to_value(&verified.events).expect("events serialise");
    strip_nul(&mut events);
    let (replayed, stored, duplicates, unmatched): (bool, i32, i32, i32) = statements::feedback::record_events(
        provider,
        events,
        verified.nonce.as_ref().map(|n| n.value.as_str()),
        verified.nonce.as_ref().map(|n| n.scope.as_str()),
    )
    .rows()
    .fetch_one(pool)
    .await?;
    if replayed {
        return Err(StoreError::Replayed);
    }
    Ok(Recorded {
        stored,
        duplicates,
        unmatched,
    })
}

/// PostgreSQL text (and so jsonb) cannot hold U+0000; a provider's payload may.
fn strip_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => text.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<_> = std::mem::take(map).into_iter().collect();
                for (key, item) in entries {
                    map.insert(key.replace('\0', ""), item);
                }
            }
            map.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}
