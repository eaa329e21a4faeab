//! Amazon SES events through SNS: envelopes signed by independent code (Python's
//! cryptography, SignatureVersion 1 and 2) with a certificate served over https by a
//! local CA the web role is told to trust (`sns_trusted_hosts`, `sns_ca_pem`), the
//! way AWS serves it from sns.<region>.amazonaws.com. The origin is checked before
//! anything is fetched: an allowed topic, the certificate on SNS's host.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::smtp_server::TlsFront;
use crate::support::webhooks::*;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";
const CERT_PATH: &str = "/SimpleNotificationService-0123456789abcdef.pem";

struct Sns {
    web: String,
    /// https://127.0.0.1:<port> serving the certificate and the subscribe URL.
    origin: String,
    private_pem: String,
    confirmations: Arc<AtomicUsize>,
}

impl Sns {
    async fn start(db: &TestDb) -> Self {
        let key = sign(json!({"op": "sns-key"}));
        let cert_pem = key["cert_pem"].as_str().unwrap().to_owned();
        let confirmations = Arc::new(AtomicUsize::new(0));
        let hits = confirmations.clone();
        let app = axum::Router::new()
            .route(CERT_PATH, axum::routing::get(move || async move { cert_pem }))
            .route(
                "/confirm",
                axum::routing::get(move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "<ConfirmSubscriptionResponse/>"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let tls = TlsFront::start(plain_port).await;
        exec(
            &db.pool,
            &format!(
                "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
                 INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
                 INSERT INTO postrunner.providers (name, kind, region, sns_topics) VALUES ('ses', 'ses', 'us-east-1', '{{{TOPIC}}}');"
            ),
        )
        .await;
        let web = serve_with(
            &db.pool,
            postrunner::web::WebConfig {
                sns_trusted_hosts: vec![format!("127.0.0.1:{}", tls.port)],
                sns_ca_pem: Some(tls.cert_pem.clone()),
                ..Default::default()
            },
        )
        .await;
        Self {
            web,
            origin: format!("https://127.0.0.1:{}", tls.port),
            private_pem: key["private_pem"].as_str().unwrap().to_owned(),
            confirmations,
        }
    }

    fn envelope(&self, kind: &str, message: &str) -> Value {
        let mut envelope = json!({
            "Type": kind, "MessageId": uuid::Uuid::new_v4().to_string(), "TopicArn": TOPIC,
            "Message": message, "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "SigningCertURL": format!("{}{CERT_PATH}", self.origin),
        });
        if kind == "SubscriptionConfirmation" {
            envelope["Token"] = json!("2336412f37fb687f5d51e6e2425f004a");
            envelope["SubscribeURL"] = json!(format!("{}/confirm?Action=ConfirmSubscription&Token=x", self.origin));
        }
        envelope
    }

    fn signed(&self, envelope: &Value, version: u8) -> String {
        sign(json!({"op": "sns", "private_pem": self.private_pem, "version": version, "envelope": envelope}))["body"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn post(&self, body: String) -> Answer {
        let headers = [("content-type".to_owned(), "text/plain; charset=UTF-8".to_owned())].into();
        post(&format!("{}/webhooks/ses", self.web), &headers, body).await
    }
}

fn bounce(ses_id: &str, tags: Value, recipients: &[&str]) -> String {
    json!({
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-12-01T12:00:00.000Z",
                   "bouncedRecipients": recipients.iter().map(|r| json!({"emailAddress": r, "status": "5.1.1",
                       "diagnosticCode": format!("smtp; 550 5.1.1 <{r}>: user unknown")})).collect::<Vec<_>>()},
        "mail": {"messageId": ses_id, "timestamp": "2026-12-01T11:59:00.000Z", "destination": recipients, "tags": tags}
    })
    .to_string()
}

#[tokio::test]
async fn a_subscription_is_confirmed_for_an_allowed_topic_only() {
    let db = TestDb::new().await;
    let sns = Sns::start(&db).await;
    let answer = sns
        .post(sns.signed(
            &sns.envelope("SubscriptionConfirmation", "You have chosen to subscribe"),
            2,
        ))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(sns.confirmations.load(Ordering::SeqCst), 1);
    // Validly signed by SNS, for somebody else's topic.
    let mut foreign = sns.envelope("SubscriptionConfirmation", "You have chosen to subscribe");
    foreign["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:attacker");
    let answer = sns.post(sns.signed(&foreign, 2)).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(
        sns.confirmations.load(Ordering::SeqCst),
        1,
        "nothing was fetched for it"
    );
}

#[tokio::test]
async fn ses_events_in_both_dialects_and_signature_versions_are_recorded_per_recipient() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let sns = Sns::start(&db).await;
    let jane = sent_message(pool, "ses", "jane@example.org", "ses-1").await;
    let joe = sent_message(pool, "ses", "joe@example.org", "ses-2").await;
    let ann = sent_message(pool, "ses", "ann@example.org", "ses-3").await;

    // Event publishing (eventType, our tag), SignatureVersion 1 (SHA-1).
    let answer = sns
        .post(sns.signed(
            &sns.envelope(
                "Notification",
                &bounce(
                    "ses-1",
                    json!({"postrunner_id": [jane.to_string()]}),
                    &["jane@example.org"],
                ),
            ),
            1,
        ))
        .await;
    assert_eq!((answer.status, &answer.body["stored"]), (200, &json!(1)), "{answer:?}");
    assert_eq!(status_of(pool, jane).await, "bounced");
    assert_eq!(
        suppression(pool, "jane@example.org").await,
        Some(("hard_bounce".into(), true, false))
    );

    // Identity notifications (notificationType, no tags): matched by SES's message id.
    let complaint = json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "joe@example.org"}], "timestamp": "2026-12-01T12:05:00.000Z",
                      "complaintFeedbackType": "abuse"},
        "mail": {"messageId": "ses-2", "timestamp": "2026-12-01T12:00:00.000Z", "destination": ["joe@example.org"]}
    });
    let answer = sns
        .post(sns.signed(&sns.envelope("Notification", &complaint.to_string()), 2))
        .await;
    assert_eq!(
        (answer.status, &answer.body["unmatched"]),
        (200, &json!(0)),
        "{answer:?}"
    );
    assert_eq!(status_of(pool, joe).await, "complained");

    let delivery = json!({
        "eventType": "Delivery",
        "delivery": {"timestamp": "2026-12-01T12:00:02.000Z", "recipients": ["ann@example.org"], "smtpResponse": "250 ok"},
        "mail": {"messageId": "ses-3", "timestamp": "2026-12-01T12:00:00.000Z", "tags": {"postrunner_id": [ann.to_string()]}}
    });
    sns.post(sns.signed(&sns.envelope("Notification", &delivery.to_string()), 2))
        .await;
    assert_eq!(status_of(pool, ann).await, "delivered");

    // One bounce notification for several recipients: an event for each.
    let answer = sns
        .post(sns.signed(
            &sns.envelope(
                "Notification",
                &bounce("ses-9", json!({}), &["x@example.org", "y@example.org"]),
            ),
            2,
        ))
        .await;
    assert_eq!(
        (&answer.body["stored"], &answer.body["unmatched"]),
        (&json!(2), &json!(2)),
        "{answer:?}"
    );

    // SNS's own notice when event publishing is enabled: accepted, nothing stored.
    let notice = sns.envelope(
        "Notification",
        "Successfully validated SNS topic for Amazon SES event publishing.",
    );
    let answer = sns.post(sns.signed(&notice, 2)).await;
    assert_eq!((answer.status, &answer.body["stored"]), (200, &json!(0)), "{answer:?}");
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 5);
}

