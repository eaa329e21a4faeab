//! `postrunner web` receiving providers' webhooks: each request verified the way its
//! provider signs, signed here by independent code (tests/support/sign_webhook.py:
//! the svix library, Python's cryptography and hmac); forged, tampered, stale and
//! replayed requests refused with nothing changed; the same event stored once; a
//! message's status moving only forward.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::db::count;
use crate::support::db::TestDb;
use crate::support::webhooks::*;

async fn events(pool: &sqlx::PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM postrunner.events").await
}

#[tokio::test]
async fn the_web_role_answers_health_readiness_and_unknown_routes_with_json() {
    let db = TestDb::new().await;
    let base = serve(&db.pool).await;
    let health = get(&format!("{base}/healthz")).await;
    assert_eq!((health.status, health.body["status"].as_str()), (200, Some("ok")));
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!((ready.status, ready.body["status"].as_str()), (200, Some("ready")));
    let unknown = get(&format!("{base}/nothing-here")).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body["error"].is_string(), "{unknown:?}");
    let wrong_method = get(&format!("{base}/webhooks/sg")).await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.body["error"].as_str().unwrap().contains("POST"));
    let no_provider = post(&format!("{base}/webhooks/nobody"), &Default::default(), "[]").await;
    assert_eq!(no_provider.status, 404);
}

#[tokio::test]
async fn readiness_fails_while_the_database_lacks_this_releases_definitions() {
    let db = TestDb::new().await;
    crate::support::db::exec(
        &db.pool,
        "UPDATE postrunner.sql_definitions SET checksum = 'old' WHERE file = '350_feedback_policies.sql'",
    )
    .await;
    let base = serve(&db.pool).await;
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body["error"].as_str().unwrap().contains("migrate"));
}

struct SendGrid {
    base: String,
    private_pem: String,
}

impl SendGrid {
    async fn start(db: &TestDb) -> Self {
        let key = sign(json!({"op": "sendgrid-key"}));
        let variable = secret_variable(key["public_b64"].as_str().unwrap());
        provider_with_webhooks(&db.pool, "sg", "sendgrid", &variable).await;
        Self {
            base: serve(&db.pool).await,
            private_pem: key["private_pem"].as_str().unwrap().to_owned(),
        }
    }

    fn signed(&self, timestamp: i64, body: &str) -> std::collections::BTreeMap<String, String> {
        headers_of(&sign(
            json!({"op": "sendgrid", "private_pem": self.private_pem, "timestamp": timestamp, "body": body}),
        ))
    }

    async fn post(&self, batch: &Value) -> Answer {
        let body = batch.to_string();
        post(
            &format!("{}/webhooks/sg", self.base),
            &self.signed(now_unix(), &body),
            body,
        )
        .await
    }
}

#[tokio::test]
async fn sendgrid_events_are_stored_once_and_move_a_message_only_forward() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let sendgrid = SendGrid::start(&db).await;
    let jane = sent_message(pool, "sg", "jane@example.org", "sgid-1").await;
    let joe = sent_message(pool, "sg", "joe@example.org", "sgid-2").await;

    let bounce = sendgrid_event(
        "bounce",
        jane,
        "jane@example.org",
        json!({"type": "bounce", "reason": "550 5.1.1 jane@example.org: user unknown", "status": "5.1.1"}),
    );
    let batch = json!([
        sendgrid_event("delivered", joe, "joe@example.org", json!({"response": "250 OK"})),
        bounce,
        sendgrid_event("processed", joe, "joe@example.org", json!({})),
        sendgrid_event("delivered", Uuid::new_v4(), "nobody@example.org", json!({})),
    ]);
    let answer = sendgrid.post(&batch).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        (
            &answer.body["stored"],
            &answer.body["duplicates"],
            &answer.body["unmatched"]
        ),
        (&json!(3), &json!(0), &json!(1)),
        "processed is not recorded; the unknown message's event is kept"
    );
    assert_eq!(status_of(pool, joe).await, "delivered");
    assert_eq!(status_of(pool, jane).await, "bounced");
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("hard_bounce".into(), true, false))
    );
    let diagnostic: String = sqlx::query_scalar("SELECT diagnostic FROM postrunner.events WHERE kind = 'bounced'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        !diagnostic.contains("jane@"),
        "the recipient is redacted from the diagnostic: {diagnostic}"
    );

    // The provider retries the whole batch: nothing new.
    let again = sendgrid.post(&batch).await;
    assert_eq!(
        (again.status, &again.body["stored"], &again.body["duplicates"]),
        (200, &json!(0), &json!(3)),
        "the processed event is not recorded at all: {again:?}"
    );
    assert_eq!(events(pool).await, 3);

    // A late 'delivered' after the bounce does not bring the message back.
    let late = sendgrid
        .post(&json!([sendgrid_event(
            "delivered",
            jane,
            "jane@example.org",
            json!({})
        )]))
        .await;
    assert_eq!(late.status, 200);
    assert_eq!(status_of(pool, jane).await, "bounced");
    // A complaint goes further; this one lacks the custom arg (SendGrid's asynchronous
    // events may) and is matched by SendGrid's message id.
    let complaint = sendgrid_event(
        "spamreport",
        joe,
        "joe@example.org",
        json!({"postrunner_id": null, "sg_message_id": "sgid-2.filterdrecv-5645d9c87f-l9cfh-1-5A0B1C6E-2.0"}),
    );
    let answer = sendgrid.post(&json!([complaint])).await;
    assert_eq!(answer.body["unmatched"], json!(0), "{answer:?}");
    assert_eq!(status_of(pool, joe).await, "complained");
    assert_eq!(
        suppression(pool, "joe@example.org").await,
        Some(("complaint".into(), true, false))
    );
}

