//! Which errors mean "the database is not reachable right now" (back off, reconnect,
//! retry) rather than "this statement is wrong": every fault a failover makes must be the
//! first kind, or a loop that could have waited gives up on work instead.

use postrunner_schema::is_connection_error;
use postrunner_test_db::proxy::{Accept, TcpProxy};
use postrunner_test_db::TestDb;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_connection_accepted_and_closed_at_once_is_a_lost_connection() {
    // HAProxy while no primary passes its check: the connection is accepted, then closed
    // before PostgreSQL's first byte. sqlx reads nothing as the SSLRequest answer and
    // reports a protocol error ("unexpected response from SSLRequest: 0x00").
    let db = TestDb::new().await;
    let proxy = TcpProxy::in_front_of(&db.url).await;
    proxy.accept(Accept::Close);
    let error = PgConnection::connect(&proxy.url(&db.url)).await.unwrap_err();
    assert!(is_connection_error(&error), "not a lost connection: {error:?}");
}

#[tokio::test]
async fn a_connection_cut_mid_session_is_a_lost_connection() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::in_front_of(&db.url).await;
    let mut conn = PgConnection::connect(&proxy.url(&db.url)).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
    proxy.cut();
    let error = sqlx::query("SELECT 1").execute(&mut conn).await.unwrap_err();
    assert!(is_connection_error(&error), "not a lost connection: {error:?}");
}

#[tokio::test]
async fn a_read_only_server_is_a_lost_connection() {
    // Mid-failover a connection may reach a node that is (or has become) a standby: its
    // writes fail with 25006. The old primary is restarted to become a standby, which
    // ends its sessions, so the loops retry on fresh connections through the new route.
    let db = TestDb::new().await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET default_transaction_read_only = on")
        .execute(&mut conn)
        .await
        .unwrap();
    let error = sqlx::query("CREATE TABLE t (x int)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(is_connection_error(&error), "not a lost connection: {error:?}");
}

#[tokio::test]
async fn a_wrong_statement_is_not_a_lost_connection() {
    let db = TestDb::new().await;
    let error = sqlx::query("SELECT no_such_column FROM postrunner.jobs")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(!is_connection_error(&error), "{error:?}");
}

#[tokio::test]
async fn a_statement_timeout_is_not_a_lost_connection() {
    // The statement was cancelled and rolled back; the connection is fine.
    let db = TestDb::new().await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET statement_timeout = '10ms'")
        .execute(&mut conn)
        .await
        .unwrap();
    let error = sqlx::query("SELECT pg_sleep(1)").execute(&mut conn).await.unwrap_err();
    assert!(!is_connection_error(&error), "{error:?}");
}
