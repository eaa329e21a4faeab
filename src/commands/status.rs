//! `postrunner status`: the operator's summary, as text or JSON ([`crate::status`]).

use super::Context;
use crate::config::StatusArgs;
use crate::status;

pub async fn run(cx: &Context, args: &StatusArgs) -> anyhow::Result<()> {
    let pool = cx.pool("status", 1)?;
    if args.json {
        println!("{:#}", status::read_json(&pool).await?);
    } else {
        print!("{}", status::text::render(&status::read(&pool).await?));
    }
    Ok(())
}
