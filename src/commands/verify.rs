//! `postrunner verify`: every promise checked against the database ([`crate::verify`]);
//! exits 1 when one is broken.

use super::Context;
use crate::config::VerifyArgs;

pub async fn run(cx: &Context, args: &VerifyArgs) -> anyhow::Result<()> {
    let pool = cx.pool("verify", 1)?;
    let report = crate::verify::verify(&pool).await?;
    if args.json {
        println!("{:#}", serde_json::to_value(&report)?);
    } else {
        println!("{report}");
    }
    let violations = report.violations().count();
    anyhow::ensure!(violations == 0, "{violations} violations of postrunner's promises");
    Ok(())
}
