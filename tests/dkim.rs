//! DKIM signing of SMTP mail: each sender domain's key from `sender_domains`, RSA-2048
//! and Ed25519, checked by an independent verifier (dkimpy, given the public key as its
//! DNS answer), which must refuse a message whose signed header was changed.

use std::time::Duration;

use postrunner_providers::{Directory, OutgoingMessage};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::db::exec;
use crate::support::db::TestDb;
use crate::support::smtp_server::SmtpServer;
use crate::support::webhooks::secret_variable;

/// Runs tests/support/dkim_verify.py with `request`.
pub fn dkim_py(request: Value) -> Value {
    crate::support::python::run("dkim_verify.py", &request)
}

fn message(from: &str, unsubscribe: bool) -> OutgoingMessage {
    OutgoingMessage {
        id: Uuid::new_v4(),
        from: from.into(),
        from_name: Some("Alice Smith".into()),
        to: "jane@example.org".into(),
        subject: "Hello there".into(),
        text_body: Some("Hi Jane,\r\nshall we talk?\r\n".into()),
        html_body: Some("<p>Hi Jane, shall we talk?</p>".into()),
        headers: vec![],
        unsubscribe_url: unsubscribe.then(|| "https://mail.acme.test/u/abc.def".to_owned()),
        unsubscribe_mailto: None,
        tag: None,
    }
}

fn verified(raw: &str, record: &str) -> bool {
    dkim_py(json!({"op": "verify", "message": raw, "record": record}))["valid"]
        .as_bool()
        .unwrap()
}

#[tokio::test]
async fn smtp_mail_is_signed_with_its_domains_rsa_or_ed25519_key() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let server = SmtpServer::start();
    let keys = dkim_py(json!({"op": "keys"}));
    let rsa_variable = secret_variable(keys["rsa_pem"].as_str().unwrap());
    let ed_variable = secret_variable(keys["ed25519_seed"].as_str().unwrap());
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.providers (name, kind, endpoint) VALUES ('smtp1', 'smtp', 'smtp://127.0.0.1:{port}?tls=none');
             INSERT INTO postrunner.sender_domains (domain, selector, algorithm, key_env) VALUES
                 ('mail.acme.test', 's2026', 'rsa-sha256', '{rsa_variable}'),
                 ('mail.globex.test', 'ed1', 'ed25519-sha256', '{ed_variable}');
             INSERT INTO postrunner.sender_domains (domain, selector, signer) VALUES ('mail.initech.test', 'sg', 'provider');",
            port = server.port
        ),
    )
    .await;
    let directory = Directory::new(pool.clone()).with_send_timeout(Duration::from_secs(5));
    let smtp = directory.get("smtp1").await.unwrap();

    smtp.send(&message("alice@mail.acme.test", true)).await.unwrap();
    smtp.send(&message("bob@mail.globex.test", false)).await.unwrap();
    smtp.send(&message("carol@mail.initech.test", true)).await.unwrap();
    let sent = server.messages();
    let (rsa, ed, unsigned) = (&sent[0], &sent[1], &sent[2]);

    let rsa_record = keys["rsa_record"].as_str().unwrap();
    let ed_record = keys["ed25519_record"].as_str().unwrap();
    assert!(
        rsa.contains("d=mail.acme.test") && rsa.contains("s=s2026") && rsa.contains("a=rsa-sha256"),
        "{rsa}"
    );
    let signed_headers = rsa
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_lowercase();
    for header in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(signed_headers.contains(header), "{header} in h={signed_headers}");
    }
    assert!(verified(rsa, rsa_record), "dkimpy verifies the RSA signature:\n{rsa}");
    assert!(ed.contains("a=ed25519-sha256"), "{ed}");
    assert!(verified(ed, ed_record), "dkimpy verifies the Ed25519 signature:\n{ed}");
    assert!(
        !unsigned.contains("DKIM-Signature"),
        "the provider signs initech's mail itself"
    );

    // Changed on the way: the signature no longer holds.
    let tampered = rsa.replace("Subject: Hello there", "Subject: Hello there!");
    assert!(!verified(&tampered, rsa_record));
    let tampered = ed.replace("shall we talk?", "shall we not?");
    assert!(!verified(&tampered, ed_record));
    // And with someone else's key published, neither verifies.
    assert!(!verified(rsa, ed_record));
}

#[tokio::test]
async fn a_domain_without_its_key_makes_the_adapter_unavailable_not_unsigned() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, endpoint) VALUES ('smtp1', 'smtp', 'smtp://127.0.0.1:2525?tls=none');
         INSERT INTO postrunner.sender_domains (domain, selector, key_env) VALUES ('mail.acme.test', 's1', 'PR_TEST_NO_SUCH_DKIM_KEY');",
    )
    .await;
    let directory = Directory::new(pool.clone());
    let error = directory.get("smtp1").await.err().expect("refused").to_string();
    assert!(error.contains("PR_TEST_NO_SUCH_DKIM_KEY"), "{error}");
    for bad in [
        "INSERT INTO postrunner.sender_domains (domain, selector) VALUES ('mail.x.test', 's1')",
        "INSERT INTO postrunner.sender_domains (domain, selector, key_env) VALUES ('Not A Domain', 's1', 'K')",
        "INSERT INTO postrunner.sender_domains (domain, selector, key_env, algorithm) VALUES ('mail.y.test', 's1', 'K', 'md5')",
    ] {
        assert!(sqlx::query(bad).execute(pool).await.is_err(), "{bad}");
    }
}
