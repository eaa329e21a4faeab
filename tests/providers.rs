//! Provider adapters against local fakes of each provider's wire format: request shape
//! and auth, and every outcome class from the provider's own error bodies.

use std::sync::Arc;
use std::time::Duration;

use postrunner_providers::mailgun::Mailgun;
use postrunner_providers::postmark::Postmark;
use postrunner_providers::resend::Resend;
use postrunner_providers::secret::Secret;
use postrunner_providers::sendgrid::SendGrid;
use postrunner_providers::ses::{AwsKeys, Ses};
use postrunner_providers::{http, Directory, OutgoingMessage, Provider, SendError};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::fake_provider::{FakeProvider, Fault, Kind, AWS_KEYS, KEY};

fn message() -> OutgoingMessage {
    OutgoingMessage {
        id: Uuid::new_v4(),
        from: "alice@mail.acme.test".into(),
        from_name: Some("Alice \"A\" Smith".into()),
        to: "jane@example.org".into(),
        subject: "Hello".into(),
        text_body: Some("Hi Jane".into()),
        html_body: Some("<p>Hi Jane</p>".into()),
        headers: vec![("Reply-To".into(), "owner@acme.test".into())],
        unsubscribe_url: Some("https://u.acme.test/u/abc".into()),
        unsubscribe_mailto: None,
        tag: Some("q1-founders".into()),
    }
}

/// An adapter of `kind` pointed at a fresh fake; sends time out after 500 ms.
async fn adapter(kind: Kind, key: &str) -> (FakeProvider, Arc<dyn Provider>) {
    let fake = FakeProvider::start(kind, if kind == Kind::Ses { AWS_KEYS } else { KEY }).await;
    let client = http::client(Duration::from_millis(500));
    let wrong = key != KEY;
    let key = Secret::new(key.to_owned());
    let adapter: Arc<dyn Provider> = match kind {
        Kind::SendGrid => Arc::new(SendGrid::new("sg", &fake.url, key, client)),
        Kind::Mailgun => Arc::new(Mailgun::new(
            "mg",
            &format!("{}/v3/mg.acme.test", fake.url),
            key,
            client,
        )),
        Kind::Postmark => Arc::new(Postmark::new("pm", &fake.url, key, client)),
        Kind::Resend => Arc::new(Resend::new("rs", &fake.url, key, client)),
        Kind::Ses => {
            let keys = if wrong { "AKIDTEST:wrong-secret" } else { AWS_KEYS };
            let keys = AwsKeys::parse(&Secret::new(keys.to_owned())).unwrap();
            Arc::new(Ses::new("ses", &fake.url, "us-east-1", keys, client))
        }
    };
    (fake, adapter)
}

/// The class of an outcome, for compact assertions.
fn class(result: &Result<postrunner_providers::Accepted, SendError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(SendError::RecipientRefused { .. }) => "recipient_refused",
        Err(SendError::Rejected { .. }) => "rejected",
        Err(SendError::Transient { .. }) => "transient",
        Err(SendError::Unavailable {
            may_have_taken: true, ..
        }) => "unavailable_maybe_taken",
        Err(SendError::Unavailable { .. }) => "unavailable",
    }
}

