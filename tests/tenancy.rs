//! Tenant isolation and authority: an application login bound to one client can
//! neither read, insert, cancel nor re-drive another client's mail, a reporting login
//! sees only its clients' reports, and no application can forge a status, whatever it
//! SETs in its session (issue 8). Logins are real LOGIN roles (tests/support/logins.rs).
//! `bin/test-isolation 10` runs the two-client test ten times in a row.

use crate::support::db::TestDb;
use crate::support::factory;
use crate::support::logins::Login;
use crate::support::run::{executor, fast_config, registry};

const OWN_MESSAGES: &str = "SELECT count(*) FROM postrunner.outbox";

fn insert_for(client: &str, to: &str) -> String {
    format!(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('{client}', 'd', '{to}', 'Hi', 'x')"
    )
}

#[tokio::test]
async fn two_clients_applications_can_neither_read_insert_cancel_nor_redrive_each_others_mail() {
    let db = TestDb::new().await;
    factory::client(&db.pool, "acme", "d").await;
    factory::client(&db.pool, "globex", "d").await;
    let acme = Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    let globex = Login::create(&db, "postrunner_app", &[Some("globex")]).await;
    let unbound = Login::create(&db, "postrunner_app", &[]).await;

    // Each inserts its own mail; neither can insert for the other, nor can a login bound to nobody.
    acme.run(&insert_for("acme", "a1@example.org"))
        .await
        .expect("acme enqueues");
    globex
        .run(&insert_for("globex", "g1@example.org"))
        .await
        .expect("globex enqueues");
    for (login, client) in [(&acme, "globex"), (&globex, "acme"), (&unbound, "acme")] {
        let refused = login.run(&insert_for(client, "x@example.org")).await.unwrap_err();
        assert!(
            refused.contains(&format!("may not write mail for client '{client}'")),
            "{refused}"
        );
    }
    assert_eq!(count(&db, OWN_MESSAGES).await, 2, "nothing else was enqueued");

    // Each reads only its own: messages, their report, its client and directions.
    assert_eq!(acme.count(OWN_MESSAGES).await, Ok(1));
    assert_eq!(globex.count(OWN_MESSAGES).await, Ok(1));
    assert_eq!(unbound.count(OWN_MESSAGES).await, Ok(0));
    assert_eq!(
        acme.count("SELECT count(*) FROM postrunner.outbox WHERE to_address = 'g1@example.org'")
            .await,
        Ok(0)
    );
    assert_eq!(
        acme.count("SELECT sum(messages)::bigint FROM postrunner.report_outbox")
            .await,
        Ok(1)
    );
    assert_eq!(acme.count("SELECT count(*) FROM postrunner.clients").await, Ok(1));
    assert_eq!(
        acme.count("SELECT count(*) FROM postrunner.directions WHERE client = 'globex'")
            .await,
        Ok(0)
    );

    // Cancelling the other's message touches nothing: the row is not there for it.
    let globex_message = "(SELECT id FROM postrunner.outbox WHERE to_address = 'g1@example.org')";
    let cancel = "UPDATE postrunner.outbox SET status = 'cancelled' WHERE to_address = 'g1@example.org'";
    assert_eq!(
        acme.run(cancel).await,
        Ok(0),
        "acme's cancel of globex's message matches no row"
    );
    assert_eq!(status_of(&db, "g1@example.org").await, "queued");

    // Re-driving the other's failed message: it does not exist, for acme.
    sqlx::query("UPDATE postrunner.jobs SET state = 'discarded' WHERE state = 'available'")
        .execute(&db.pool)
        .await
        .unwrap();
    let id: uuid::Uuid = sqlx::query_scalar(&format!("SELECT {globex_message}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let refused = acme
        .run(&format!("SELECT postrunner.retry_message('{id}')"))
        .await
        .unwrap_err();
    assert!(refused.contains("does not exist"), "{refused}");
    assert_eq!(status_of(&db, "g1@example.org").await, "failed");
    // ... while globex re-drives its own.
    globex
        .run(&format!("SELECT postrunner.retry_message('{id}')"))
        .await
        .expect("globex re-drives its own message");
    assert_eq!(status_of(&db, "g1@example.org").await, "queued");

    for login in [acme, globex, unbound] {
        login.remove(&db).await;
    }
}

#[tokio::test]
async fn an_application_cannot_forge_a_status_whatever_it_sets_in_its_session() {
    let db = TestDb::new().await;
    factory::client(&db.pool, "acme", "d").await;
    let app = Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    app.run(&insert_for("acme", "jane@example.org")).await.unwrap();
    executor(&db.pool, registry(&db.pool), fast_config())
        .drain(None)
        .await
        .unwrap();
    assert_eq!(status_of(&db, "jane@example.org").await, "sent");

    // The setting the status guard once trusted is just a setting.
    let mut session = app.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET postrunner.internal = 'on'")
        .execute(&mut *session)
        .await
        .unwrap();
    let forged = sqlx::query("UPDATE postrunner.outbox SET status = 'failed' WHERE to_address = 'jane@example.org'")
        .execute(&mut *session)
        .await
        .unwrap_err()
        .to_string();
    assert!(forged.contains("status is managed by postrunner"), "{forged}");
    drop(session);
    let redriven = app
        .run("SELECT postrunner.retry_message(id) FROM postrunner.outbox")
        .await
        .unwrap_err();
    assert!(redriven.contains("is sent and needs no retry"), "{redriven}");
    assert_eq!(status_of(&db, "jane@example.org").await, "sent");
    let attempts = count(&db, "SELECT count(*) FROM postrunner.send_attempts").await;
    assert_eq!(attempts, 1, "sent once, never queued again");
    app.remove(&db).await;
}

#[tokio::test]
async fn a_reporting_login_sees_the_reports_of_its_clients_only() {
    let db = TestDb::new().await;
    factory::client(&db.pool, "acme", "d").await;
    factory::client(&db.pool, "globex", "d").await;
    factory::message(&db.pool, "acme", "d", "a@example.org").await;
    factory::message(&db.pool, "globex", "d", "g@example.org").await;
    executor(&db.pool, registry(&db.pool), fast_config())
        .drain(None)
        .await
        .unwrap();
    let acme = Login::create(&db, "postrunner_reader", &[Some("acme")]).await;
    let agency = Login::create(&db, "postrunner_reader", &[None]).await;

    for view in [
        "report_outbox",
        "report_capacity",
        "report_daily_volume",
        "report_blocked",
    ] {
        let clients = format!("SELECT count(DISTINCT client) FROM postrunner.{view}");
        assert_eq!(acme.count(&clients).await, Ok(1), "{view} for acme's dashboard");
        assert_eq!(agency.count(&clients).await, Ok(2), "{view} for the agency's");
        let other = format!("SELECT count(*) FROM postrunner.{view} WHERE client = 'globex'");
        assert_eq!(acme.count(&other).await, Ok(0), "{view}");
    }
    // What belongs to no single client needs every client.
    for view in ["report_queue", "report_provider_health", "workers"] {
        let rows = format!("SELECT count(*) FROM postrunner.{view}");
        assert_eq!(acme.count(&rows).await, Ok(0), "{view} for acme's dashboard");
    }
    assert!(
        agency
            .count("SELECT count(*) FROM postrunner.report_provider_health")
            .await
            .unwrap()
            > 0
    );
    // No table directly: the bodies and recipients stay out of dashboards.
    let refused = agency
        .count("SELECT count(*) FROM postrunner.outbox")
        .await
        .unwrap_err();
    assert!(refused.contains("permission denied"), "{refused}");
    for login in [acme, agency] {
        login.remove(&db).await;
    }
}

#[tokio::test]
async fn roles_sql_runs_again_harmlessly_and_the_example_reports_run_for_postrunner() {
    let db = TestDb::new().await;
    for _ in 0..2 {
        sqlx::raw_sql(include_str!("../sql/roles.sql"))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    factory::client(&db.pool, "acme", "d").await;
    let service = Login::create(&db, "postrunner_service", &[]).await;
    service
        .run(include_str!("../sql/reports.sql"))
        .await
        .expect("sql/reports.sql runs as the service role");
    let agency = Login::create(&db, "postrunner_reader", &[None]).await;
    // Its report_* queries run for a dashboard of every client too.
    for query in include_str!("../sql/reports.sql")
        .split(";\n")
        .filter(|q| q.contains("report_"))
    {
        agency.run(query).await.unwrap_or_else(|e| panic!("{query}: {e}"));
    }
    for login in [service, agency] {
        login.remove(&db).await;
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

async fn status_of(db: &TestDb, to: &str) -> String {
    sqlx::query_scalar("SELECT status::text FROM postrunner.outbox WHERE to_address = $1")
        .bind(to)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}