#[tokio::test]
async fn forged_foreign_stale_and_replayed_sns_messages_change_nothing() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let sns = Sns::start(&db).await;
    let jane = sent_message(pool, "ses", "jane@example.org", "ses-1").await;
    let message = bounce(
        "ses-1",
        json!({"postrunner_id": [jane.to_string()]}),
        &["jane@example.org"],
    );
    let envelope = sns.envelope("Notification", &message);

    let tampered: Value = {
        let mut signed: Value = serde_json::from_str(&sns.signed(&envelope, 2)).unwrap();
        signed["Message"] = json!(message.replace("Permanent", "Transient"));
        signed
    };
    let foreign_topic = {
        let mut e = envelope.clone();
        e["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:attacker");
        sns.signed(&e, 2)
    };
    let certificate_elsewhere = |url: &str| {
        let mut e = envelope.clone();
        e["SigningCertURL"] = json!(url);
        sns.signed(&e, 2)
    };
    let stale = {
        let mut e = envelope.clone();
        e["Timestamp"] = json!((chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339());
        sns.signed(&e, 2)
    };
    let cases = [
        ("tampered message", tampered.to_string(), 401),
        ("unsigned", envelope.to_string(), 401),
        (
            "signature version 3",
            {
                let mut e: Value = serde_json::from_str(&sns.signed(&envelope, 2)).unwrap();
                e["SignatureVersion"] = json!("3");
                e.to_string()
            },
            401,
        ),
        ("another account's topic", foreign_topic, 403),
        (
            "certificate on another host",
            certificate_elsewhere("https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-01.pem"),
            403,
        ),
        (
            "certificate on S3",
            certificate_elsewhere(
                "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-01.pem",
            ),
            403,
        ),
        (
            "certificate in another region",
            certificate_elsewhere("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-01.pem"),
            403,
        ),
        (
            "certificate over http",
            certificate_elsewhere(&format!("{}{CERT_PATH}", sns.origin).replace("https", "http")),
            403,
        ),
        (
            "certificate at another path",
            certificate_elsewhere(&format!("{}/cert.pem", sns.origin)),
            403,
        ),
        ("stale", stale, 403),
        ("not SNS at all", "{\"hello\": 1}".to_owned(), 401),
    ];
    for (what, body, expected) in cases {
        let answer = sns.post(body).await;
        assert_eq!(answer.status, expected, "{what}: {answer:?}");
    }
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 0);
    assert_eq!(status_of(pool, jane).await, "sent");

    let good = sns.signed(&envelope, 2);
    assert_eq!(sns.post(good.clone()).await.status, 200);
    let replay = sns.post(good).await;
    assert_eq!(replay.status, 403, "a message id is honoured once: {replay:?}");
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 1);
}
