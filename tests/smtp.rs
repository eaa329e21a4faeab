//! The SMTP adapter against a real SMTP server: the MIME message it builds, connection
//! reuse, STARTTLS with AUTH, and reply codes classified.

use std::time::Duration;

use postrunner_providers::secret::Secret;
use postrunner_providers::smtp::Smtp;
use postrunner_providers::{OutgoingMessage, Provider, SendError};
use uuid::Uuid;

use crate::support::smtp_server::SmtpServer;

fn message(to: &str) -> OutgoingMessage {
    OutgoingMessage {
        id: Uuid::new_v4(),
        from: "alice@mail.acme.test".into(),
        from_name: Some("Alice Smith".into()),
        to: to.into(),
        subject: "Hello there".into(),
        text_body: Some("Hi Jane".into()),
        html_body: Some("<p>Hi Jane</p>".into()),
        headers: vec![("Reply-To".into(), "owner@acme.test".into())],
        unsubscribe_url: Some("https://u.acme.test/u/abc".into()),
        unsubscribe_mailto: None,
        tag: None,
    }
}

/// An adapter pointed at a local port where nothing listens.
fn nowhere() -> Smtp {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    Smtp::new(
        "smtp",
        &format!("smtp://127.0.0.1:{port}?tls=none"),
        None,
        Duration::from_secs(2),
    )
    .unwrap()
}

