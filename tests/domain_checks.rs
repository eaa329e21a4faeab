//! SPF, DKIM, DMARC and MX of the sender domains, looked up in a real DNS server
//! (dnsmasq on a loopback port) whose records the test writes: a domain that passes,
//! and one with each thing wrong (SPF without its provider's include, another DKIM key,
//! DMARC p=none, no MX), through `postrunner check-domains` and `report_domains`.

use crate::dkim::dkim_py;
use crate::support::db::TestDb;
use crate::support::dns_server::Dnsmasq;
use crate::support::routing::exec;
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
            "INSERT INTO postrunner.clients (name) VALUES ('acme');
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
