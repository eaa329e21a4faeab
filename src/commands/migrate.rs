//! `postrunner migrate`: the migrations, then the SQL definitions (postrunner-schema).

use super::Context;

pub async fn run(cx: &Context) -> anyhow::Result<()> {
    let report = postrunner_schema::migrate::run(&cx.required_url()?).await?;
    println!("{report}");
    Ok(())
}
