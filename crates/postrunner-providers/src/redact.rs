//! Keeping recipients' addresses out of what postrunner writes about a send: provider
//! reply texts quote them, and those texts go to logs and to `last_error`.

use std::sync::LazyLock;

use regex::Regex;

/// Anything shaped like an address: a local part, `@`, a dotted domain. Deliberately
/// loose (it also catches percent-encoded or quoted forms' cores): redacting too much
/// in an error text costs nothing, too little leaks a person's address.
static ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[^\s<>()\[\],;:@\x22']+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+").expect("a valid pattern"));

/// `text` with `recipient` (in any letter case, or percent-encoded) replaced by
/// `<recipient>` and every other address by `<address>`.
pub fn addresses(text: &str, recipient: &str) -> String {
    let encoded = recipient.replace('@', "%40");
    let text = replace_ignoring_case(text, &encoded, "<recipient>");
    ADDRESS
        .replace_all(&text, |found: &regex::Captures<'_>| {
            if found[0].eq_ignore_ascii_case(recipient) {
                "<recipient>"
            } else {
                "<address>"
            }
        })
        .into_owned()
}

/// `text` with every occurrence of `needle`, in any ASCII letter case, replaced by
/// `with`. No regex: this runs for every event's diagnostic, and compiling a pattern
/// per call was most of a webhook batch's CPU (docs/bench/2026-12-01-events.md).
/// ASCII lowercasing keeps byte offsets, so matches in the lowered copy are cut from
/// the original.
fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() || text.len() < needle.len() {
        return text.to_owned();
    }
    let lowered = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(at) = lowered[from..].find(&needle) {
        let start = from + at;
        out.push_str(&text[from..start]);
        out.push_str(with);
        from = start + needle.len();
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::addresses;

    #[test]
    fn the_recipient_and_other_addresses_are_replaced() {
        let text = "550 5.1.1 <Jane.Doe+x@Example.org>: Recipient address rejected; from alice@acme.test";
        assert_eq!(
            addresses(text, "jane.doe+x@example.org"),
            "550 5.1.1 <<recipient>>: Recipient address rejected; from <address>"
        );
    }

    #[test]
    fn a_percent_encoded_recipient_is_replaced() {
        assert_eq!(
            addresses("to=jane%40example.org invalid", "jane@example.org"),
            "to=<recipient> invalid"
        );
    }

    #[test]
    fn a_percent_encoded_recipient_is_replaced_in_any_case_and_every_time() {
        assert_eq!(
            addresses("a=JANE%40Example.ORG b=jane%40example.org é", "jane@example.org"),
            "a=<recipient> b=<recipient> é"
        );
    }

    #[test]
    fn text_without_addresses_is_unchanged() {
        assert_eq!(
            addresses("HTTP 503: Service Unavailable", "a@b.test"),
            "HTTP 503: Service Unavailable"
        );
    }
}
