//! SPF, DKIM, DMARC and MX of every sender domain (`postrunner.sender_domains`), looked
//! up in DNS with hickory's resolver (the system's nameservers, or one given), and
//! stored in `postrunner.domain_checks` (`report_domains`).
//!
//! - SPF: one `v=spf1` record on the domain that includes each HTTP provider its
//!   sender addresses use (SendGrid `sendgrid.net`, Mailgun `mailgun.org`, SES and
//!   Resend `amazonses.com`, Postmark `spf.mtasv.net`); an SMTP provider's servers
//!   cannot be known here, so only the record's presence is checked for it.
//! - DKIM: a key at `<selector>._domainkey.<domain>`; for a domain postrunner signs
//!   for, the very public key of its private key.
//! - DMARC: a `v=DMARC1` record at `_dmarc.<domain>`; `p=none` passes with a warning.
//! - MX: at least one.
//!
//! What a failing domain does then is decided in SQL ([`apply_gate`],
//! sql/definitions/400_compliance_domain_gate.sql): an alert, and with `domain_check_policy = 'block'`
//! its addresses paused until it passes.

use std::net::SocketAddr;

use base64::Engine as _;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Resolver, TokioResolver};
use postrunner_schema::statements;
use sqlx::PgPool;

/// One check's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// A domain's four checks.
#[derive(Clone, Debug)]
pub struct DomainReport {
    pub domain: String,
    pub spf: Check,
    pub dkim: Check,
    pub dmarc: Check,
    pub mx: Check,
}

impl DomainReport {
    pub fn ok(&self) -> bool {
        self.spf.ok && self.dkim.ok && self.dmarc.ok && self.mx.ok
    }
}

/// A sender domain as the checks need it.
#[derive(sqlx::FromRow)]
struct Domain {
    domain: String,
    selector: String,
    signer: String,
    algorithm: String,
    key_env: Option<String>,
    key_file: Option<String>,
    kinds: Vec<String>,
}

/// The resolver: `nameserver` (`ip:port`), else the system's configuration.
///
/// # Errors
/// The system configuration cannot be read.
pub fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match nameserver {
        Some(address) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[address.ip()], address.port(), true);
            Resolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioConnectionProvider::default(),
            )
        }
        None => Resolver::builder_tokio().map_err(|e| e.to_string())?,
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.attempts = 2;
    options.timeout = std::time::Duration::from_secs(3);
    Ok(builder.build())
}

/// The TXT records of `name`, each as one string (its parts joined); empty when there
/// are none (or the name does not exist).
async fn txt(resolver: &TokioResolver, name: &str) -> Vec<String> {
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(found) => found
            .iter()
            .map(|record| {
                record
                    .txt_data()
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>()
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The SPF include each kind of provider needs.
fn spf_include(kind: &str) -> Option<&'static str> {
    match kind {
        "sendgrid" => Some("sendgrid.net"),
        "mailgun" => Some("mailgun.org"),
        "ses" | "resend" => Some("amazonses.com"),
        "postmark" => Some("spf.mtasv.net"),
        _ => None,
    }
}

fn check_spf(records: &[String], kinds: &[String]) -> Check {
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
        .collect();
    let record = match spf.as_slice() {
        [] => return Check::fail("no SPF record (TXT v=spf1 on the domain)"),
        [one] => one.to_ascii_lowercase(),
        _ => return Check::fail("more than one SPF record: receivers treat that as an error"),
    };
    let mut missing: Vec<String> = kinds
        .iter()
        .filter_map(|kind| spf_include(kind).map(|include| (kind, include)))
        .filter(|(_, include)| !record.split_whitespace().any(|t| t == format!("include:{include}")))
        .map(|(kind, include)| format!("{kind} (include:{include})"))
        .collect();
    missing.dedup();
    if missing.is_empty() {
        Check::pass(record)
    } else {
        Check::fail(format!("SPF does not authorize {}", missing.join(", ")))
    }
}

/// A tag's value in a `k=v; k=v` record.
fn tag<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim())
    })
}

