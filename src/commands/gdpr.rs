//! `postrunner erase` and `postrunner export`: a person's right to erasure and of
//! access, for one client (sql/definitions/100_gdpr_erasure.sql does the work in one transaction).
//! The address is never logged; the erasure's log is `postrunner.erasures`, by hash.

use postrunner_schema::statements;
use sqlx::PgPool;

use super::Context;
use crate::config::PersonArgs;

/// `postrunner erase`: prints what was erased.
pub async fn erase_command(cx: &Context, person: &PersonArgs) -> anyhow::Result<()> {
    let pool = cx.pool("erase", 1)?;
    println!("{}", erase(&pool, &person.client, &person.address).await?);
    Ok(())
}

/// `postrunner export`: prints everything held about the person, as JSON.
pub async fn export_command(cx: &Context, person: &PersonArgs) -> anyhow::Result<()> {
    let pool = cx.pool("export", 1)?;
    println!("{:#}", export(&pool, &person.client, &person.address).await?);
    Ok(())
}

/// Erases `address`'s data for `client`; what was erased, and the hash they are kept as.
///
/// # Errors
/// A database error, or no such client.
pub async fn erase(pool: &PgPool, client: &str, address: &str) -> Result<serde_json::Value, sqlx::Error> {
    let erased: serde_json::Value = statements::gdpr::erase(client, address)
        .scalar()
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
    statements::gdpr::export(client, address).scalar().fetch_one(pool).await
}