#[tokio::test]
async fn forged_tampered_stale_and_malformed_sendgrid_requests_change_nothing() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let sendgrid = SendGrid::start(&db).await;
    let jane = sent_message(pool, "sg", "jane@example.org", "sgid-1").await;
    let url = format!("{}/webhooks/sg", sendgrid.base);
    let body = json!([sendgrid_event(
        "bounce",
        jane,
        "jane@example.org",
        json!({"type": "bounce"})
    )])
    .to_string();
    let now = now_unix();

    let tampered = body.replace("bounce", "delivered");
    let cases: Vec<(&str, std::collections::BTreeMap<String, String>, String, u16)> = vec![
        ("unsigned", Default::default(), body.clone(), 401),
        ("tampered body", sendgrid.signed(now, &body), tampered, 401),
        (
            "signed by another key",
            {
                let other = sign(json!({"op": "sendgrid-key"}));
                headers_of(&sign(
                    json!({"op": "sendgrid", "private_pem": other["private_pem"], "timestamp": now, "body": body}),
                ))
            },
            body.clone(),
            401,
        ),
        (
            "timestamp changed",
            {
                let mut h = sendgrid.signed(now, &body);
                h.insert("X-Twilio-Email-Event-Webhook-Timestamp".into(), (now + 1).to_string());
                h
            },
            body.clone(),
            401,
        ),
        ("stale", sendgrid.signed(now - 3600, &body), body.clone(), 403),
        ("from the future", sendgrid.signed(now + 3600, &body), body.clone(), 403),
        (
            "signature not base64",
            {
                let mut h = sendgrid.signed(now, &body);
                h.insert("X-Twilio-Email-Event-Webhook-Signature".into(), "%%%".into());
                h
            },
            body.clone(),
            401,
        ),
        (
            "signed but not JSON",
            sendgrid.signed(now, "{not json"),
            "{not json".into(),
            400,
        ),
        (
            "signed but not events",
            sendgrid.signed(now, "[{\"x\":1}]"),
            "[{\"x\":1}]".into(),
            400,
        ),
    ];
    for (what, headers, body, expected) in cases {
        let answer = post(&url, &headers, body).await;
        assert_eq!(answer.status, expected, "{what}: {answer:?}");
        assert!(answer.body["error"].is_string(), "{what}: a JSON reason: {answer:?}");
    }
    let oversized = "x".repeat(100 * 1024);
    let answer = post(&url, &sendgrid.signed(now, &oversized), oversized).await;
    assert_eq!(answer.status, 413, "{answer:?}");

    assert_eq!(events(pool).await, 0);
    assert_eq!(status_of(pool, jane).await, "sent");
    assert_eq!(suppression(pool, "jane@example.org").await, None);
}

