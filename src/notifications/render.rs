//! The words of a notification: a one-line summary (an email's subject, the first line
//! everywhere) and the full text, for one change or a digest of several.

use super::Change;

/// A rendered notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub summary: String,
    pub text: String,
}

/// Renders `changes` (one, or a digest of several, oldest first).
pub fn render(changes: &[Change]) -> Rendered {
    match changes {
        [one] => {
            let summary = format!("postrunner: {} {} {}", state_word(one), one.kind, one.subject);
            Rendered {
                text: format!("{summary}\n{}", line(one)),
                summary,
            }
        }
        many => {
            let firing = many.iter().filter(|c| !c.resolved()).count();
            let summary = format!(
                "postrunner: {} alert changes ({} firing, {} resolved)",
                many.len(),
                firing,
                many.len() - firing
            );
            let mut text = summary.clone();
            for change in many {
                text.push_str("\n- ");
                text.push_str(&line(change));
            }
            Rendered { summary, text }
        }
    }
}

fn state_word(change: &Change) -> &'static str {
    if change.resolved() {
        "RESOLVED"
    } else {
        "FIRING"
    }
}

/// `FIRING provider_down sg: <detail> (since 12:00 UTC)` or
/// `RESOLVED provider_down sg after 7m 30s`.
fn line(change: &Change) -> String {
    let head = format!("{} {} {}", state_word(change), change.kind, change.subject);
    match (change.resolved(), change.resolved_at) {
        (true, Some(at)) => format!("{head} after {}", lasted((at - change.fired_at).num_seconds())),
        _ => {
            let since = change.fired_at.format("%Y-%m-%d %H:%M UTC");
            match &change.detail {
                Some(detail) if !detail.is_empty() => format!("{head}: {detail} (since {since})"),
                _ => format!("{head} (since {since})"),
            }
        }
    }
}

fn lasted(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn change(id: i64, transition: &str) -> Change {
        let fired_at = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        Change {
            id,
            transition: transition.to_owned(),
            kind: "provider_down".to_owned(),
            subject: format!("p{id}"),
            detail: Some("refused".to_owned()),
            fired_at,
            resolved_at: (transition == "resolved").then(|| fired_at + chrono::Duration::seconds(450)),
        }
    }

    #[test]
    fn one_change_reads_as_its_state() {
        let fired = render(&[change(1, "fired")]);
        assert_eq!(fired.summary, "postrunner: FIRING provider_down p1");
        assert!(fired
            .text
            .ends_with("FIRING provider_down p1: refused (since 2026-12-05 12:00 UTC)"));
        let resolved = render(&[change(1, "resolved")]);
        assert!(
            resolved.text.ends_with("RESOLVED provider_down p1 after 7m 30s"),
            "{}",
            resolved.text
        );
    }

    #[test]
    fn a_digest_lists_every_change() {
        let digest = render(&[change(1, "fired"), change(2, "fired"), change(3, "resolved")]);
        assert_eq!(digest.summary, "postrunner: 3 alert changes (2 firing, 1 resolved)");
        assert_eq!(digest.text.lines().count(), 4);
    }
}