/// The public key (`p=`, base64) of the private key postrunner signs `domain` with.
fn own_public_key(domain: &Domain) -> Result<String, String> {
    let key = match (&domain.key_env, &domain.key_file) {
        (Some(variable), _) => std::env::var(variable).map_err(|_| format!("variable {variable} is not set"))?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        (None, None) => return Err("no key_env or key_file".to_owned()),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    match domain.algorithm.as_str() {
        "ed25519-sha256" => {
            let seed: [u8; 32] = b64
                .decode(key.trim())
                .map_err(|e| e.to_string())?
                .try_into()
                .map_err(|_| "an Ed25519 seed is 32 bytes".to_owned())?;
            Ok(b64.encode(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes()))
        }
        _ => {
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            use rsa::pkcs8::EncodePublicKey as _;
            let private = rsa::RsaPrivateKey::from_pkcs1_pem(key.trim()).map_err(|e| e.to_string())?;
            let public = private.to_public_key().to_public_key_der().map_err(|e| e.to_string())?;
            Ok(b64.encode(public.as_bytes()))
        }
    }
}

fn check_dkim(records: &[String], domain: &Domain) -> Check {
    let name = format!("{}._domainkey.{}", domain.selector, domain.domain);
    let Some(published) = records.iter().find_map(|r| tag(r, "p")) else {
        return Check::fail(format!("no DKIM key at {name}"));
    };
    let published: String = published.split_whitespace().collect();
    if published.is_empty() {
        return Check::fail(format!("the DKIM key at {name} is revoked (empty p=)"));
    }
    if domain.signer == "provider" {
        return Check::pass(format!("a key at {name} (the provider signs)"));
    }
    match own_public_key(domain) {
        Ok(own) if own == published => Check::pass(format!("the key at {name} is postrunner's signing key")),
        Ok(_) => Check::fail(format!("the key at {name} is not the one postrunner signs with")),
        Err(e) => Check::fail(format!("cannot read the signing key: {e}")),
    }
}

fn check_dmarc(records: &[String], domain: &str) -> Check {
    let Some(record) = records.iter().find(|r| r.to_ascii_lowercase().starts_with("v=dmarc1")) else {
        return Check::fail(format!("no DMARC record at _dmarc.{domain}"));
    };
    match tag(record, "p").map(str::to_ascii_lowercase).as_deref() {
        Some("reject") | Some("quarantine") => Check::pass(record.clone()),
        Some("none") => Check::pass(format!(
            "{record} (p=none: monitoring only; move to quarantine or reject)"
        )),
        _ => Check::fail(format!("the DMARC record has no valid policy: {record}")),
    }
}

/// Checks every sender domain and stores the results.
///
/// # Errors
/// The database cannot be read or written.
pub async fn check_all(pool: &PgPool, resolver: &TokioResolver) -> Result<Vec<DomainReport>, sqlx::Error> {
    let domains: Vec<Domain> = statements::compliance::sender_domains().rows().fetch_all(pool).await?;
    let mut reports = Vec::with_capacity(domains.len());
    for domain in &domains {
        let spf = check_spf(&txt(resolver, &domain.domain).await, &domain.kinds);
        let dkim = check_dkim(
            &txt(resolver, &format!("{}._domainkey.{}", domain.selector, domain.domain)).await,
            domain,
        );
        let dmarc = check_dmarc(
            &txt(resolver, &format!("_dmarc.{}", domain.domain)).await,
            &domain.domain,
        );
        let mx = match resolver.mx_lookup(format!("{}.", domain.domain)).await {
            Ok(found) if found.iter().next().is_some() => Check::pass(
                found
                    .iter()
                    .map(|mx| mx.exchange().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => Check::fail("no MX record: replies and bounces to the domain have nowhere to go"),
        };
        let report = DomainReport {
            domain: domain.domain.clone(),
            spf,
            dkim,
            dmarc,
            mx,
        };
        statements::compliance::record_domain_check(
            &report.domain,
            report.spf.ok,
            &report.spf.detail,
            report.dkim.ok,
            &report.dkim.detail,
            report.dmarc.ok,
            &report.dmarc.detail,
            report.mx.ok,
            &report.mx.detail,
        )
        .execute(pool)
        .await?;
        reports.push(report);
    }
    Ok(reports)
}

/// What the gate did after a round of checks (sql/definitions/400_compliance_domain_gate.sql).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct GateOutcome {
    pub fired: i32,
    pub resolved: i32,
    pub paused: i32,
    pub resumed: i32,
}

impl std::fmt::Display for GateOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alerts fired {}, resolved {}; sender addresses paused {}, resumed {}",
            self.fired, self.resolved, self.paused, self.resumed
        )
    }
}

/// Alerts on failing domains and, when the policy says 'block', pauses (or resumes)
/// their addresses, from the stored results.
///
/// # Errors
/// The database cannot be written.
pub async fn apply_gate(pool: &PgPool) -> Result<GateOutcome, sqlx::Error> {
    statements::compliance::apply_domain_checks()
        .rows()
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_must_include_each_http_provider_in_use() {
        let kinds = vec!["sendgrid".to_owned(), "smtp".to_owned()];
        assert!(check_spf(&["v=spf1 include:sendgrid.net -all".into()], &kinds).ok);
        let missing = check_spf(&["v=spf1 include:mailgun.org -all".into()], &kinds);
        assert!(!missing.ok && missing.detail.contains("sendgrid"), "{missing:?}");
        assert!(!check_spf(&[], &kinds).ok);
        assert!(
            !check_spf(
                &["v=spf1 -all".into(), "v=spf1 include:sendgrid.net -all".into()],
                &kinds
            )
            .ok
        );
    }

    #[test]
    fn dmarc_none_passes_with_a_warning_and_no_policy_fails() {
        assert!(check_dmarc(&["v=DMARC1; p=reject".into()], "a.test").ok);
        let none = check_dmarc(&["v=DMARC1; p=none; rua=mailto:d@a.test".into()], "a.test");
        assert!(none.ok && none.detail.contains("monitoring only"));
        assert!(!check_dmarc(&["v=DMARC1; rua=mailto:d@a.test".into()], "a.test").ok);
        assert!(!check_dmarc(&[], "a.test").ok);
    }
}