#[tokio::test]
async fn mailgun_events_are_verified_and_a_replayed_token_is_refused() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let key = "mailgun-signing-key";
    provider_with_webhooks(pool, "mg", "mailgun", &secret_variable(key)).await;
    let base = serve(pool).await;
    let url = format!("{base}/webhooks/mg");
    let jane = sent_message(pool, "mg", "jane@example.org", "20261201.abc@mg.acme.test").await;
    let event_data = json!({
        "event": "failed", "severity": "permanent", "reason": "bounce",
        "recipient": "jane@example.org", "timestamp": now_unix() as f64 + 0.25, "id": "evt-1",
        "message": {"headers": {"message-id": "20261201.abc@mg.acme.test"}},
        "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist", "description": ""},
        "user-variables": {}
    });
    let signed = |timestamp: i64, token: &str, data: &Value| {
        sign(json!({"op": "mailgun", "key": key, "timestamp": timestamp, "token": token, "event_data": data}))["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let json_headers = [("content-type".to_owned(), "application/json".to_owned())].into();

    let body = signed(now_unix(), "token-1", &event_data);
    let answer = post(&url, &json_headers, body.clone()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        status_of(pool, jane).await,
        "bounced",
        "matched by Mailgun's message id"
    );
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("hard_bounce".into(), true, false))
    );

    // The same request again (a captured one: its HMAC does not cover the body).
    let replay = post(&url, &json_headers, body.replace("failed", "complained")).await;
    assert_eq!(replay.status, 403, "{replay:?}");
    let stale = post(&url, &json_headers, signed(now_unix() - 3600, "token-2", &event_data)).await;
    assert_eq!(stale.status, 403, "{stale:?}");
    let mut forged: Value = serde_json::from_str(&signed(now_unix(), "token-3", &event_data)).unwrap();
    forged["signature"]["signature"] = json!("00".repeat(32));
    let forged = post(&url, &json_headers, forged.to_string()).await;
    assert_eq!(forged.status, 401, "{forged:?}");
    let unsigned = post(&url, &json_headers, json!({"event-data": event_data}).to_string()).await;
    assert_eq!(unsigned.status, 401, "{unsigned:?}");
    assert_eq!(events(pool).await, 1);
}

#[tokio::test]
async fn resend_events_signed_by_the_svix_library_are_accepted_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    provider_with_webhooks(pool, "rs", "resend", &secret_variable(secret)).await;
    let base = serve(pool).await;
    let url = format!("{base}/webhooks/rs");
    let jane = sent_message(pool, "rs", "jane@example.org", "4ef9a417-02e9-4d39-ad75-9611e0fcc33c").await;
    let body = json!({
        "type": "email.bounced", "created_at": "2026-12-01T12:00:00.000Z",
        "data": {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "to": ["jane@example.org"],
                 "tags": {"postrunner_id": jane.to_string()},
                 "bounce": {"type": "Transient", "subType": "MailboxFull", "message": "mailbox full"}}
    })
    .to_string();
    let signed = |id: &str, timestamp: i64, body: &str| {
        headers_of(&sign(
            json!({"op": "resend", "secret": secret, "id": id, "timestamp": timestamp, "body": body}),
        ))
    };

    let answer = post(&url, &signed("msg_1", now_unix(), &body), body.clone()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        status_of(pool, jane).await,
        "sent",
        "a soft bounce does not end the message"
    );
    let (kind, class): (String, String) =
        sqlx::query_as("SELECT kind::text, bounce_class::text FROM postrunner.events")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), class.as_str()), ("bounced", "soft"));

    let replay = post(&url, &signed("msg_1", now_unix(), &body), body.clone()).await;
    assert_eq!(replay.status, 403, "a svix-id is honoured once: {replay:?}");
    let stale = post(&url, &signed("msg_2", now_unix() - 600, &body), body.clone()).await;
    assert_eq!(stale.status, 403, "{stale:?}");
    let tampered = post(
        &url,
        &signed("msg_3", now_unix(), &body),
        body.replace("Transient", "Permanent"),
    )
    .await;
    assert_eq!(tampered.status, 401, "{tampered:?}");
    // During a secret rotation Svix sends several signatures: one good one is enough.
    let mut rotated = signed("msg_4", now_unix(), &body);
    let good = rotated["svix-signature"].clone();
    rotated.insert(
        "svix-signature".into(),
        format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {good}"),
    );
    let answer = post(&url, &rotated, body.clone()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(events(pool).await, 2);
}

