//! A fresh database per test, cloned from a migrated template: the test support every
//! crate of the workspace shares (as crates.io's test-db crate is).
//!
//! 1. Server: `DATABASE_URL` if set, else the embedded default (the same code path as
//!    `postrunner demo`): 127.0.0.1:5432, or a throwaway cluster for this test process.
//! 2. Template, once per process: `postrunner_tpl_<hash of migrations/>`, so a changed
//!    migration never reuses a stale template; built under an advisory lock (several
//!    test processes may race), migrated with the real `postrunner_schema::migrate`.
//! 3. Per test: `CREATE DATABASE pr_test_<random> TEMPLATE ...`. Dropped when the test
//!    passes; kept (and named on stderr) when it fails, for a look with psql.
//!
//! [`proxy`] puts a TCP proxy the test controls between postrunner and PostgreSQL;
//! [`pgbouncer`] a real PgBouncer in transaction mode.

pub mod pgbouncer;
pub mod proxy;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use postrunner_schema::local_cluster::{self, with_database};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

static SERVER: OnceCell<String> = OnceCell::const_new();
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The admin URL of the server the tests use.
pub async fn server_url() -> &'static str {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return with_database(&url, "postgres");
            }
            let server = local_cluster::find_or_start()
                .await
                .expect("a PostgreSQL server for the tests");
            let url = server.admin_url.clone();
            // A throwaway cluster must outlive every test; its watchdog stops it when
            // this process exits.
            std::mem::forget(server);
            url
        })
        .await
}

/// The admin URL of the tests' server, once a test has asked for it ([`server_url`]).
pub fn known_server_url() -> Option<&'static str> {
    SERVER.get().map(String::as_str)
}

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let admin_url = server_url().await;
            let name = format!("postrunner_tpl_{:016x}", migrations_hash());
            let mut admin = PgConnection::connect(admin_url)
                .await
                .expect("connect to the test server");
            sqlx::query("SELECT pg_advisory_lock(hashtext('postrunner_test_template'))")
                .execute(&mut admin)
                .await
                .unwrap();
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            if !exists {
                let building = format!("{name}_building");
                exec(&mut admin, &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await;
                exec(&mut admin, &format!("CREATE DATABASE {building}")).await;
                postrunner_schema::migrate::run(&with_database(admin_url, &building))
                    .await
                    .expect("migrate the template");
                exec(&mut admin, &format!("ALTER DATABASE {building} RENAME TO {name}")).await;
                exec(
                    &mut admin,
                    &format!("ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
                )
                .await;
            }
            sweep_abandoned(&mut admin).await;
            sqlx::query("SELECT pg_advisory_unlock(hashtext('postrunner_test_template'))")
                .execute(&mut admin)
                .await
                .unwrap();
            name
        })
        .await
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Drops test databases left by crashed runs more than two hours ago.
async fn sweep_abandoned(admin: &mut PgConnection) {
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database
          WHERE datname LIKE 'pr\\_test\\_%'
            AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '2 hours'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in old {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut *admin)
            .await;
    }
}

/// A hash of every migration's and every definition's name and content, so that a
/// template is never reused after either changed.
fn migrations_hash() -> u64 {
    let dir = Path::new(postrunner_schema::MIGRATIONS_DIR);
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut hasher);
        std::fs::read(&f).unwrap().hash(&mut hasher);
    }
    for definition in postrunner_schema::definitions::DEFINITIONS {
        definition.file.hash(&mut hasher);
        definition.sql.hash(&mut hasher);
    }
    hasher.finish()
}

/// One test's database.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        init_logging();
        let template = template().await;
        let admin_url = server_url().await;
        let name = format!("pr_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = PgConnection::connect(admin_url).await.unwrap();
        exec(&mut admin, &format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
        admin.close().await.unwrap();
        let url = with_database(admin_url, &name);
        let pool = postrunner_schema::pool(&url, 10, "postrunner-test").unwrap();
        Self { pool, url, name }
    }

    /// Another pool on the same database, as a separate process would have.
    pub fn another_pool(&self, max_connections: u32) -> PgPool {
        postrunner_schema::pool(&self.url, max_connections, "postrunner-test").unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept database {} for inspection ({})", self.name, self.url);
            return;
        }
        let name = self.name.clone();
        // Drop cannot await; a short-lived runtime on another thread does the DROP.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin_url = SERVER.get().expect("server known");
                if let Ok(mut admin) = PgConnection::connect(admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = done.join();
    }
}

/// Logs from the library when TEST_LOG is set (the first call wins).
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` every 20 ms until it returns true; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `sql`, a query returning one bigint, until it returns `expected`. Errors (a
/// database restarting) count as "not yet".
pub async fn wait_for_count(pool: &sqlx::PgPool, sql: &str, expected: i64, timeout: Duration) {
    eventually(timeout, &format!("{sql} = {expected}"), || async {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.ok() == Some(expected)
    })
    .await;
}

/// A new, empty database (not from the template): its name and URL. Drop it with
/// [`drop_database`].
pub async fn empty_database() -> (String, String) {
    let admin = server_url().await;
    let name = format!("pr_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut conn = PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    (name.clone(), with_database(admin, &name))
}

/// Drops a database made by [`empty_database`].
pub async fn drop_database(name: &str) {
    let mut conn = PgConnection::connect(server_url().await).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}
