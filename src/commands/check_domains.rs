//! `postrunner check-domains`: SPF, DKIM, DMARC and MX of every sender domain, then
//! the gate that holds a failing domain's addresses.

use super::Context;
use crate::compliance::domains;
use crate::config::CheckDomainsArgs;

pub async fn run(cx: &Context, args: &CheckDomainsArgs) -> anyhow::Result<()> {
    let pool = cx.pool("check-domains", 2)?;
    let resolver = domains::resolver(args.nameserver).map_err(anyhow::Error::msg)?;
    let reports = domains::check_all(&pool, &resolver).await?;
    let gate = domains::apply_gate(&pool).await?;
    for report in &reports {
        println!("{} {}", report.domain, if report.ok() { "ok" } else { "FAILING" });
        for (name, check) in [
            ("spf", &report.spf),
            ("dkim", &report.dkim),
            ("dmarc", &report.dmarc),
            ("mx", &report.mx),
        ] {
            println!(
                "  {name:<6} {:<4} {}",
                if check.ok { "ok" } else { "FAIL" },
                check.detail
            );
        }
    }
    println!("{gate}");
    let failing = reports.iter().filter(|r| !r.ok()).count();
    anyhow::ensure!(
        failing == 0,
        "{failing} of {} sender domains fail their checks",
        reports.len()
    );
    Ok(())
}
