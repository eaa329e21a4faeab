//! Bounce and complaint mail: what SMTP providers send back instead of webhooks. A
//! message arrives in the provider's bounce mailbox and becomes the same [`Event`]s a
//! webhook would give:
//!
//! - a delivery status notification (RFC 3464: `multipart/report;
//!   report-type=delivery-status`): one event per recipient block, `Action: failed` with
//!   a 5.x.x status a hard bounce, 4.x.x a soft one, `delayed` a deferral;
//! - a complaint (RFC 5965 ARF: `report-type=feedback-report`): `Feedback-Type` other
//!   than `not-spam`;
//! - the common non-standard bounces (qmail, older Exchange, some webmail): a subject
//!   that says the mail was not delivered and an SMTP reply or enhanced status code in
//!   the text.
//!
//! The message is found by the VERP envelope sender the bounce was addressed to
//! (`local+<id>@domain`, [`postrunner_providers::smtp::verp_address`]), else by the
//! `X-Postrunner-Id` header of the returned message; the recipient is the report's own
//! when it names one (else the message's, filled in by record_events). Parsing is
//! mail-parser's; the report fields are RFC 822-style blocks read here.

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders as _, PartType};
use uuid::Uuid;

use super::{BounceClass, Event, EventKind};

/// What a mailbox message is.
#[derive(Debug, PartialEq)]
pub enum BounceMail {
    /// A report about a message of ours: its events (possibly none, e.g. a DSN that
    /// only says "delivered").
    Report(Vec<Event>),
    /// Not a bounce or complaint (an auto-reply, spam): left in the mailbox, flagged.
    NotAReport,
}

/// Reads one raw message of a bounce mailbox.
pub fn parse(raw: &[u8], now: DateTime<Utc>) -> BounceMail {
    let Some(message) = MessageParser::default().parse(raw) else {
        return BounceMail::NotAReport;
    };
    let our_id = verp_id(&message).or_else(|| returned_id(&message, raw));
    let origin = Origin {
        key_base: message
            .message_id()
            .map(str::to_owned)
            .unwrap_or_else(|| super::sha256_hex(raw)),
        at: message
            .date()
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
            .unwrap_or(now),
        our_id: our_id.map(|id| id.to_string()),
    };
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match report_type.as_deref() {
        Some("delivery-status") => delivery_status(&message, &origin),
        Some("feedback-report") => feedback_report(&message, &origin),
        _ => non_standard(&message, our_id).map_or(BounceMail::NotAReport, |(recipient, class, diagnostic)| {
            let detail = serde_json::json!({"report": "non-standard", "subject": message.subject()});
            BounceMail::Report(vec![origin.event(
                recipient.as_deref(),
                EventKind::Bounced,
                Some(class),
                Some(&diagnostic),
                detail,
            )])
        }),
    }
}

/// What every event of one report mail shares.
struct Origin {
    /// The report's Message-ID (or its hash): each event's key is this and its recipient.
    key_base: String,
    at: DateTime<Utc>,
    /// postrunner's id of the message the report is about, when found.
    our_id: Option<String>,
}

impl Origin {
    fn event(
        &self,
        recipient: Option<&str>,
        kind: EventKind,
        class: Option<BounceClass>,
        diagnostic: Option<&str>,
        detail: serde_json::Value,
    ) -> Event {
        let key = format!("mail:{}:{}", self.key_base, recipient.unwrap_or("").to_lowercase());
        let mut event = Event::new(key, kind, self.at, detail)
            .recipient(recipient)
            .our_id(self.our_id.as_deref());
        if let Some(class) = class {
            event = event.bounce(class);
        }
        event.diagnostic(diagnostic)
    }
}

/// A DSN (RFC 3464): one event per recipient block that failed or was delayed.
fn delivery_status(message: &mail_parser::Message<'_>, origin: &Origin) -> BounceMail {
    let Some(status) = part_text(message, &["delivery-status", "global-delivery-status"]) else {
        return BounceMail::NotAReport;
    };
    let events = field_blocks(&status)
        .iter()
        .skip(1) // the per-message block
        .filter_map(|block| {
            let recipient = field(block, "final-recipient").or_else(|| field(block, "original-recipient"));
            let recipient = recipient.map(|r| address_of(&r));
            let action = field(block, "action")?.to_ascii_lowercase();
            let code = field(block, "status").unwrap_or_default();
            let diagnostic = field(block, "diagnostic-code");
            let (kind, class) = match action.as_str() {
                "failed" if code.starts_with('4') => (EventKind::Bounced, Some(BounceClass::Soft)),
                "failed" => (EventKind::Bounced, Some(BounceClass::Hard)),
                "delayed" => (EventKind::Deferred, None),
                _ => return None,
            };
            let detail = serde_json::json!({"report": "delivery-status", "action": action, "status": code});
            Some(origin.event(
                recipient.as_deref(),
                kind,
                class,
                diagnostic.as_deref().or(Some(code.as_str())),
                detail,
            ))
        })
        .collect();
    BounceMail::Report(events)
}