#[tokio::test]
async fn sendgrid_request_carries_auth_content_headers_and_our_id() {
    let (fake, sendgrid) = adapter(Kind::SendGrid, KEY).await;
    let m = message();
    let accepted = sendgrid.send(&m).await.unwrap();
    assert!(accepted.provider_message_id.starts_with("SG"));

    let request = &fake.received()[0];
    assert_eq!(request.path, "/v3/mail/send");
    assert_eq!(request.header("authorization"), Some("Bearer test-key-123"));
    let body = request.json.as_ref().unwrap();
    assert_eq!(body["personalizations"][0]["to"][0]["email"], "jane@example.org");
    assert_eq!(
        body["personalizations"][0]["custom_args"]["postrunner_id"],
        m.id.to_string()
    );
    assert_eq!(
        body["from"],
        json!({"email": "alice@mail.acme.test", "name": "Alice \"A\" Smith"})
    );
    assert_eq!(body["content"][0]["type"], "text/plain", "text before html");
    assert_eq!(body["content"][1]["type"], "text/html");
    assert_eq!(body["headers"]["Message-ID"], format!("<{}@mail.acme.test>", m.id));
    assert_eq!(body["headers"]["X-Postrunner-Id"], m.id.to_string());
    assert_eq!(body["headers"]["List-Unsubscribe"], "<https://u.acme.test/u/abc>");
    assert_eq!(body["headers"]["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    assert_eq!(body["headers"]["Reply-To"], "owner@acme.test");
    assert_eq!(body["categories"], json!(["q1-founders"]));
}

#[tokio::test]
async fn postmark_request_uses_the_server_token_and_metadata() {
    let (fake, postmark) = adapter(Kind::Postmark, KEY).await;
    let m = message();
    postmark.send(&m).await.unwrap();
    let request = &fake.received()[0];
    assert_eq!(request.path, "/email");
    assert_eq!(request.header("x-postmark-server-token"), Some(KEY));
    let body = request.json.as_ref().unwrap();
    assert_eq!(body["From"], "\"Alice \\\"A\\\" Smith\" <alice@mail.acme.test>");
    assert_eq!(body["Metadata"]["postrunner_id"], m.id.to_string());
    assert_eq!(
        (body["TextBody"].as_str(), body["HtmlBody"].as_str()),
        (Some("Hi Jane"), Some("<p>Hi Jane</p>"))
    );
    let headers: Vec<&str> = body["Headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Name"].as_str().unwrap())
        .collect();
    assert!(
        headers.contains(&"List-Unsubscribe-Post") && headers.contains(&"Message-ID"),
        "{headers:?}"
    );
    assert_eq!(body["Tag"], "q1-founders");
}

#[tokio::test]
async fn resend_sends_one_idempotency_key_per_message() {
    let (fake, resend) = adapter(Kind::Resend, KEY).await;
    let m = message();
    let first = resend.send(&m).await.unwrap();
    // A retry of the same message (after a timeout, say) is the same request: Resend
    // answers with the original id instead of sending again.
    let again = resend.send(&m).await.unwrap();
    assert_eq!(first.provider_message_id, again.provider_message_id);
    let requests = fake.received();
    assert_eq!(
        requests[0].header("idempotency-key"),
        Some(format!("postrunner/{}", m.id).as_str())
    );
    assert_eq!(requests[0].header("authorization"), Some("Bearer test-key-123"));
    let body = requests[0].json.as_ref().unwrap();
    assert_eq!(
        body["tags"],
        json!([{"name": "postrunner_id", "value": m.id.to_string()}])
    );
    assert_eq!(body["to"], json!(["jane@example.org"]));
}

#[tokio::test]
async fn mailgun_posts_a_form_with_basic_auth_to_the_sending_domain() {
    let (fake, mailgun) = adapter(Kind::Mailgun, KEY).await;
    let m = message();
    let accepted = mailgun.send(&m).await.unwrap();
    assert!(
        accepted.provider_message_id.ends_with("@mg.acme.test"),
        "no angle brackets: {}",
        accepted.provider_message_id
    );
    let request = &fake.received()[0];
    assert_eq!(request.path, "/v3/mg.acme.test/messages");
    assert_eq!(request.field("v:postrunner_id"), [m.id.to_string().as_str()]);
    assert_eq!(request.field("h:List-Unsubscribe-Post"), ["List-Unsubscribe=One-Click"]);
    assert_eq!(request.field("h:Reply-To"), ["owner@acme.test"]);
    assert_eq!(request.field("o:tag"), ["q1-founders"]);
    assert_eq!(request.field("to"), ["jane@example.org"]);
}

#[tokio::test]
async fn ses_request_is_signed_with_sigv4_and_tags_our_id() {
    let (fake, ses) = adapter(Kind::Ses, KEY).await;
    let m = message();
    let accepted = ses.send(&m).await.unwrap();
    assert!(accepted.provider_message_id.starts_with("0100"));
    let request = &fake.received()[0];
    assert_eq!(request.path, "/v2/email/outbound-emails");
    let authorization = request.header("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && authorization.contains("/us-east-1/ses/aws4_request"),
        "{authorization}"
    );
    let body = request.json.as_ref().unwrap();
    assert_eq!(
        body["EmailTags"],
        json!([{"Name": "postrunner_id", "Value": m.id.to_string()}])
    );
    assert_eq!(body["Destination"]["ToAddresses"], json!(["jane@example.org"]));
    assert_eq!(body["Content"]["Simple"]["Body"]["Html"]["Data"], "<p>Hi Jane</p>");
    let headers: Vec<&str> = body["Content"]["Simple"]["Headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Name"].as_str().unwrap())
        .collect();
    assert!(
        headers.contains(&"List-Unsubscribe") && headers.contains(&"X-Postrunner-Id"),
        "{headers:?}"
    );

    // SES errors name their type in x-amzn-ErrorType.
    fake.fail_next([
        Fault::Reply(
            400,
            r#"{"message":"Email address is not verified."}"#.into(),
            vec![("x-amzn-ErrorType", "MessageRejected:http://internal.amazon.com/".into())],
        ),
        Fault::Reply(
            400,
            r#"{"message":"Sending paused for this account."}"#.into(),
            vec![("x-amzn-ErrorType", "SendingPausedException".into())],
        ),
        Fault::Reply(
            429,
            r#"{"message":"Maximum sending rate exceeded."}"#.into(),
            vec![("x-amzn-ErrorType", "TooManyRequestsException".into())],
        ),
    ]);
    assert_eq!(class(&ses.send(&m).await), "rejected");
    assert_eq!(class(&ses.send(&m).await), "unavailable");
    assert_eq!(class(&ses.send(&m).await), "unavailable");
}

