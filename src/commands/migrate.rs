//! `postrunner migrate`: the migrations, then the SQL definitions (postrunner-schema).

use anyhow::Context as _;

use super::Context;

pub async fn run(cx: &Context) -> anyhow::Result<()> {
    // Its lock is a session's (replicas that start together migrate one at a time):
    // never through PgBouncer in transaction mode.
    let url = cx.session_url()?.context(
        "--pooling transaction: migrate needs PostgreSQL itself for its session lock; set DATABASE_DIRECT_URL",
    )?;
    let report = postrunner_schema::migrate::run(&url).await?;
    println!("{report}");
    Ok(())
}