/// An ARF report (RFC 5965): a complaint, unless it says not-spam.
fn feedback_report(message: &mail_parser::Message<'_>, origin: &Origin) -> BounceMail {
    let Some(report) = part_text(message, &["feedback-report"]) else {
        return BounceMail::NotAReport;
    };
    let blocks = field_blocks(&report);
    let Some(block) = blocks.first() else {
        return BounceMail::NotAReport;
    };
    let feedback = field(block, "feedback-type")
        .unwrap_or_else(|| "abuse".into())
        .to_ascii_lowercase();
    if feedback == "not-spam" {
        return BounceMail::Report(vec![]);
    }
    let recipient = field(block, "original-rcpt-to").map(|r| address_of(&r));
    let detail = serde_json::json!({"report": "feedback-report", "feedback_type": feedback});
    BounceMail::Report(vec![origin.event(
        recipient.as_deref(),
        EventKind::Complained,
        None,
        Some(&feedback),
        detail,
    )])
}

/// The message id in a VERP address this mail was delivered to.
fn verp_id(message: &mail_parser::Message<'_>) -> Option<Uuid> {
    static VERP: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\+([0-9a-fA-F]{32})@").expect("a valid pattern"));
    ["Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"]
        .iter()
        .flat_map(|name| message.header_values(*name))
        .filter_map(|value| match value {
            mail_parser::HeaderValue::Text(text) => Some(text.to_string()),
            mail_parser::HeaderValue::Address(address) => Some(
                address
                    .iter()
                    .filter_map(|a| a.address.as_deref())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .find_map(|text| VERP.captures(&text).and_then(|c| Uuid::parse_str(&c[1]).ok()))
}

/// The X-Postrunner-Id of the returned message (a message/rfc822 part, text/rfc822-headers,
/// or quoted in the body).
fn returned_id(message: &mail_parser::Message<'_>, raw: &[u8]) -> Option<Uuid> {
    for part in &message.parts {
        if let PartType::Message(inner) = &part.body {
            if let Some(id) = inner
                .header_raw("X-Postrunner-Id")
                .and_then(|v| Uuid::parse_str(v.trim()).ok())
            {
                return Some(id);
            }
        }
    }
    static QUOTED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?im)^X-Postrunner-Id:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
            .expect("a valid pattern")
    });
    let text = String::from_utf8_lossy(raw);
    QUOTED.captures(&text).and_then(|c| Uuid::parse_str(&c[1]).ok())
}

/// The text of the first part whose type is message/<one of subtypes>.
fn part_text(message: &mail_parser::Message<'_>, subtypes: &[&str]) -> Option<String> {
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let subtype = ct.subtype()?;
        (ct.ctype().eq_ignore_ascii_case("message") && subtypes.iter().any(|s| subtype.eq_ignore_ascii_case(s)))
            .then(|| String::from_utf8_lossy(part.contents()).into_owned())
    })
}

/// RFC 822-style field blocks separated by blank lines, with folded lines joined.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field(block: &[(String, String)], name: &str) -> Option<String> {
    block.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// `rfc822; jane@example.org` -> `jane@example.org`.
fn address_of(value: &str) -> String {
    let value = value.split_once(';').map_or(value, |(_, address)| address);
    value.trim().trim_matches(|c| c == '<' || c == '>').to_owned()
}

/// A bounce without a report part: the subject says the mail was not delivered and the
/// text carries a reply code. Returns the recipient (when the text names one), the
/// class and the words around the code.
fn non_standard(
    message: &mail_parser::Message<'_>,
    our_id: Option<Uuid>,
) -> Option<(Option<String>, BounceClass, String)> {
    static SUBJECT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)undeliver|returned mail|delivery (status notification|failure|has failed|problem)|failure notice|mail delivery failed|could not be delivered",
        )
        .expect("a valid pattern")
    });
    static CODE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?:\b([45])\d\d[ -]|#)([45])\.\d{1,3}\.\d{1,3}\b|\b([45])\d\d[:\s]")
            .expect("a valid pattern")
    });
    static ADDRESS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"<?([A-Za-z0-9._%+\-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>?").expect("a valid pattern")
    });
    let subject = message.subject().unwrap_or("");
    if !SUBJECT.is_match(subject) || our_id.is_none() {
        return None;
    }
    let body: String = (0..message.text_body.len())
        .filter_map(|i| message.body_text(i))
        .collect::<Vec<_>>()
        .join("\n");
    let found = CODE.captures(&body)?;
    let class_digit = found
        .get(2)
        .or(found.get(1))
        .or(found.get(3))
        .map_or("5", |m| m.as_str());
    let class = if class_digit == "4" {
        BounceClass::Soft
    } else {
        BounceClass::Hard
    };
    let line = body
        .lines()
        .find(|l| l.contains(found.get(0).map_or("", |m| m.as_str()).trim()))
        .unwrap_or("")
        .trim()
        .chars()
        .take(300)
        .collect::<String>();
    let recipient = ADDRESS.captures_iter(&body).map(|c| c[1].to_owned()).find(|a| {
        !a.to_ascii_lowercase().starts_with("mailer-daemon")
            && !a.to_ascii_lowercase().starts_with("postmaster")
            && !a.contains('+')
    });
    Some((recipient, class, line))
}