fn plain(server: &SmtpServer) -> Smtp {
    let endpoint = format!("smtp://127.0.0.1:{}?tls=none", server.port);
    Smtp::new("smtp", &endpoint, None, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn a_message_is_proper_mime_with_our_headers() {
    let server = SmtpServer::start();
    let m = message("jane@example.org");
    let accepted = plain(&server).send(&m).await.unwrap();
    assert_eq!(accepted.provider_message_id, "4FAKE1D", "the server's queue id");

    let raw = &server.messages()[0];
    for expected in [
        "From: \"Alice Smith\" <alice@mail.acme.test>".to_owned(),
        "To: jane@example.org".to_owned(),
        "Subject: Hello there".to_owned(),
        format!("Message-ID: <{}@mail.acme.test>", m.id),
        format!("X-Postrunner-Id: {}", m.id),
        "List-Unsubscribe: <https://u.acme.test/u/abc>".to_owned(),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click".to_owned(),
        "Reply-To: owner@acme.test".to_owned(),
        "Content-Type: multipart/alternative".to_owned(),
        "Content-Type: text/plain".to_owned(),
        "Content-Type: text/html".to_owned(),
        "Date: ".to_owned(),
    ] {
        assert!(raw.contains(&expected), "missing {expected:?} in:\n{raw}");
    }
}

#[tokio::test]
async fn each_sender_address_reuses_its_own_connection() {
    let server = SmtpServer::start();
    let smtp = plain(&server);
    for _ in 0..5 {
        smtp.send(&message("jane@example.org")).await.unwrap();
    }
    assert_eq!(server.messages().len(), 5);
    let one_address = server.connections();
    let mut other = message("jane@example.org");
    other.from = "bob@mail.acme.test".into();
    smtp.send(&other).await.unwrap();
    assert_eq!(
        server.connections(),
        one_address + 1,
        "another address, another session"
    );
    assert!(
        server.connections() < 5,
        "{} sessions for 5 sends: the pool reuses them",
        server.connections()
    );
}

#[tokio::test]
async fn reply_codes_are_classified() {
    let server = SmtpServer::start();
    let smtp = plain(&server);
    let refused = smtp.send(&message("nobody@example.org")).await;
    assert!(
        matches!(&refused, Err(SendError::RecipientRefused { detail, .. }) if detail.contains("5.1.1")),
        "{refused:?}"
    );
    let busy = smtp.send(&message("busy@example.org")).await;
    assert!(matches!(busy, Err(SendError::Transient { .. })), "{busy:?}");

    // Nothing listens: the provider's trouble, and the message surely not taken.
    let nowhere = nowhere();
    let down = nowhere.send(&message("jane@example.org")).await;
    assert!(
        matches!(
            down,
            Err(SendError::Unavailable {
                may_have_taken: false,
                ..
            })
        ),
        "{down:?}"
    );
}

#[tokio::test]
async fn starttls_and_auth() {
    let server = SmtpServer::start_tls("alice@acme.test", "s3cret");
    let endpoint = format!("smtp://alice%40acme.test@127.0.0.1:{}?verify=false", server.port);
    let good = Smtp::new(
        "smtp",
        &endpoint,
        Some(Secret::new("s3cret".into())),
        Duration::from_secs(5),
    )
    .unwrap();
    good.send(&message("jane@example.org")).await.unwrap();
    assert_eq!(server.messages().len(), 1);

    let bad = Smtp::new(
        "smtp",
        &endpoint,
        Some(Secret::new("wrong".into())),
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = bad.send(&message("jane@example.org")).await;
    assert!(
        matches!(
            refused,
            Err(SendError::Unavailable {
                may_have_taken: false,
                ..
            })
        ),
        "an authentication failure is the provider's trouble: {refused:?}"
    );
    assert!(
        Smtp::new("smtp", &endpoint, None, Duration::from_secs(5)).is_err(),
        "a user needs a password"
    );
}

#[tokio::test]
async fn a_probe_connects_and_says_noop() {
    let server = SmtpServer::start();
    plain(&server).probe().await.unwrap();
    assert!(server.messages().is_empty(), "a probe sends nothing");
    let nowhere = nowhere();
    assert!(matches!(nowhere.probe().await, Err(SendError::Unavailable { .. })));
}

#[tokio::test]
async fn implicit_tls_on_smtps() {
    let server = SmtpServer::start();
    let front = crate::support::smtp_server::TlsFront::start(server.port).await;
    let endpoint = format!("smtps://127.0.0.1:{}?verify=false", front.port);
    let smtps = Smtp::new("smtps", &endpoint, None, Duration::from_secs(5)).unwrap();
    smtps.send(&message("jane@example.org")).await.unwrap();
    assert_eq!(server.messages().len(), 1, "delivered through the TLS front");

    // With certificate verification on, the self-signed certificate is refused: the
    // connection really is TLS, and verified by default.
    let verified = Smtp::new(
        "smtps",
        &format!("smtps://127.0.0.1:{}", front.port),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), verified.send(&message("jane@example.org")))
        .await
        .expect("answered");
    assert!(matches!(refused, Err(SendError::Unavailable { .. })), "{refused:?}");

    // A plaintext client meets a server that never greets it: bounded by the timeout.
    let plain = Smtp::new(
        "smtp",
        &format!("smtp://127.0.0.1:{}?tls=none", front.port),
        None,
        Duration::from_secs(1),
    )
    .unwrap();
    let silent = plain.send(&message("jane@example.org")).await;
    assert!(
        matches!(
            silent,
            Err(SendError::Unavailable {
                may_have_taken: true,
                ..
            })
        ),
        "{silent:?}"
    );
}

#[tokio::test]
async fn with_a_bounce_address_each_message_has_its_own_verp_envelope_sender() {
    let server = SmtpServer::start();
    let smtp = plain(&server).with_bounce_address(Some("bounces@bounce.acme.test".into()));
    let (first, second) = (message("jane@example.org"), message("joe@example.org"));
    smtp.send(&first).await.unwrap();
    smtp.send(&second).await.unwrap();
    assert_eq!(
        server.envelope_senders(),
        [
            format!("bounces+{}@bounce.acme.test", first.id.simple()),
            format!("bounces+{}@bounce.acme.test", second.id.simple())
        ]
    );
    // The From header is still the sender's.
    assert!(server.messages()[0].contains("From: \"Alice Smith\" <alice@mail.acme.test>"));
    // Without one, the envelope sender is the sender address.
    plain(&server).send(&message("ann@example.org")).await.unwrap();
    assert_eq!(server.envelope_senders()[2], "alice@mail.acme.test");
}
