//! `postrunner pull-suppressions`: each provider's own suppression list, pulled into
//! postrunner's.

use super::Context;
use postrunner_feedback::provider_suppressions;

pub async fn run(cx: &Context) -> anyhow::Result<()> {
    let pool = cx.pool("pull-suppressions", 2)?;
    let providers = postrunner_providers::Directory::new(pool.clone());
    let pulled = provider_suppressions::pull(&pool, &providers).await?;
    for p in &pulled {
        println!("{p}");
    }
    let failed = provider_suppressions::failures(&pulled);
    anyhow::ensure!(failed == 0, "{failed} providers' suppression lists could not be read");
    Ok(())
}
