//! Tenant isolation and authority: an application login bound to one client can
//! neither read, insert, cancel nor re-drive another client's mail, a reporting login
//! sees only its clients' reports, and no application can forge a status, whatever it
//! SETs in its session (issue 8). Logins are real LOGIN roles (tests/support/logins.rs).
//! `bin/test-boundaries-and-isolation 10` runs the two-client test (and the boundary
//! tests) ten times in a row.

use crate::support::app::TestApp;
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
    let postrunner = TestApp::with_client("acme", "d").await;
    let db = &postrunner.db;
    factory::client(&db.pool, "globex", "d").await;
    let acme = Login::create(db, "postrunner_app", &[Some("acme")]).await;
    let globex = Login::create(db, "postrunner_app", &[Some("globex")]).await;
    let unbound = Login::create(db, "postrunner_app", &[]).await;

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
    assert_eq!(count(db, OWN_MESSAGES).await, 2, "nothing else was enqueued");

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
    assert_eq!(status_of(db, "g1@example.org").await, "queued");

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
    assert_eq!(status_of(db, "g1@example.org").await, "failed");
    // ... while globex re-drives its own.
    globex
        .run(&format!("SELECT postrunner.retry_message('{id}')"))
        .await
        .expect("globex re-drives its own message");
    assert_eq!(status_of(db, "g1@example.org").await, "queued");

    for login in [acme, globex, unbound] {
        login.remove(db).await;
    }
}

#[tokio::test]
async fn an_application_cannot_forge_a_status_whatever_it_sets_in_its_session() {
    let postrunner = TestApp::with_client("acme", "d").await;
    let db = &postrunner.db;
    let app = Login::create(db, "postrunner_app", &[Some("acme")]).await;
    app.run(&insert_for("acme", "jane@example.org")).await.unwrap();
    postrunner.executor().drain(None).await.unwrap();
    assert_eq!(status_of(db, "jane@example.org").await, "sent");

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
    assert_eq!(status_of(db, "jane@example.org").await, "sent");
    let attempts = count(db, "SELECT count(*) FROM postrunner.send_attempts").await;
    assert_eq!(attempts, 1, "sent once, never queued again");
    app.remove(db).await;
}

#[tokio::test]
async fn a_reporting_login_sees_the_reports_of_its_clients_only() {
    let postrunner = TestApp::with_client("acme", "d").await;
    let db = &postrunner.db;
    factory::client(&db.pool, "globex", "d").await;
    factory::message(&db.pool, "acme", "d", "a@example.org").await;
    factory::message(&db.pool, "globex", "d", "g@example.org").await;
    postrunner.executor().drain(None).await.unwrap();
    let acme = Login::create(db, "postrunner_reader", &[Some("acme")]).await;
    let agency = Login::create(db, "postrunner_reader", &[None]).await;

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
        login.remove(db).await;
    }
}