#[tokio::test]
async fn postmark_webhooks_need_the_credentials_of_their_url() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    provider_with_webhooks(pool, "pm", "postmark", &secret_variable("hook:s3cret-pass")).await;
    let base = serve(pool).await;
    let url = format!("{base}/webhooks/pm");
    let jane = sent_message(pool, "pm", "jane@example.org", "pm-id-1").await;
    let body = json!({
        "RecordType": "Bounce", "ID": 4323372036854775807_i64, "Type": "HardBounce", "TypeCode": 1,
        "MessageID": "pm-id-1", "Email": "jane@example.org", "BouncedAt": "2026-12-01T12:00:00Z",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Metadata": {"postrunner_id": jane.to_string()}
    })
    .to_string();
    let with =
        |user: &str, password: &str| headers_of(&sign(json!({"op": "postmark", "user": user, "password": password})));

    assert_eq!(post(&url, &Default::default(), body.clone()).await.status, 401);
    assert_eq!(post(&url, &with("hook", "wrong"), body.clone()).await.status, 401);
    assert_eq!(post(&url, &with("hook", "s3cret-pas"), body.clone()).await.status, 401);
    assert_eq!(events(pool).await, 0);
    let answer = post(&url, &with("hook", "s3cret-pass"), body.clone()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(status_of(pool, jane).await, "bounced");
    let again = post(&url, &with("hook", "s3cret-pass"), body).await;
    assert_eq!((again.status, &again.body["duplicates"]), (200, &json!(1)));
}

#[tokio::test]
async fn a_provider_without_its_webhook_secret_is_refused_not_trusted() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    provider_with_webhooks(pool, "mg", "mailgun", "PR_TEST_WEBHOOK_NEVER_SET").await;
    let base = serve(pool).await;
    let answer = post(&format!("{base}/webhooks/mg"), &Default::default(), "{}").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(events(pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_events_reaching_two_web_replicas_at_once_are_stored_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let key = sign(json!({"op": "sendgrid-key"}));
    let variable = format!("PR_TEST_WEBHOOK_{}", Uuid::new_v4().simple().to_string().to_uppercase());
    provider_with_webhooks(pool, "sg", "sendgrid", &variable).await;
    let public = key["public_b64"].as_str().unwrap();
    let ports = [crate::support::free_port(), crate::support::free_port()];
    let replicas: Vec<_> = ports
        .iter()
        .map(|port| {
            crate::support::run::Process::spawn_with_env(
                &db.url,
                &["web", "--bind", &format!("127.0.0.1:{port}")],
                &[(variable.as_str(), public)],
            )
        })
        .collect();
    for port in ports {
        crate::support::eventually(
            std::time::Duration::from_secs(20),
            "the replica answers",
            || async move {
                crate::support::get(format!("http://127.0.0.1:{port}/readyz"))
                    .await
                    .is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    }
    let messages: Vec<Uuid> = {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(sent_message(pool, "sg", &format!("person{i}@example.org"), &format!("sgid-{i}")).await);
        }
        ids
    };
    let batch = Value::Array(
        messages
            .iter()
            .enumerate()
            .map(|(i, id)| {
                sendgrid_event(
                    "bounce",
                    *id,
                    &format!("person{i}@example.org"),
                    json!({"type": "bounce"}),
                )
            })
            .collect(),
    );
    let body = batch.to_string();
    let headers = headers_of(&sign(
        json!({"op": "sendgrid", "private_pem": key["private_pem"], "timestamp": now_unix(), "body": body}),
    ));
    // Each replica gets the batch three times, all at once.
    let mut sends = Vec::new();
    for round in 0..6 {
        let url = format!("http://127.0.0.1:{}/webhooks/sg", ports[round % 2]);
        let (headers, body) = (headers.clone(), body.clone());
        sends.push(tokio::spawn(async move { post(&url, &headers, body).await }));
    }
    let mut stored = 0;
    for send in sends {
        let answer = send.await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        stored += answer.body["stored"].as_i64().unwrap();
    }
    assert_eq!(stored, 20, "each event stored by exactly one request");
    assert_eq!(events(pool).await, 20);
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.suppressions").await, 20);
    assert_eq!(
        count(pool, "SELECT count(*) FROM postrunner.outbox WHERE status = 'bounced'").await,
        20
    );
    // SIGTERM: each replica stops accepting, finishes what is in flight and exits cleanly.
    for mut replica in replicas {
        replica.signal("TERM");
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), replica.child.wait())
            .await
            .expect("the replica stops within 10 s")
            .unwrap();
        assert!(status.success(), "{status:?}: {}", replica.logs());
        assert!(replica.logs().contains("web stopped"), "{}", replica.logs());
    }
}

