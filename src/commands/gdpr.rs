//! `postrunner erase` and `postrunner export`: a person's right to erasure and of
//! access, for one client (sql/definitions/100_gdpr_erasure.sql does the work in one transaction).
//! The address is never logged; the erasure's log is `postrunner.erasures`, by hash.

use sqlx::PgPool;

/// Erases `address`'s data for `client`; what was erased, and the hash they are kept as.
///
/// # Errors
/// A database error, or no such client.
pub async fn erase(pool: &PgPool, client: &str, address: &str) -> Result<serde_json::Value, sqlx::Error> {
    let erased: serde_json::Value = sqlx::query_scalar("SELECT postrunner.erase_recipient($1, $2)")
        .bind(client)
        .bind(address)
        .fetch_one(pool)
        .await?;
    tracing::info!(client, address.hash = %erased["address_hash"], erased = %erased, "person erased");
    Ok(erased)
}

/// Everything held about `address` for `client`, as JSON.
///
/// # Errors
/// A database error.
pub async fn export(pool: &PgPool, client: &str, address: &str) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar("SELECT postrunner.export_recipient($1, $2)")
        .bind(client)
        .bind(address)
        .fetch_one(pool)
        .await
}