#[tokio::test]
async fn roles_sql_runs_again_harmlessly_and_the_example_reports_run_for_postrunner() {
    let db = TestDb::new().await;
    for _ in 0..2 {
        sqlx::raw_sql(postrunner_schema::definitions::named("010_roles.sql").unwrap().sql)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    factory::client(&db.pool, "acme", "d").await;
    let service = Login::create(&db, "postrunner_service", &[]).await;
    service
        .run(postrunner_schema::REPORT_EXAMPLES)
        .await
        .expect("sql/reports.sql runs as the service role");
    let agency = Login::create(&db, "postrunner_reader", &[None]).await;
    // Its report_* queries run for a dashboard of every client too.
    for query in postrunner_schema::REPORT_EXAMPLES
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

/// Acme and globex each with sent mail, a waiting message, a suppression, a sender
/// domain and an event; every row of globex's names "globex" somewhere, so a leak of
/// any of them shows.
async fn two_tenants_with_everything(db: &TestDb) {
    factory::client(&db.pool, "acme", "d").await;
    factory::client(&db.pool, "globex", "d").await;
    factory::message(&db.pool, "acme", "d", "ann-acme@example.org").await;
    factory::message(&db.pool, "globex", "d", "gil-globex@example.org").await;
    executor(&db.pool, registry(&db.pool), fast_config())
        .drain(None)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, send_after)
         VALUES ('acme', 'd', 'bo-acme@example.org', 'Later', 'x', now() + interval '1 day'),
                ('globex', 'd', 'gus-globex@example.org', 'Later', 'x', now() + interval '1 day');
         INSERT INTO postrunner.suppressions (client, address, reason)
         VALUES ('acme', 'cy-acme@example.org', 'unsubscribe'), ('globex', 'gia-globex@example.org', 'complaint');
         INSERT INTO postrunner.sender_domains (domain, client, selector, signer)
         VALUES ('mail.acme.test', 'acme', 's1', 'provider'), ('mail.globex.test', 'globex', 's1', 'provider');
         INSERT INTO postrunner.events (provider, dedupe_key, kind, bounce_class, recipient, message_id, client, occurred_at)
         SELECT 'log', 'e-' || o.client, 'bounced', 'hard', o.to_address, o.id, o.client, now()
           FROM postrunner.outbox o WHERE o.status = 'sent';",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

/// Issue 18, 1.1: a login's own WHERE clause runs only on the rows its views (and the
/// tables row-level security guards) let it see. Two attacks on every relation a login
/// bound to acme may read, enumerated from the catalog so that a new view cannot slip
/// through: a cast that fails on a value (its error quotes the value), and a function of
/// its own, in pg_temp with a tiny cost (so the planner runs it first), that raises with
/// its argument. Neither may ever see a row of globex's.
#[tokio::test]
async fn no_view_a_bound_login_reads_leaks_another_clients_rows() {
    let db = TestDb::new().await;
    two_tenants_with_everything(&db).await;
    let reader = Login::create(&db, "postrunner_reader", &[Some("acme")]).await;
    let app = Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    for login in [&reader, &app] {
        let relations: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relnamespace = 'postrunner'::regnamespace AND c.relkind IN ('r', 'v', 'p')
                AND has_table_privilege($1, c.oid, 'SELECT')
              ORDER BY 1, 2",
        )
        .bind(&login.name)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let views: std::collections::BTreeSet<&str> = relations.iter().map(|(r, _)| r.as_str()).collect();
        assert!(views.contains("report_outbox"), "{views:?}");

        let mut session = login.pool.acquire().await.unwrap();
        sqlx::raw_sql(
            "CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
             BEGIN
                 IF $1 LIKE '%globex%' THEN RAISE EXCEPTION 'peeked at %', $1; END IF;
                 RETURN true;
             END $$",
        )
        .execute(&mut *session)
        .await
        .unwrap();
        for view in &views {
            // The function, with the whole row as its argument.
            let peeked = sqlx::query(&format!(
                "SELECT count(*) FROM postrunner.{view} v WHERE pg_temp.peek(v::text)"
            ))
            .execute(&mut *session)
            .await;
            if let Err(e) = peeked {
                assert!(
                    !e.to_string().contains("globex"),
                    "{} leaks through {view}: {e}",
                    login.name
                );
            }
        }
        for (view, column) in &relations {
            // The cast, on each column.
            let cast = sqlx::query(&format!(
                "SELECT count(*) FROM postrunner.{view} WHERE {column}::text::int = 0"
            ))
            .execute(&mut *session)
            .await;
            if let Err(e) = cast {
                assert!(
                    !e.to_string().contains("globex"),
                    "{} leaks through {view}.{column}: {e}",
                    login.name
                );
            }
        }
        // (Dropped now, not when the backend exits: the login is dropped next.)
        sqlx::raw_sql("DROP FUNCTION pg_temp.peek(text)")
            .execute(&mut *session)
            .await
            .unwrap();
    }
    // The attacks do find acme's own rows (they are not simply refused).
    let own = reader
        .run("SELECT count(*) FROM postrunner.report_suppressions WHERE address::int = 0")
        .await
        .unwrap_err();
    assert!(own.contains("cy-acme@example.org"), "{own}");
    for login in [reader, app] {
        login.remove(&db).await;
    }
}

/// Issue 18, 1.4: an application login reads no job of anyone's through a function
/// (job ids are sequential: one once read every client's job states and attempts), and
/// cancelling and re-driving its own mail still work.
#[tokio::test]
async fn an_application_cannot_read_another_clients_jobs_through_a_function() {
    let db = TestDb::new().await;
    two_tenants_with_everything(&db).await;
    let app = Login::create(&db, "postrunner_app", &[Some("acme")]).await;
    let globex_job: i64 = count(
        &db,
        "SELECT job_id FROM postrunner.outbox WHERE to_address = 'gus-globex@example.org'",
    )
    .await;
    for sql in [
        format!("SELECT * FROM postrunner.carrying_job({globex_job})"),
        format!("SELECT * FROM postrunner.jobs WHERE id = {globex_job}"),
    ] {
        let refused = app.run(&sql).await.unwrap_err();
        assert!(
            refused.contains("does not exist") || refused.contains("permission denied"),
            "{sql}: {refused}"
        );
    }
    // What an application may execute: its own calls, and the checks its INSERT makes.
    let callable: Vec<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'postrunner'::regnamespace AND has_function_privilege($1, p.oid, 'EXECUTE')
          ORDER BY 1",
    )
    .bind(&app.name)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        callable,
        [
            "acts_as_service",
            "bound_clients",
            "may_act_for",
            "reject",
            "retry_message"
        ]
    );
    let cancel = "UPDATE postrunner.outbox SET status = 'cancelled' WHERE to_address = 'bo-acme@example.org'";
    assert_eq!(app.run(cancel).await, Ok(1));
    app.run("SELECT postrunner.retry_message(id) FROM postrunner.outbox WHERE to_address = 'bo-acme@example.org'")
        .await
        .unwrap();
    assert_eq!(status_of(&db, "bo-acme@example.org").await, "queued");
    app.remove(&db).await;
}

