//! sql/roles.sql: each role can do its job and nothing more.

use sqlx::PgConnection;

use crate::support::db::TestDb;
use crate::support::factory;

const ROLES: &str = include_str!("../sql/roles.sql");

async fn as_role(conn: &mut PgConnection, role: &str, sql: &str) -> Result<(), String> {
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let result = sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
    result
}

#[tokio::test]
async fn each_role_can_do_its_job_and_no_more() {
    let db = TestDb::new().await;
    // Idempotent: a second run changes nothing and does not fail.
    sqlx::raw_sql(ROLES).execute(&db.pool).await.unwrap();
    sqlx::raw_sql(ROLES).execute(&db.pool).await.unwrap();
    factory::client(&db.pool, "acme", "q1").await;
    let mut conn = db.pool.acquire().await.unwrap();

    let enqueue = "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key)
                   VALUES ('acme', 'q1', 'jane@example.org', 'Hi', 'x', 'k1')";
    let cancel = "UPDATE postrunner.outbox SET status = 'cancelled' WHERE idempotency_key = 'k1' AND status IN ('queued', 'retrying')";

    // The application role enqueues, reads and cancels, but cannot touch the queue.
    as_role(&mut conn, "postrunner_app", enqueue)
        .await
        .expect("app enqueues");
    as_role(
        &mut conn,
        "postrunner_app",
        "SELECT status, attempts FROM postrunner.outbox",
    )
    .await
    .expect("app reads");
    as_role(&mut conn, "postrunner_app", cancel).await.expect("app cancels");
    let denied = as_role(&mut conn, "postrunner_app", "SELECT * FROM postrunner.jobs")
        .await
        .unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    let denied = as_role(
        &mut conn,
        "postrunner_app",
        "UPDATE postrunner.outbox SET subject = 'x'",
    )
    .await
    .unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");

    // ... and re-drives a failed message, still without any privilege on the queue.
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded'")
        .execute(&mut *conn)
        .await
        .unwrap();
    as_role(&mut conn, "postrunner_app", "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, idempotency_key) VALUES ('acme', 'q1', 'x@example.org', 'Hi', 'x', 'k2')").await.expect("app enqueues");
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded' WHERE state = 'available'")
        .execute(&mut *conn)
        .await
        .unwrap();
    as_role(
        &mut conn,
        "postrunner_app",
        "SELECT postrunner.retry_message(id) FROM postrunner.outbox WHERE idempotency_key = 'k2'",
    )
    .await
    .expect("app re-drives");

    // The reader reads reports only.
    as_role(&mut conn, "postrunner_reader", "SELECT * FROM postrunner.report_queue")
        .await
        .expect("reader reads reports");
    as_role(&mut conn, "postrunner_reader", "SELECT * FROM postrunner.workers")
        .await
        .expect("reader reads workers");
    let denied = as_role(&mut conn, "postrunner_reader", "SELECT * FROM postrunner.outbox")
        .await
        .unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    let denied = as_role(&mut conn, "postrunner_reader", enqueue).await.unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");

    // The example reports run as the reader... except the ones over outbox and schedules,
    // which need the service role; all of them run as the service role.
    as_role(&mut conn, "postrunner_service", include_str!("../sql/reports.sql"))
        .await
        .expect("reports.sql runs");
}
