//! SMTP bounces read from a real IMAP mailbox (dovecot): the `read_bounce_mail` task
//! turns DSNs and complaints into events, flags the mail only after they are committed,
//! never loses a message (a reply that is no report stays, flagged) and never stores
//! anything twice (mail read again after a crash, two replicas at once).

use postrunner::kinds::bounce_mail::ReadBounceMail;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::imap_server::{Dovecot, PASSWORD};
use crate::support::smtp_server::TlsFront;
use crate::support::webhooks::{secret_variable, sent_message, status_of};

/// The id the fixtures were written for (hyphenated and as the VERP token).
const FIXTURE_ID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";

/// Fixture `name`, about message `id` instead of the fixtures' own.
fn fixture_for(name: &str, id: Uuid) -> Vec<u8> {
    let raw = std::fs::read_to_string(format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    raw.replace(FIXTURE_ID, &id.to_string())
        .replace(&FIXTURE_ID.replace('-', ""), &id.simple().to_string())
        .into_bytes()
}

/// Client acme and an SMTP provider `smtp1` whose bounce mailbox is `url`.
async fn smtp_provider_reading(pool: &PgPool, url: &str) {
    let variable = secret_variable(PASSWORD);
    exec(
        pool,
        &format!(
            "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false);
             INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd');
             INSERT INTO postrunner.providers (name, kind, endpoint, bounce_address, bounce_mailbox, bounce_mailbox_secret_env)
             VALUES ('smtp1', 'smtp', 'smtp://127.0.0.1:2525', 'bounces@acme.test', '{url}', '{variable}');"
        ),
    )
    .await;
}

/// Three sent messages and their bounce mail in the mailbox: Gmail's DSN (a hard
/// bounce), an ARF complaint, a Postfix delay warning, and an out-of-office reply.
async fn three_sent_and_their_mail(pool: &PgPool, imap: &Dovecot) -> (Uuid, Uuid, Uuid) {
    let bounced = sent_message(pool, "smtp1", "jane.doe@example.org", "<a@acme.test>").await;
    let complained = sent_message(pool, "smtp1", "joe@example.org", "<b@acme.test>").await;
    let delayed = sent_message(pool, "smtp1", "kim@example.org", "<c@acme.test>").await;
    imap.deliver(&fixture_for("gmail_dsn.eml", bounced)).await;
    imap.deliver(&fixture_for("arf_complaint.eml", complained)).await;
    imap.deliver(&fixture_for("postfix_delayed_dsn.eml", delayed)).await;
    imap.deliver(&fixture_for("out_of_office.eml", Uuid::new_v4())).await;
    (bounced, complained, delayed)
}

#[tokio::test]
async fn bounce_mail_becomes_events_and_is_flagged_after_the_commit_never_lost() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let imap = Dovecot::start().await;
    smtp_provider_reading(pool, &imap.url()).await;
    let (bounced, complained, delayed) = three_sent_and_their_mail(pool, &imap).await;

    let reader = ReadBounceMail::new(pool.clone());
    let read = reader.pass().await.unwrap();
    assert_eq!((read.messages, read.reports, read.failed), (4, 3, 0), "{read:?}");
    assert_eq!(read.stored, 3);
    assert_eq!(status_of(pool, bounced).await, "bounced");
    assert_eq!(status_of(pool, complained).await, "complained");
    assert_eq!(status_of(pool, delayed).await, "sent", "a deferral moves nothing");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM postrunner.suppressions WHERE client = 'acme' AND reason IN ('hard_bounce', 'complaint')"
        )
        .await,
        2
    );
    assert_eq!(
        imap.counts().await,
        (4, 4),
        "every message stays in the mailbox, flagged"
    );

    // The next tick finds nothing new.
    let again = reader.pass().await.unwrap();
    assert_eq!((again.messages, again.stored), (0, 0));

    // A crash between the commit and the flags: the mail is read again, nothing is
    // stored twice, and it is flagged this time.
    imap.unflag_all().await;
    let reread = reader.pass().await.unwrap();
    assert_eq!((reread.messages, reread.stored, reread.duplicates), (4, 0, 3));
    assert_eq!(imap.counts().await, (4, 4));
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 3);
}

#[tokio::test]
async fn two_replicas_reading_one_mailbox_at_once_store_each_event_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let imap = Dovecot::start().await;
    smtp_provider_reading(pool, &imap.url()).await;
    three_sent_and_their_mail(pool, &imap).await;

    let (a, b) = (
        ReadBounceMail::new(pool.clone()),
        ReadBounceMail::new(db.another_pool(5)),
    );
    let (first, second) = tokio::join!(a.pass(), b.pass());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.stored + second.stored, 3, "{first:?} {second:?}");
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 3);
    assert_eq!(imap.counts().await, (4, 4));
}

#[tokio::test]
async fn a_mailbox_that_refuses_the_login_loses_nothing() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let imap = Dovecot::start().await;
    smtp_provider_reading(pool, &imap.url()).await;
    three_sent_and_their_mail(pool, &imap).await;
    let wrong = secret_variable("not-the-password");
    exec(
        pool,
        &format!("UPDATE postrunner.providers SET bounce_mailbox_secret_env = '{wrong}'"),
    )
    .await;

    let read = ReadBounceMail::new(pool.clone()).pass().await.unwrap();
    assert_eq!((read.failed, read.messages), (1, 0));
    assert_eq!(imap.counts().await, (4, 0), "the mail waits, unflagged");
    assert_eq!(count(pool, "SELECT count(*) FROM postrunner.events").await, 0);
}

#[tokio::test]
async fn an_imaps_mailbox_is_read_over_tls_with_its_ca() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let imap = Dovecot::start().await;
    let tls = TlsFront::start(imap.port).await;
    let ca = std::env::temp_dir().join(format!("pr-imap-ca-{}.pem", Uuid::new_v4().simple()));
    std::fs::write(&ca, &tls.cert_pem).unwrap();
    // The only IMAPS test: no other test reads this variable.
    std::env::set_var("POSTRUNNER_IMAP_CA_FILE", &ca);
    smtp_provider_reading(pool, &format!("imaps://bounces@localhost:{}", tls.port)).await;
    let (bounced, _, _) = three_sent_and_their_mail(pool, &imap).await;

    let read = ReadBounceMail::new(pool.clone()).pass().await.unwrap();
    assert_eq!((read.messages, read.failed), (4, 0), "{read:?}");
    assert_eq!(status_of(pool, bounced).await, "bounced");
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn bad_mailbox_settings_are_refused_by_the_update_itself() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, endpoint) VALUES ('smtp1', 'smtp', 'smtp://127.0.0.1:2525')",
    )
    .await;
    for bad in [
        "UPDATE postrunner.providers SET bounce_mailbox = 'https://bounces@imap.acme.test', bounce_mailbox_secret_env = 'X'",
        "UPDATE postrunner.providers SET bounce_mailbox = 'imaps://imap.acme.test', bounce_mailbox_secret_env = 'X'",
        "UPDATE postrunner.providers SET bounce_mailbox = 'imaps://b@imap.acme.test'",
        "UPDATE postrunner.providers SET bounce_mailbox = 'imaps://b@imap.acme.test', bounce_mailbox_secret_env = 'lower'",
    ] {
        assert!(sqlx::query(bad).execute(pool).await.is_err(), "{bad}");
    }
}