/// Issue 18, 1.2: PostgreSQL lets any login NOTIFY any channel. An application login's
/// flood of NOTIFYs (on the channel workers once listened on, and any other it can
/// name) does not drive idle workers' claims over a blocked backlog; an INSERT still
/// wakes them at once.
#[tokio::test]
async fn an_application_login_cannot_make_idle_workers_claim_by_notifying() {
    let postrunner = TestApp::with_client("acme", "d").await;
    let db = &postrunner.db;
    // A backlog that cannot go: its direction is paused.
    sqlx::raw_sql(
        "INSERT INTO postrunner.directions (client, name, paused_at, paused_reason)
         VALUES ('acme', 'closed', now(), 'held back by the test');
         INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         SELECT 'acme', 'closed', 'r' || i || '@example.org', 'Hi', 'x' FROM generate_series(1, 200) i;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = Login::create(db, "postrunner_app", &[Some("acme")]).await;

    let config = postrunner_queue::executor::ExecutorConfig {
        poll_interval: std::time::Duration::from_secs(1),
        ..fast_config()
    };
    let worker = crate::support::run::spawn(&db.pool, registry(&db.pool), config);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // The time the worker spends in claim statements (its own count, exact at once,
    // unlike the server's statistics, which an idle backend reports seconds later).
    let claiming =
        || std::time::Duration::from_micros(worker.stats.claim_us.load(std::sync::atomic::Ordering::Relaxed));
    let before = claiming();
    // Three seconds of NOTIFYs, each its own transaction, as fast as the login can.
    let mut session = app.pool.acquire().await.unwrap();
    let (started, mut sent) = (std::time::Instant::now(), 0);
    while started.elapsed() < std::time::Duration::from_secs(3) {
        for channel in ["postrunner_jobs", "postrunner_jobs_"] {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel)
                .execute(&mut *session)
                .await
                .unwrap();
            sent += 1;
        }
    }
    drop(session);
    let spent = claiming() - before;
    eprintln!("{sent} notifications, each its own transaction; the worker claimed for {spent:?} meanwhile");
    assert!(
        spent < std::time::Duration::from_secs(1),
        "{spent:?} of claim statements in 3 s of {sent} notifications: an idle worker claims about once a second"
    );

    // Nor can it learn the channel the workers listen on.
    let refused = app.run("SELECT postrunner.wake_channel_name()").await.unwrap_err();
    assert!(refused.contains("permission denied"), "{refused}");

    // A real INSERT wakes the worker at once.
    let started = std::time::Instant::now();
    app.run(&insert_for("acme", "now@example.org")).await.unwrap();
    crate::support::eventually(std::time::Duration::from_secs(5), "the new message is sent", || async {
        status_of(db, "now@example.org").await == "sent"
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    worker.stop().await;
    app.remove(db).await;
}
