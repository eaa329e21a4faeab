//! The deployed role layout, end to end (issue 18, 1.5): a database owned by a
//! non-superuser login that runs `postrunner migrate`, and each role as its own
//! non-owner login, member of its group role only, as docs/operations.md and the compose
//! file deploy them. The web role is ready, the worker and scheduler send an
//! application's mail, a reporting login reads its reports.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::support::db::server_url;
use crate::support::eventually;
use crate::support::run::{postrunner_output, Process};

/// `url` for another database and login.
fn url_as(server: &str, database: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(server).unwrap();
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.set_path(database);
    url.to_string()
}

/// Runs `sql` on `url`.
async fn run(url: &str, sql: &str) {
    let mut connection = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql)
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{e}\n in: {sql}"));
    connection.close().await.unwrap();
}

#[tokio::test]
async fn each_role_works_as_its_own_login_in_a_database_the_owner_migrated() {
    let admin = server_url().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (owner, web, worker, scheduler, app, reader) = (
        format!("pr_owner_{tag}"),
        format!("pr_web_{tag}"),
        format!("pr_worker_{tag}"),
        format!("pr_scheduler_{tag}"),
        format!("pr_app_{tag}"),
        format!("pr_reader_{tag}"),
    );
    let database = format!("pr_roles_{tag}");
    // Created by a superuser, as an operator would: the owner, the database, the logins
    // (the group roles exist: the test template's migration made them).
    run(admin, &format!("CREATE ROLE {owner} LOGIN PASSWORD 'owner-pw'")).await;
    run(admin, &format!("CREATE DATABASE {database} OWNER {owner}")).await;
    run(
        admin,
        &format!(
            "CREATE ROLE {web} LOGIN PASSWORD 'web-pw' IN ROLE postrunner_service;
             CREATE ROLE {worker} LOGIN PASSWORD 'worker-pw' IN ROLE postrunner_service;
             CREATE ROLE {scheduler} LOGIN PASSWORD 'scheduler-pw' IN ROLE postrunner_service;
             CREATE ROLE {app} LOGIN PASSWORD 'app-pw' IN ROLE postrunner_app;
             CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw' IN ROLE postrunner_reader;"
        ),
    )
    .await;
    let as_ = |user: &str, password: &str| url_as(admin, &database, user, password);

    // The owner migrates, and configures (providers, clients, bindings are its rows).
    let migrated = postrunner_output(&as_(&owner, "owner-pw"), &["migrate"], &[]).await;
    assert!(migrated.contains("V29"), "{migrated}");
    run(
        &as_(&owner, "owner-pw"),
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
             INSERT INTO postrunner.providers (name, kind) VALUES ('log', 'log');
             INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
             VALUES ('alice@acme.test', 'log', 'acme', 100000);
             INSERT INTO postrunner.client_logins (login, client) VALUES ('{app}', 'acme'), ('{reader}', 'acme');"
        ),
    )
    .await;

    // Each role as its own login.
    let port = crate::support::free_port();
    let bind = format!("127.0.0.1:{port}");
    let _web = Process::spawn(&as_(&web, "web-pw"), &["web", "--bind", &bind]);
    let _worker = Process::spawn(&as_(&worker, "worker-pw"), &["worker", "--poll-interval", "200ms"]);
    let _scheduler = Process::spawn(&as_(&scheduler, "scheduler-pw"), &["scheduler"]);
    let ready = format!("http://{bind}/readyz");
    eventually(
        Duration::from_secs(20),
        "postrunner_web's /readyz says ready",
        || async {
            match crate::support::get(&ready).await {
                Ok(answer) => answer.status() == 200 && answer.text().await.unwrap_or_default().contains("ready"),
                Err(_) => false,
            }
        },
    )
    .await;

    run(
        &as_(&app, "app-pw"),
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'jane@example.org', 'Hello', 'Hi')",
    )
    .await;
    let app_url = as_(&app, "app-pw");
    eventually(Duration::from_secs(20), "the application's message is sent", || async {
        let mut connection = PgConnection::connect(&app_url).await.unwrap();
        let status: String = sqlx::query_scalar("SELECT status::text FROM postrunner.outbox")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        status == "sent"
    })
    .await;
    let mut dashboard = PgConnection::connect(&as_(&reader, "reader-pw")).await.unwrap();
    let sent: i64 = sqlx::query_scalar("SELECT coalesce(sum(sent), 0)::bigint FROM postrunner.report_daily_volume")
        .fetch_one(&mut dashboard)
        .await
        .unwrap();
    assert_eq!(sent, 1);
    dashboard.close().await.unwrap();
    let verified = postrunner_output(&as_(&worker, "worker-pw"), &["verify"], &[]).await;
    assert!(verified.contains("every promise holds"), "{verified}");

    drop((_web, _worker, _scheduler));
    run(admin, &format!("DROP DATABASE {database} WITH (FORCE)")).await;
    run(
        admin,
        &format!(
            "DROP ROLE {web}; DROP ROLE {worker}; DROP ROLE {scheduler}; DROP ROLE {app}; DROP ROLE {reader};
             DROP ROLE {owner};"
        ),
    )
    .await;
}
