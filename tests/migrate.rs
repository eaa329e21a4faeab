//! `postrunner migrate` from the binary, and every role on a login of its own. The
//! migrator's own tests (idempotent, replicas at once) are in postrunner-schema's
//! tests/migrate.rs.

use postrunner_schema::local_cluster::with_database;
use std::str::FromStr as _;

use sqlx::Connection;

use crate::support::db::{drop_database, empty_database, server_url};

#[tokio::test]
async fn the_migrate_command_runs_twice_from_the_binary() {
    let (name, url) = empty_database().await;
    for expected in ["applied V1__schema", "database is up to date"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }
    drop_database(&name).await;
}

/// The deployment docker-compose.yml ships, without Docker: an owner login that is no
/// superuser (and has no CREATEROLE: the group roles exist) migrates its own database,
/// a worker logs in as a member of postrunner_service only, an application as a
/// member of postrunner_app bound to its client; mail goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_works_with_a_login_of_its_own_and_no_superuser() {
    let admin_url = server_url().await;
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    // The group roles, as deploy/postgres/init-roles.sh creates them (idempotent here:
    // roles are cluster-wide and other tests' migrations created them).
    sqlx::raw_sql(postrunner_schema::definitions::named("010_roles.sql").unwrap().sql)
        .execute(&mut admin)
        .await
        .unwrap();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (owner, worker, app, db) = (
        format!("pr_owner_{suffix}"),
        format!("pr_worker_{suffix}"),
        format!("pr_app_{suffix}"),
        format!("pr_test_{suffix}"),
    );
    for statement in [
        format!("CREATE ROLE {owner} LOGIN PASSWORD 'pw'"),
        format!("CREATE ROLE {worker} LOGIN PASSWORD 'pw' IN ROLE postrunner_service"),
        format!("CREATE ROLE {app} LOGIN PASSWORD 'pw' IN ROLE postrunner_app"),
        format!("CREATE DATABASE {db} OWNER {owner}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut admin).await.unwrap();
    }
    let url_as = |user: &str| {
        let options = sqlx::postgres::PgConnectOptions::from_str(&with_database(admin_url, &db))
            .unwrap()
            .username(user)
            .password("pw");
        (
            format!(
                "postgres://{user}:pw@{}:{}/{db}",
                options.get_host(),
                options.get_port()
            ),
            options,
        )
    };

    let (owner_url, _) = url_as(&owner);
    let report = postrunner_schema::migrate::run(&owner_url)
        .await
        .expect("the owner migrates");
    assert!(!report.definitions.is_empty());
    let owner_pool = postrunner_schema::pool(&owner_url, 2, "test").unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
         INSERT INTO postrunner.providers (name, kind) VALUES ('log', 'log');
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES ('s@acme.test', 'log', 'acme', 1000);
         INSERT INTO postrunner.client_logins (login, client) VALUES ('{app}', 'acme');"
    ))
    .execute(&owner_pool)
    .await
    .unwrap();

    let (_, app_options) = url_as(&app);
    let app_pool = sqlx::postgres::PgPoolOptions::new().connect_lazy_with(app_options);
    sqlx::query(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'jane@example.org', 'Hi', 'x')",
    )
    .execute(&app_pool)
    .await
    .expect("the application enqueues");

    let (worker_url, _) = url_as(&worker);
    let process = crate::support::run::Process::spawn(&worker_url, &["worker"]);
    crate::support::eventually(std::time::Duration::from_secs(20), "the message is sent", || async {
        sqlx::query_scalar::<_, String>("SELECT status::text FROM postrunner.outbox")
            .fetch_one(&app_pool)
            .await
            .ok()
            .as_deref()
            == Some("sent")
    })
    .await;
    drop(process);

    app_pool.close().await;
    owner_pool.close().await;
    for statement in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("DROP ROLE {owner}"),
        format!("DROP ROLE {worker}"),
        format!("DROP ROLE {app}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut admin).await.unwrap();
    }
}

/// A later `migrate` re-applies every definition over a database full of data (as after
/// an upgrade that changed one file): every file must be idempotent.
#[tokio::test]
async fn the_definitions_apply_again_over_a_database_in_use() {
    let db = crate::support::db::TestDb::new().await;
    crate::support::routing::acme_on_one_provider(&db.pool, 10, 50, 20).await;
    crate::support::run::executor(
        &db.pool,
        crate::support::run::registry(&db.pool),
        crate::support::run::fast_config(),
    )
    .drain(None)
    .await
    .unwrap();
    sqlx::query("DELETE FROM postrunner.sql_definitions")
        .execute(&db.pool)
        .await
        .unwrap();

    let report = postrunner_schema::migrate::run(&db.url)
        .await
        .expect("the definitions apply again");

    assert_eq!(
        report.definitions.len(),
        postrunner_schema::definitions::DEFINITIONS.len()
    );
    let again = postrunner_schema::migrate::run(&db.url).await.unwrap();
    assert!(again.is_empty(), "and then nothing changed: {again:?}");
}
