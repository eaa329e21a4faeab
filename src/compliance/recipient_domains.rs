//! Which mailbox provider hosts a recipient's domain, from its MX records: a company on
//! Google Workspace receives through `aspmx.l.google.com`, so its mail counts against
//! the client's `google` limits like mail to gmail.com (sql/definitions/410_compliance_recipient_domains.sql).
//!
//! The `system.classify_recipient_domains` task looks up the domains that messages of
//! clients with mailbox group limits are waiting for; the matching, the bookkeeping
//! and moving the messages on are SQL's.

use futures_util::StreamExt as _;
use hickory_resolver::TokioResolver;
use postrunner_schema::statements;
use sqlx::PgPool;

/// Lookups in flight at once.
const CONCURRENT_LOOKUPS: usize = 16;
/// Domains looked up per run.
const BATCH: i32 = 500;

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    pub looked_up: usize,
    pub failed: usize,
    pub moved: i64,
}

/// A domain's MX hosts (comma-separated, `""` when it has none), or why the lookup
/// failed (`Err`, worth trying again).
async fn mx_hosts(resolver: &TokioResolver, domain: &str) -> Result<String, String> {
    match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(found) => Ok(found
            .iter()
            .map(|mx| mx.exchange().to_ascii().trim_end_matches('.').to_owned())
            .collect::<Vec<_>>()
            .join(",")),
        // No such domain, or no MX: in no group (nothing to wait for).
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(String::new()),
        Err(e) => Err(format!("lookup failed: {e}")),
    }
}

/// Looks up the pending recipient domains and records their groups; the messages
/// waiting for them move on.
///
/// # Errors
/// The database cannot be read or written.
pub async fn classify_pending(pool: &PgPool, resolver: &TokioResolver) -> Result<Classified, sqlx::Error> {
    let domains: Vec<String> = statements::compliance::pending_recipient_domains(BATCH)
        .scalar()
        .fetch_all(pool)
        .await?;
    let results: Vec<(String, Result<String, String>)> = futures_util::stream::iter(domains)
        .map(|domain| async move {
            let hosts = mx_hosts(resolver, &domain).await;
            (domain, hosts)
        })
        .buffer_unordered(CONCURRENT_LOOKUPS)
        .collect()
        .await;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let (names, hosts, failures): (Vec<String>, Vec<String>, Vec<bool>) = results.into_iter().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut names, mut hosts, mut failures), (domain, result)| {
            names.push(domain);
            failures.push(result.is_err());
            hosts.push(result.unwrap_or_else(|why| why));
            (names, hosts, failures)
        },
    );
    let moved: i64 = statements::compliance::record_recipient_domains(&names, &hosts, &failures)
        .scalar()
        .fetch_one(pool)
        .await?;
    Ok(Classified {
        looked_up: names.len(),
        failed,
        moved,
    })
}