#[tokio::test]
async fn a_wrong_key_is_the_providers_trouble_for_every_provider() {
    for kind in [Kind::SendGrid, Kind::Mailgun, Kind::Postmark, Kind::Resend, Kind::Ses] {
        let (_fake, provider) = adapter(kind, "wrong-key").await;
        let result = provider.send(&message()).await;
        assert_eq!(class(&result), "unavailable", "{kind:?}: {result:?}");
    }
}

#[tokio::test]
async fn faults_are_classified_the_same_way_for_every_provider() {
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Reply(503, "Service Unavailable".into(), vec![]), "unavailable"),
        (Fault::Reply(500, "{}".into(), vec![]), "unavailable"),
        // A gateway's: the provider behind it may have taken the message.
        (
            Fault::Reply(502, "Bad Gateway".into(), vec![]),
            "unavailable_maybe_taken",
        ),
        (
            Fault::Reply(504, "Gateway Timeout".into(), vec![]),
            "unavailable_maybe_taken",
        ),
        (Fault::Slow(Duration::from_secs(2)), "unavailable_maybe_taken"),
        (Fault::Drop, "unavailable_maybe_taken"),
    ];
    for kind in [Kind::SendGrid, Kind::Mailgun, Kind::Postmark, Kind::Resend, Kind::Ses] {
        for (fault, expected) in &cases {
            let (fake, provider) = adapter(kind, KEY).await;
            fake.fail_next([fault.clone()]);
            let result = provider.send(&message()).await;
            assert_eq!(class(&result), *expected, "{kind:?} with {fault:?}: {result:?}");
        }
    }
}

