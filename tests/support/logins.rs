//! Real login roles, as an application or a dashboard would connect: a role with LOGIN,
//! a member of one of postrunner's group roles, bound to clients in
//! postrunner.client_logins. Tests of authority log in as them instead of `SET ROLE`
//! from a superuser, whose session is a postrunner process's (a superuser is a member of
//! every role).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::db::TestDb;

pub struct Login {
    pub name: String,
    pub pool: PgPool,
}

impl Login {
    /// A new login in group role `group` (e.g. `postrunner_app`), bound to `clients`
    /// (`None`: every client; an empty list: none).
    pub async fn create(db: &TestDb, group: &str, clients: &[Option<&str>]) -> Self {
        Self::create_on(&db.pool, &db.url, group, clients).await
    }

    /// [`Login::create`] through `pool` (a superuser's), logging in at `url` (which may
    /// be another server of the same cluster: a standby).
    pub async fn create_on(pool: &PgPool, url: &str, group: &str, clients: &[Option<&str>]) -> Self {
        let name = format!("pr_login_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = uuid::Uuid::new_v4().simple().to_string();
        sqlx::raw_sql(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}"
        ))
        .execute(pool)
        .await
        .unwrap();
        for client in clients {
            sqlx::query("INSERT INTO postrunner.client_logins (login, client) VALUES ($1, $2)")
                .bind(&name)
                .bind(client)
                .execute(pool)
                .await
                .unwrap();
        }
        let options = PgConnectOptions::from_str(url)
            .unwrap()
            .username(&name)
            .password(&password);
        let pool = PgPoolOptions::new().max_connections(2).connect_lazy_with(options);
        Self { name, pool }
    }

    /// Runs `sql` as this login; the database's message when it is refused.
    pub async fn run(&self, sql: &str) -> Result<u64, String> {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| {
                e.as_database_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            })
    }

    /// A query returning one bigint, as this login.
    pub async fn count(&self, sql: &str) -> Result<i64, String> {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.map_err(|e| {
            e.as_database_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })
    }

    /// Closes its connections and drops the role (roles are cluster-wide).
    pub async fn remove(self, db: &TestDb) {
        self.remove_on(&db.pool).await;
    }

    /// [`Login::remove`] through `pool` (a superuser's).
    pub async fn remove_on(self, pool: &PgPool) {
        self.pool.close().await;
        sqlx::raw_sql(&format!(
            "DELETE FROM postrunner.client_logins WHERE login = '{0}'; DROP ROLE IF EXISTS {0}",
            self.name
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}
