//! Bounce and complaint mail in the layouts real servers send (tests/fixtures/bounces/:
//! Gmail's and Outlook's DSNs, a Postfix delay warning, Yahoo's and qmail's
//! non-standard notices, an ARF complaint, an out-of-office reply) turned into events,
//! each found by its VERP address or the returned message's X-Postrunner-Id.

use postrunner_feedback::bounce_mail::{parse, BounceMail};
use postrunner_feedback::{BounceClass, Event, EventKind};
use uuid::Uuid;

const ID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn events(raw: &[u8]) -> Vec<Event> {
    match parse(raw, chrono::Utc::now()) {
        BounceMail::Report(events) => events,
        BounceMail::NotAReport => panic!("not read as a report"),
    }
}

fn one(name: &str) -> Event {
    let mut all = events(&fixture(name));
    assert_eq!(all.len(), 1, "{name}: {all:?}");
    all.remove(0)
}

fn ours() -> Option<Uuid> {
    Some(Uuid::parse_str(ID).unwrap())
}

#[test]
fn gmails_dsn_is_a_hard_bounce_of_our_message() {
    let e = one("gmail_dsn.eml");
    assert_eq!((e.kind, e.bounce_class), (EventKind::Bounced, Some(BounceClass::Hard)));
    assert_eq!(e.recipient.as_deref(), Some("jane.doe@example.org"));
    assert_eq!(e.our_id, ours());
    let diagnostic = e.diagnostic.unwrap();
    assert!(
        diagnostic.contains("5.1.1") && !diagnostic.contains("jane.doe@"),
        "{diagnostic}"
    );
}

#[test]
fn outlooks_dsn_is_found_by_verp_or_by_its_returned_headers() {
    let e = one("outlook_dsn.eml");
    assert_eq!(
        (e.kind, e.bounce_class, e.our_id),
        (EventKind::Bounced, Some(BounceClass::Hard), ours())
    );
    assert_eq!(e.recipient.as_deref(), Some("joe@contoso.example"));
    // Delivered to the plain bounce address (no VERP): the text/rfc822-headers part names it.
    let plain = String::from_utf8(fixture("outlook_dsn.eml"))
        .unwrap()
        .replace("bounces+6f1c2d3e4a5b4c6d8e7f901a2b3c4d5e@", "bounces@");
    assert_eq!(events(plain.as_bytes())[0].our_id, ours());
}

#[test]
fn a_delay_warning_is_a_deferral() {
    let e = one("postfix_delayed_dsn.eml");
    assert_eq!((e.kind, e.bounce_class), (EventKind::Deferred, None));
    assert_eq!(e.recipient.as_deref(), Some("ann@example.net"));
}

#[test]
fn yahoo_and_qmail_notices_without_a_report_part_are_bounces_too() {
    let yahoo = one("yahoo_failure_notice.eml");
    assert_eq!(
        (yahoo.kind, yahoo.bounce_class, yahoo.our_id),
        (EventKind::Bounced, Some(BounceClass::Hard), ours())
    );
    assert_eq!(yahoo.recipient.as_deref(), Some("bob.smith@yahoo.com"));
    let qmail = one("qmail_bounce.eml");
    assert_eq!(
        (qmail.kind, qmail.bounce_class),
        (EventKind::Bounced, Some(BounceClass::Hard))
    );
    assert_eq!(qmail.recipient.as_deref(), Some("carol@example.com"));
    assert!(qmail.diagnostic.unwrap().contains("#5.1.1"));
}

#[test]
fn an_arf_report_is_a_complaint() {
    let e = one("arf_complaint.eml");
    assert_eq!((e.kind, e.our_id), (EventKind::Complained, ours()));
    assert_eq!(e.recipient.as_deref(), Some("dave@hotmail.example"));
    let not_spam = String::from_utf8(fixture("arf_complaint.eml"))
        .unwrap()
        .replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
    assert!(events(not_spam.as_bytes()).is_empty());
}

#[test]
fn an_auto_reply_or_garbage_is_not_a_report() {
    assert_eq!(
        parse(&fixture("out_of_office.eml"), chrono::Utc::now()),
        BounceMail::NotAReport
    );
    assert_eq!(parse(b"", chrono::Utc::now()), BounceMail::NotAReport);
    assert_eq!(
        parse(b"\x00\xff not mail at all", chrono::Utc::now()),
        BounceMail::NotAReport
    );
}

#[test]
fn the_same_bounce_read_twice_gives_the_same_event_keys() {
    let a = events(&fixture("gmail_dsn.eml"));
    let b = events(&fixture("gmail_dsn.eml"));
    assert_eq!(
        a[0].dedupe_key, b[0].dedupe_key,
        "a mail processed twice is stored once"
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let samples: Vec<Vec<u8>> = [
        "gmail_dsn.eml",
        "outlook_dsn.eml",
        "arf_complaint.eml",
        "qmail_bounce.eml",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    for _ in 0..2000 {
        let mut raw = samples[rng.gen_range(0..samples.len())].clone();
        for _ in 0..rng.gen_range(1..20) {
            let at = rng.gen_range(0..raw.len());
            match rng.gen_range(0..3) {
                0 => raw[at] = rng.gen(),
                1 => {
                    raw.remove(at);
                }
                _ => raw.truncate(at),
            }
            if raw.is_empty() {
                break;
            }
        }
        let _ = parse(&raw, chrono::Utc::now());
    }
}
