//! SPF, DKIM, DMARC and MX of the sender domains, looked up in a real DNS server
//! (dnsmasq on a loopback port) whose records the test writes: a domain that passes,
//! and one with each thing wrong (SPF without its provider's include, another DKIM key,
//! DMARC p=none, no MX), through `postrunner check-domains` and `report_domains`.

use crate::dkim::dkim_py;
use crate::support::db::exec;
use crate::support::db::TestDb;
use crate::support::dns_server::Dnsmasq;
use crate::support::run::Process;
use crate::support::webhooks::secret_variable;

/// A row of report_domains.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Row {
    domain: String,
    ok: bool,
    spf_ok: bool,
    dkim_ok: bool,
    dmarc_ok: bool,
    mx_ok: bool,
    spf_detail: String,
    dkim_detail: String,
    dmarc_detail: String,
    mx_detail: String,
}

impl Row {
    /// (ok, spf, dkim, dmarc, mx).
    fn verdicts(&self) -> (bool, bool, bool, bool, bool) {
        (self.ok, self.spf_ok, self.dkim_ok, self.dmarc_ok, self.mx_ok)
    }
}

#[tokio::test]
async fn check_domains_reports_what_each_sender_domain_publishes() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let ours = dkim_py(serde_json::json!({"op": "keys"}));
    let other = dkim_py(serde_json::json!({"op": "keys"}));
    let key = secret_variable(ours["rsa_pem"].as_str().unwrap());
    let record = |keys: &serde_json::Value| keys["rsa_record"].as_str().unwrap().to_owned();
    let dns = Dnsmasq::start(
        &[
            ("good.test", "v=spf1 include:sendgrid.net -all".to_owned()),
            ("s1._domainkey.good.test", record(&ours)),
            (
                "_dmarc.good.test",
                "v=DMARC1; p=reject; rua=mailto:dmarc@good.test".to_owned(),
            ),
            ("bad.test", "v=spf1 include:mailgun.org -all".to_owned()),
            ("s1._domainkey.bad.test", record(&other)),
            ("_dmarc.bad.test", "v=DMARC1; p=none".to_owned()),
            (
                "sg._domainkey.byprovider.test",
                "v=DKIM1; k=rsa; p=MIIBIjANBgkqh".to_owned(),
            ),
            ("byprovider.test", "v=spf1 include:sendgrid.net ~all".to_owned()),
        ],
        &[("good.test", "mx.good.test"), ("byprovider.test", "mx.byprovider.test")],
    )
    .await;
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'sendgrid');
             INSERT INTO postrunner.sender_addresses (address, provider, client)
             VALUES ('alice@good.test', 'sg', 'acme'), ('bob@bad.test', 'sg', 'acme'), ('carol@byprovider.test', 'sg', 'acme');
             INSERT INTO postrunner.sender_domains (domain, client, selector, key_env) VALUES
                 ('good.test', 'acme', 's1', '{key}'), ('bad.test', 'acme', 's1', '{key}');
             INSERT INTO postrunner.sender_domains (domain, client, selector, signer)
             VALUES ('byprovider.test', 'acme', 'sg', 'provider');"
        ),
    )
    .await;

    let nameserver = dns.address.to_string();
    let mut check = Process::spawn_with_env(
        &db.url,
        &["check-domains", "--nameserver", &nameserver],
        &[(key.as_str(), ours["rsa_pem"].as_str().unwrap())],
    );
    let status = check.child.wait().await.unwrap();
    let output = check.logs();
    assert!(!status.success(), "two domains fail: exit 1\n{output}");

    let rows: Vec<Row> = sqlx::query_as(
        "SELECT domain, ok, spf_ok, dkim_ok, dmarc_ok, mx_ok, spf_detail, dkim_detail, dmarc_detail, mx_detail
           FROM postrunner.report_domains ORDER BY domain",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let by = |name: &str| rows.iter().find(|r| r.domain == name).unwrap().clone();

    let good = by("good.test");
    assert_eq!(good.verdicts(), (true, true, true, true, true), "{good:?}");
    assert!(good.dkim_detail.contains("postrunner's signing key"), "{good:?}");

    let bad = by("bad.test");
    assert_eq!(bad.verdicts(), (false, false, false, true, false), "{bad:?}");
    assert!(bad.spf_detail.contains("sendgrid (include:sendgrid.net)"), "{bad:?}");
    assert!(bad.dkim_detail.contains("not the one postrunner signs with"), "{bad:?}");
    assert!(bad.dmarc_detail.contains("monitoring only"), "{bad:?}");
    assert!(bad.mx_detail.contains("no MX"), "{bad:?}");

    let provider = by("byprovider.test");
    assert_eq!(provider.verdicts(), (false, true, true, false, true), "{provider:?}");
    assert!(provider.dmarc_detail.contains("no DMARC record"), "{provider:?}");
}