#[tokio::test]
async fn a_429_carries_the_providers_retry_hint() {
    let (fake, sendgrid) = adapter(Kind::SendGrid, KEY).await;
    let reset = chrono::Utc::now().timestamp() + 30;
    fake.fail_next([Fault::Reply(
        429,
        r#"{"errors":[{"field":null,"message":"too many requests"}]}"#.into(),
        vec![
            ("X-RateLimit-Reset", reset.to_string()),
            ("X-RateLimit-Remaining", "0".into()),
        ],
    )]);
    let Err(SendError::Unavailable {
        retry_after, detail, ..
    }) = sendgrid.send(&message()).await
    else {
        panic!("a 429 is the provider's trouble")
    };
    let wait = retry_after.expect("X-RateLimit-Reset read");
    assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
    assert!(detail.contains("too many requests"), "{detail}");

    let (fake, resend) = adapter(Kind::Resend, KEY).await;
    fake.fail_next([Fault::Reply(
        429,
        r#"{"statusCode":429,"name":"rate_limit_exceeded","message":"Too many requests"}"#.into(),
        vec![("retry-after", "7".into())],
    )]);
    let Err(SendError::Unavailable { retry_after, .. }) = resend.send(&message()).await else {
        panic!("a 429 is the provider's trouble")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn refusals_from_real_error_bodies() {
    // Postmark: the 422 ErrorCode decides.
    let (fake, postmark) = adapter(Kind::Postmark, KEY).await;
    fake.fail_next([
        Fault::Reply(
            422,
            json!({"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."})
                .to_string(),
            vec![],
        ),
        Fault::Reply(
            422,
            json!({"ErrorCode": 300, "Message": "Invalid email request"}).to_string(),
            vec![],
        ),
        Fault::Reply(
            422,
            json!({"ErrorCode": 405, "Message": "Not allowed to send: out of credits"}).to_string(),
            vec![],
        ),
    ]);
    let classes: Vec<&str> = vec![
        class(&postmark.send(&message()).await),
        class(&postmark.send(&message()).await),
        class(&postmark.send(&message()).await),
    ];
    assert_eq!(classes, ["recipient_refused", "rejected", "unavailable"]);

    // SendGrid: a 400 names the field.
    let (fake, sendgrid) = adapter(Kind::SendGrid, KEY).await;
    fake.fail_next([Fault::Reply(
        400,
        r#"{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email","help":null}]}"#.into(),
        vec![],
    )]);
    let Err(SendError::Rejected { detail, .. }) = sendgrid.send(&message()).await else {
        panic!("a 400 rejects the message")
    };
    assert!(
        detail.contains("personalizations.0.to.0.email: Does not contain a valid address."),
        "{detail}"
    );

    // Mailgun: 420 is the domain's sending limit; a 400 names the parameter.
    let (fake, mailgun) = adapter(Kind::Mailgun, KEY).await;
    fake.fail_next([
        Fault::Reply(
            420,
            r#"{"message":"Domain mg.acme.test is not allowed to send: recipient limit exceeded"}"#.into(),
            vec![],
        ),
        Fault::Reply(
            400,
            r#"{"message":"'to' parameter is not a valid address. please check documentation"}"#.into(),
            vec![],
        ),
    ]);
    assert_eq!(class(&mailgun.send(&message()).await), "unavailable");
    assert_eq!(class(&mailgun.send(&message()).await), "rejected");

    // Resend: quota 429s are the provider's trouble; a concurrent request with the same
    // idempotency key, or one with a changed body, says Resend already has the message:
    // it may be sent, so it is uncertain, never rejected.
    let (fake, resend) = adapter(Kind::Resend, KEY).await;
    fake.fail_next([
        Fault::Reply(
            429,
            json!({"statusCode": 429, "name": "daily_quota_exceeded", "message": "quota"}).to_string(),
            vec![],
        ),
        Fault::Reply(
            409,
            json!({"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"}).to_string(),
            vec![],
        ),
        Fault::Reply(
            422,
            json!({"statusCode": 422, "name": "invalid_parameter", "message": "Invalid `to` field."}).to_string(),
            vec![],
        ),
    ]);
    assert_eq!(class(&resend.send(&message()).await), "unavailable");
    assert_eq!(class(&resend.send(&message()).await), "unavailable_maybe_taken");
    assert_eq!(class(&resend.send(&message()).await), "rejected");
    // The same key with a changed body (another sender address on a later attempt).
    let first = message();
    resend.send(&first).await.unwrap();
    let changed = OutgoingMessage {
        from: "other@acme.test".into(),
        ..first
    };
    assert_eq!(class(&resend.send(&changed).await), "unavailable_maybe_taken");
}

#[tokio::test]
async fn the_fakes_check_what_the_providers_check() {
    // A message without a body is refused by each fake as the provider would.
    let mut m = message();
    m.text_body = None;
    m.html_body = None;
    for kind in [Kind::SendGrid, Kind::Mailgun, Kind::Postmark] {
        let (_fake, provider) = adapter(kind, KEY).await;
        let result = provider.send(&m).await;
        assert_eq!(class(&result), "rejected", "{kind:?}: {result:?}");
    }
    let (fake, _) = adapter(Kind::Resend, KEY).await;
    let reply: Value = crate::support::http()
        .post(format!("{}/emails", fake.url))
        .bearer_auth(KEY)
        .json(&json!({"to": ["a@b.test"], "subject": "x"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["name"], "missing_required_field");
}

#[tokio::test]
async fn the_directory_builds_each_kind_from_its_row_and_secret_variable() {
    let db = crate::support::db::TestDb::new().await;
    let fleet = crate::support::fake_provider::Fleet::start().await;
    let mut rows = fleet.rows.clone();
    let smtp = crate::support::smtp_server::SmtpServer::start();
    rows.push(format!(
        "('mx', 'smtp', 'smtp://127.0.0.1:{}?tls=none', NULL, NULL)",
        smtp.port
    ));
    rows.push("('nokey', 'sendgrid', 'http://127.0.0.1:9', 'PR_TEST_UNSET_VARIABLE', NULL)".to_owned());
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.providers (name, kind, endpoint, secret_env, region) VALUES {}",
        rows.join(", ")
    ))
    .execute(&db.pool)
    .await
    .unwrap();

    let directory = Directory::new(db.pool.clone());
    for name in ["sg", "mg", "pm", "rs", "ses", "mx"] {
        let adapter = directory.get(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        adapter.send(&message()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        adapter.probe().await.unwrap_or_else(|e| panic!("{name} probe: {e}"));
    }
    assert_eq!(smtp.messages().len(), 1);
    let missing = directory.get("nokey").await.err().expect("an unset secret variable");
    assert!(
        matches!(&missing, SendError::Unavailable { detail, .. } if detail.contains("PR_TEST_UNSET_VARIABLE")),
        "{missing}"
    );
    assert!(!missing.to_string().contains(KEY));
}
