//! A fresh database per test, cloned from a migrated template (crates/postrunner-test-db),
//! and setup SQL run against it.

pub use postrunner_test_db::{drop_database, empty_database, server_url, TestDb};

use sqlx::PgPool;

/// Runs one SQL statement (setup), panicking with the statement on error.
pub async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}\n in: {sql}"));
}

/// Count of a query returning one bigint.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}\n in: {sql}"))
}