/// The records of provider-signed `acme.test`, with or without its DMARC record.
async fn acme_dns(with_dmarc: bool) -> Dnsmasq {
    let mut txt = vec![
        ("acme.test", "v=spf1 include:sendgrid.net -all".to_owned()),
        ("sg._domainkey.acme.test", "v=DKIM1; k=rsa; p=MIIBIjANBgkqh".to_owned()),
    ];
    if with_dmarc {
        txt.push(("_dmarc.acme.test", "v=DMARC1; p=quarantine".to_owned()));
    }
    Dnsmasq::start(&txt, &[("acme.test", "mx.acme.test")]).await
}

/// Runs `postrunner check-domains` against `dns`; what it printed.
async fn check_domains(db: &TestDb, dns: &Dnsmasq) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
        .args(["check-domains", "--nameserver", &dns.address.to_string()])
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// (address, status, status_reason) of every sender address.
async fn addresses(pool: &sqlx::PgPool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT address, status::text, status_reason FROM postrunner.sender_addresses ORDER BY address")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn firing(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT subject, detail FROM postrunner.alerts
          WHERE kind = 'domain_checks_failed' AND state = 'firing' ORDER BY subject",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_failing_domain_is_alerted_and_under_block_its_addresses_wait_until_it_passes() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
         INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'sendgrid');
         INSERT INTO postrunner.sender_addresses (address, provider, client, status)
         VALUES ('a@acme.test', 'sg', 'acme', 'active'), ('b@acme.test', 'sg', 'acme', 'active'),
                ('held@acme.test', 'sg', 'acme', 'paused');
         INSERT INTO postrunner.sender_domains (domain, client, selector, signer)
         VALUES ('acme.test', 'acme', 'sg', 'provider');",
    )
    .await;
    let broken = acme_dns(false).await;

    // Default policy, warn: one alert, the addresses keep sending.
    let output = check_domains(&db, &broken).await;
    assert!(output.contains("alerts fired 1"), "{output}");
    let alerts = firing(pool).await;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].1.contains("DMARC: no DMARC record"), "{alerts:?}");
    assert!(addresses(pool).await.iter().filter(|a| a.1 == "active").count() == 2);
    // A second round fires nothing new.
    check_domains(&db, &broken).await;
    assert_eq!(count_alerts(pool).await, 1);

    // Block: the active addresses are paused with the reason; the one an operator
    // paused keeps its own.
    exec(
        pool,
        "UPDATE postrunner.settings SET value = 'block' WHERE name = 'domain_check_policy'",
    )
    .await;
    let refused = sqlx::query("UPDATE postrunner.settings SET value = 'blocked' WHERE name = 'domain_check_policy'")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("must be one of warn, block"), "{refused}");
    check_domains(&db, &broken).await;
    let reason = "blocked: its sender domain acme.test fails its DNS checks (report_domains)".to_owned();
    assert_eq!(
        addresses(pool).await,
        [
            ("a@acme.test".to_owned(), "paused".to_owned(), Some(reason.clone())),
            ("b@acme.test".to_owned(), "paused".to_owned(), Some(reason)),
            ("held@acme.test".to_owned(), "paused".to_owned(), None),
        ]
    );
    let routable: i64 =
        sqlx::query_scalar("SELECT count(*) FROM postrunner.address_usage WHERE client = 'acme' AND active")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(routable, 0, "routing no longer uses them");

    // Fixed: they are back, the alert resolved; the operator's pause stays.
    drop(broken);
    let fixed = acme_dns(true).await;
    let output = check_domains(&db, &fixed).await;
    assert!(
        output.contains("resolved 1") && output.contains("resumed 2"),
        "{output}"
    );
    assert!(firing(pool).await.is_empty());
    let statuses: Vec<String> = addresses(pool).await.into_iter().map(|a| a.1).collect();
    assert_eq!(statuses, ["active", "active", "paused"]);
}

async fn count_alerts(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM postrunner.alerts WHERE kind = 'domain_checks_failed'")
        .fetch_one(pool)
        .await
        .unwrap()
}
