//! A message's visible unsubscribe link: `{{unsubscribe_url}}` in a body becomes the
//! message's own link; a body that does not place it gets the client's footer
//! (`clients.unsubscribe_footer`, which contains the placeholder) instead, so every
//! message can carry a link a reader sees, not only the List-Unsubscribe header.

use super::PLACEHOLDER;
use crate::html::escape;

/// The text body with its link, or with the footer appended.
pub(super) fn text(body: String, url: &str, footer: Option<&str>) -> String {
    match footer {
        Some(footer) if !body.contains(PLACEHOLDER) => {
            format!("{}\n\n{}\n", body.trim_end(), footer.replace(PLACEHOLDER, url))
        }
        _ => body.replace(PLACEHOLDER, url),
    }
}

/// The HTML body with its link (escaped for an attribute or text), or with the footer
/// as a paragraph before `</body>` (or at the end), its text escaped and the link made
/// clickable.
pub(super) fn html(body: String, url: &str, footer: Option<&str>) -> String {
    let escaped_url = escape(url);
    match footer {
        Some(footer) if !body.contains(PLACEHOLDER) => {
            let link = format!("<a href=\"{escaped_url}\">{escaped_url}</a>");
            let paragraph = format!(
                "<p class=\"unsubscribe\">{}</p>",
                escape(footer).replace(PLACEHOLDER, &link).replace('\n', "<br>")
            );
            match body.to_ascii_lowercase().rfind("</body>") {
                Some(at) => format!("{}{paragraph}{}", &body[..at], &body[at..]),
                None => format!("{body}{paragraph}"),
            }
        }
        _ => body.replace(PLACEHOLDER, &escaped_url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://u.test/u/ab.c?x=1&y=2";

    #[test]
    fn a_placed_link_is_kept_where_the_body_puts_it_and_no_footer_is_added() {
        let footer = Some("Stop: {{unsubscribe_url}}");
        assert_eq!(text("Hi {{unsubscribe_url}}".into(), URL, footer), format!("Hi {URL}"));
        assert_eq!(
            html("<a href=\"{{unsubscribe_url}}\">x</a>".into(), URL, footer),
            "<a href=\"https://u.test/u/ab.c?x=1&amp;y=2\">x</a>"
        );
    }

    #[test]
    fn a_body_without_the_placeholder_gets_the_footer() {
        let footer = Some("Not interested? <Unsubscribe> {{unsubscribe_url}}");
        assert_eq!(
            text("Hi Jane,\n".into(), URL, footer),
            format!("Hi Jane,\n\nNot interested? <Unsubscribe> {URL}\n")
        );
        let html = html("<html><body><p>Hi</p></BODY></html>".into(), URL, footer);
        assert_eq!(
            html,
            "<html><body><p>Hi</p><p class=\"unsubscribe\">Not interested? &lt;Unsubscribe&gt; \
             <a href=\"https://u.test/u/ab.c?x=1&amp;y=2\">https://u.test/u/ab.c?x=1&amp;y=2</a></p></BODY></html>"
        );
    }

    #[test]
    fn without_a_footer_a_body_is_left_as_it_is() {
        assert_eq!(text("Hi".into(), URL, None), "Hi");
        assert_eq!(html("<p>Hi</p>".into(), URL, None), "<p>Hi</p>");
    }
}