#[tokio::test]
async fn random_requests_to_every_provider_get_a_4xx_never_a_5xx() {
    use rand::{Rng as _, SeedableRng as _};
    let db = TestDb::new().await;
    let pool = &db.pool;
    let key = sign(json!({"op": "sendgrid-key"}));
    provider_with_webhooks(
        pool,
        "sg",
        "sendgrid",
        &secret_variable(key["public_b64"].as_str().unwrap()),
    )
    .await;
    provider_with_webhooks(pool, "mg", "mailgun", &secret_variable("k")).await;
    provider_with_webhooks(pool, "pm", "postmark", &secret_variable("u:p")).await;
    provider_with_webhooks(
        pool,
        "rs",
        "resend",
        &secret_variable("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    )
    .await;
    crate::support::db::exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, sns_topics) VALUES ('ses', 'ses', '{arn:aws:sns:us-east-1:1:t}')",
    )
    .await;
    let base = serve(pool).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let shapes = [
        "",
        "null",
        "[]",
        "{}",
        "[1,2]",
        "[{}]",
        "{\"signature\":{}}",
        "{\"signature\":{\"timestamp\":1,\"token\":2,\"signature\":[]}}",
        "{\"RecordType\":\"Bounce\"}",
        "{\"Type\":\"Notification\",\"SignatureVersion\":\"2\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\",\"MessageId\":\"m\",\"Message\":\"x\",\"Timestamp\":\"t\",\"Signature\":\"AAAA\",\"SigningCertURL\":\"https://sns.example.test/SimpleNotificationService-0.pem\"}",
        "{\"type\":\"email.bounced\",\"data\":null}",
        "\u{0}\u{1}",
        "{\"a\":",
        "[[[[[[[[",
    ];
    for round in 0..250 {
        let provider = ["sg", "mg", "pm", "rs", "ses"][round % 5];
        let mut body: Vec<u8> = shapes[rng.gen_range(0..shapes.len())].as_bytes().to_vec();
        for _ in 0..rng.gen_range(0..8) {
            let at = rng.gen_range(0..=body.len());
            body.insert(at, rng.gen());
        }
        let mut headers = std::collections::BTreeMap::new();
        let values = [
            "",
            "x",
            "v1,abc",
            "Basic dTpw",
            "Basic !!!",
            "MEUCIQ==",
            "1588788367",
            "-1",
            "99999999999999999999",
        ];
        for name in [
            "X-Twilio-Email-Event-Webhook-Signature",
            "X-Twilio-Email-Event-Webhook-Timestamp",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
            "Authorization",
        ] {
            if rng.gen_bool(0.6) {
                headers.insert(name.to_owned(), values[rng.gen_range(0..values.len())].to_owned());
            }
        }
        let answer = post(&format!("{base}/webhooks/{provider}"), &headers, body.clone()).await;
        assert!(
            (400..500).contains(&answer.status) && answer.body["error"].is_string(),
            "{provider} {:?} {headers:?}: {answer:?}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(events(pool).await, 0);
}

#[tokio::test]
async fn a_request_whose_body_never_finishes_is_cut_off_with_a_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let db = TestDb::new().await;
    provider_with_webhooks(&db.pool, "mg", "mailgun", &secret_variable("k")).await;
    let base = serve_with(
        &db.pool,
        postrunner::web::WebConfig {
            request_timeout: std::time::Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let address = base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Announces 1,000 bytes and sends ten.
    socket
        .write_all(b"POST /webhooks/mg HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"sig\": 1,")
        .await
        .unwrap();
    let mut answer = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_string(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed within the timeout");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Issue 18, 1.3a: Mailgun signs with one key per account, and an account has a
/// provider row per sending domain. A signed request (its HMAC covers the timestamp and
/// token, not the body) spent on one row is refused on another row with the same key,
/// whatever body it carries.
#[tokio::test]
async fn a_mailgun_token_is_honoured_once_per_signing_key_not_per_provider_row() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let key = "mailgun-account-key";
    let variable = secret_variable(key);
    provider_with_webhooks(pool, "mg-acme", "mailgun", &variable).await;
    provider_with_webhooks(pool, "mg-globex", "mailgun", &variable).await;
    let base = serve(pool).await;
    let jane = sent_message(pool, "mg-acme", "jane@example.org", "jane.1@mg.acme.test").await;
    let joe = sent_message(pool, "mg-globex", "joe@example.org", "joe.1@mg.globex.test").await;
    let signed = |token: &str, data: Value| {
        sign(json!({"op": "mailgun", "key": key, "timestamp": now_unix(), "token": token, "event_data": data}))["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let delivered = |to: &str, id: &str| {
        json!({"event": "delivered", "recipient": to, "timestamp": now_unix() as f64, "id": format!("d-{id}"),
               "message": {"headers": {"message-id": id}}, "user-variables": {}})
    };
    let headers = [("content-type".to_owned(), "application/json".to_owned())].into();

    let first = signed("token-1", delivered("jane@example.org", "jane.1@mg.acme.test"));
    assert_eq!(
        post(&format!("{base}/webhooks/mg-acme"), &headers, first.clone())
            .await
            .status,
        200
    );
    assert_eq!(status_of(pool, jane).await, "delivered");

    // The same signature and token, another row of the same account, another body.
    let mut spent: Value = serde_json::from_str(&first).unwrap();
    spent["event-data"] = json!({"event": "complained", "recipient": "joe@example.org", "timestamp": now_unix() as f64,
                                 "id": "c-1", "message": {"headers": {"message-id": "joe.1@mg.globex.test"}},
                                 "user-variables": {}});
    let replay = post(&format!("{base}/webhooks/mg-globex"), &headers, spent.to_string()).await;
    assert_eq!(replay.status, 403, "{replay:?}");
    assert_eq!(
        status_of(pool, joe).await,
        "sent",
        "the replayed complaint changed nothing"
    );
    assert_eq!(suppression(pool, "joe@example.org").await, None);
    assert_eq!(events(pool).await, 1);
    crate::support::assert_promises_hold(pool).await;
}

/// Issue 18, 1.3b and 1.3c: an event is applied only to a message sent through the
/// provider that reports it, and only about that message's recipient. A signed event
/// naming a message that was never sent (still queued) is kept, unmatched, and changes
/// nothing; one naming another address than its message's recipient suppresses that
/// recipient (the one postrunner sent to), and keeps the address it named, flagged,
/// without acting on it.
#[tokio::test]
async fn an_event_for_a_message_never_sent_through_that_provider_is_not_applied() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    crate::support::routing::acme_on_one_provider(pool, 1, 1000, 0).await;
    let queued = crate::support::factory::message(pool, "acme", "d", "ann@example.org").await;
    let sent = sent_message(pool, "p", "jane@example.org", "p-1").await;
    let record = |events: Value| async move {
        let (stored, unmatched): (i32, i32) =
            sqlx::query_as("SELECT stored, unmatched FROM postrunner.record_events('p', $1)")
                .bind(events)
                .fetch_one(pool)
                .await
                .unwrap();
        (stored, unmatched)
    };

    // A hard bounce naming the queued message, and any address.
    let forged = record(json!([{"dedupe_key": "b1", "kind": "bounced", "bounce_class": "hard",
                               "recipient": "victim@example.org", "our_id": queued, "occurred_at": chrono::Utc::now()}]))
    .await;
    assert_eq!(forged, (1, 1), "kept, for no message");
    assert_eq!(status_of(pool, queued).await, "queued");
    assert_eq!(suppression(pool, "victim@example.org").await, None);
    assert_eq!(suppression(pool, "ann@example.org").await, None);

    // A complaint about the sent message that names someone else.
    let named = record(
        json!([{"dedupe_key": "c1", "kind": "complained", "recipient": "victim@example.org",
                              "our_id": sent, "occurred_at": chrono::Utc::now()}]),
    )
    .await;
    assert_eq!(named, (1, 0));
    assert_eq!(status_of(pool, sent).await, "complained");
    assert_eq!(
        suppression(pool, "victim@example.org").await,
        None,
        "not the address the event named"
    );
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("complaint".into(), true, false)),
        "the message's own recipient"
    );
    let flagged: (String, Option<String>) =
        sqlx::query_as("SELECT recipient, reported_recipient FROM postrunner.events WHERE dedupe_key = 'c1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        flagged,
        ("jane@example.org".to_owned(), Some("victim@example.org".to_owned()))
    );
    crate::support::assert_promises_hold(pool).await;
}
