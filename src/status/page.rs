//! The `/status` page: the summary as one server-rendered HTML document with inline SVG
//! charts. No JavaScript and no external resources: it works from a file, behind any
//! proxy, and refreshes itself every 30 s. Every chart has a text equivalent (its
//! `<title>`s and the tables beside it) for screen readers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, DurationRound as _, Utc};

use super::{HourSends, Summary};
use crate::html::escape;

/// Okabe and Ito's palette, distinguishable with the common colour-vision deficiencies.
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];
/// The brief's bounce alert threshold, drawn on the bounce chart.
const BOUNCE_ALERT: f64 = 0.10;

/// `12345.0` as `12,345`.
fn count(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The whole page.
pub fn render(summary: &Summary) -> String {
    let mut body = String::new();
    let firing = summary.alerts.len();
    let _ = write!(
        body,
        "<header><h1>postrunner status</h1><p>As of <time datetime=\"{at}\">{shown}</time>; refreshes every 30 s. \
         {alerts}</p></header>",
        at = summary.generated_at.to_rfc3339(),
        shown = summary.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        alerts = if firing == 0 {
            "<strong class=\"ok\">No alerts firing.</strong>".to_owned()
        } else {
            format!(
                "<strong class=\"bad\">{firing} alert{} firing.</strong>",
                if firing == 1 { "" } else { "s" }
            )
        }
    );
    body.push_str(&queue_section(summary));
    body.push_str(&sends_section(summary));
    body.push_str(&providers_section(summary));
    body.push_str(&bounce_section(summary));
    body.push_str(&capacity_section(summary));
    body.push_str(&alerts_section(summary));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><meta http-equiv=\"refresh\" content=\"30\">\
         <title>postrunner status</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n"
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}\
main{max-width:980px;margin:0 auto;padding:16px 20px 40px}h1{margin:8px 0 0;font-size:1.6em}\
h2{font-size:1.15em;margin:28px 0 8px}section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:4px 16px 14px;margin-top:16px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff2}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#116329}.bad{color:#b3261e}\
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:140px}.card b{display:block;font-size:1.5em}\
.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.4em}\
.up{background:#2da44e}.degraded{background:#d4a72c}.down{background:#cf222e}.unknown{background:#8c959f}\
.legend span{margin-right:14px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
svg text{font:11px system-ui,sans-serif;fill:#57606a}";

fn queue_section(summary: &Summary) -> String {
    let q = &summary.queue;
    let state = |name: &str| q.by_state.get(name).copied().unwrap_or(0.0);
    let oldest = q
        .oldest_waiting_seconds
        .map_or("none".to_owned(), |s| format!("{s:.0} s"));
    format!(
        "<section aria-labelledby=\"queue\"><h2 id=\"queue\">Queue</h2><div class=\"cards\">\
         <div class=\"card\">Messages waiting<b>{}</b></div><div class=\"card\">Jobs running<b>{}</b></div>\
         <div class=\"card\">Retrying<b>{}</b></div><div class=\"card\">Oldest waiting<b>{}</b></div>\
         <div class=\"card\">Workers live<b>{}</b></div><div class=\"card\">Last backup<b>{}</b></div></div></section>",
        count(q.email_waiting),
        count(state("running")),
        count(state("retryable")),
        escape(&oldest),
        count(summary.workers.get("worker").copied().unwrap_or(0.0)),
        escape(&last_backup(summary)),
    )
}

/// `verified 03:00 UTC`, `failed 03:00 UTC` or `none`.
fn last_backup(summary: &Summary) -> String {
    let Some(backup) = &summary.last_backup else {
        return "none".to_owned();
    };
    let at = backup["started_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(String::new(), |t| {
            t.with_timezone(&Utc).format(" %m-%d %H:%M UTC").to_string()
        });
    format!("{}{at}", backup["status"].as_str().unwrap_or("?"))
}

/// The 24 hours ending with the current one, oldest first.
fn last_24_hours(now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let this_hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    (0..24).rev().map(|h| this_hour - Duration::hours(h)).collect()
}

fn colour_of(providers: &[String], name: &str) -> &'static str {
    let i = providers.iter().position(|p| p == name).unwrap_or(0);
    COLOURS[i % COLOURS.len()]
}

fn provider_names(summary: &Summary) -> Vec<String> {
    let mut names: BTreeSet<String> = summary.providers.iter().map(|p| p.name.clone()).collect();
    names.extend(summary.sends_per_hour.iter().map(|h| h.provider.clone()));
    names.into_iter().collect()
}

/// Sends per hour per provider over 24 h: a stacked bar chart.
fn sends_section(summary: &Summary) -> String {
    let hours = last_24_hours(summary.generated_at);
    let providers = provider_names(summary);
    let mut by_hour: BTreeMap<DateTime<Utc>, Vec<&HourSends>> = BTreeMap::new();
    for h in &summary.sends_per_hour {
        by_hour.entry(h.hour).or_default().push(h);
    }
    let total = |hour: &DateTime<Utc>| by_hour.get(hour).map_or(0, |v| v.iter().map(|h| h.sent).sum::<i64>());
    let peak = hours.iter().map(total).max().unwrap_or(0).max(1) as f64;
    let sum: i64 = hours.iter().map(total).sum();
    let (width, height, left, bottom, top) = (940.0, 230.0, 56.0, 24.0, 10.0);
    let plot_h = height - bottom - top;
    let slot = (width - left - 8.0) / 24.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"sends-t\" viewBox=\"0 0 {width} {height}\" width=\"100%\">\
         <title id=\"sends-t\">Messages sent per hour over the last 24 hours, by provider: {} in all</title>",
        count(sum as f64)
    );
    for tick in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - tick);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d8dde3\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            width - 8.0,
            left - 6.0,
            y + 4.0,
            count(peak * tick)
        );
    }
    for (i, hour) in hours.iter().enumerate() {
        let x = left + slot * i as f64 + 2.0;
        let mut y = top + plot_h;
        for name in &providers {
            let Some(h) = by_hour.get(hour).and_then(|v| v.iter().find(|h| &h.provider == name)) else {
                continue;
            };
            if h.sent == 0 {
                continue;
            }
            let bar = plot_h * h.sent as f64 / peak;
            y -= bar;
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"{}\">\
                 <title>{} {}: {} sent</title></rect>",
                slot - 4.0,
                colour_of(&providers, name),
                hour.format("%H:00"),
                escape(name),
                count(h.sent as f64)
            );
        }
        if i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + (slot - 4.0) / 2.0,
                height - 6.0,
                hour.format("%H:00")
            );
        }
    }
    svg.push_str("</svg>");
    let legend: String = providers
        .iter()
        .map(|p| {
            format!(
                "<span><i style=\"background:{}\"></i>{}</span>",
                colour_of(&providers, p),
                escape(p)
            )
        })
        .collect();
    format!(
        "<section aria-labelledby=\"sends\"><h2 id=\"sends\">Sends per hour (UTC), last 24 hours</h2>{svg}\
         <p class=\"legend\">{legend}</p></section>"
    )
}

fn providers_section(summary: &Summary) -> String {
    let mut rows = String::new();
    for p in &summary.providers {
        let state = if p.enabled {
            p.state.as_deref().unwrap_or("unknown")
        } else {
            "disabled"
        };
        let class = match state {
            "up" | "degraded" | "down" => state,
            _ => "unknown",
        };
        let _ = write!(
            rows,
            "<tr><td>{name}</td><td><span class=\"dot {class}\" aria-hidden=\"true\"></span>{state}{since}</td>\
             <td class=\"n\">{latency}</td><td class=\"n\">{sent}</td><td class=\"n\">{spend}</td><td class=\"n\">{budget}</td>\
             <td class=\"n\">{forecast}</td></tr>",
            name = escape(&p.name),
            state = escape(state),
            since = p
                .since
                .filter(|_| state != "up")
                .map_or(String::new(), |s| format!(" since {}", s.format("%H:%M UTC"))),
            latency = p.latency_ms.map_or("–".to_owned(), |ms| format!("{ms:.0} ms")),
            sent = count(p.sends_today),
            spend = p.month_spend.map_or("–".to_owned(), |s| format!("${s:.2}")),
            budget = p.month_budget.map_or("none".to_owned(), |b| format!("${b:.2}")),
            forecast = p.month_forecast.map_or("–".to_owned(), |f| format!("${f:.2}")),
        );
    }
    format!(
        "<section aria-labelledby=\"providers\"><h2 id=\"providers\">Providers</h2><table>\
         <thead><tr><th scope=\"col\">Provider</th><th scope=\"col\">Health</th><th scope=\"col\" class=\"n\">Probe latency</th>\
         <th scope=\"col\" class=\"n\">Sent today</th><th scope=\"col\" class=\"n\">Spend this month</th>\
         <th scope=\"col\" class=\"n\">Budget</th><th scope=\"col\" class=\"n\">Month-end forecast</th></tr></thead>\
         <tbody>{rows}</tbody></table></section>"
    )
}

/// Hard bounce and complaint rates over 24 h per provider: horizontal bars with the
/// alert threshold.
fn bounce_section(summary: &Summary) -> String {
    let rated: Vec<_> = summary
        .providers
        .iter()
        .filter(|p| p.bounce_rate_24h.is_some())
        .collect();
    if rated.is_empty() {
        return "<section aria-labelledby=\"bounces\"><h2 id=\"bounces\">Bounce rates, last 24 hours</h2>\
                <p>No sends in the last 24 hours.</p></section>"
            .to_owned();
    }
    let scale = rated
        .iter()
        .filter_map(|p| p.bounce_rate_24h)
        .fold(BOUNCE_ALERT * 1.5, f64::max);
    let (width, row, left) = (940.0, 26.0, 140.0);
    let height = row * rated.len() as f64 + 24.0;
    let plot_w = width - left - 90.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"bounce-t\" viewBox=\"0 0 {width} {height}\" width=\"100%\">\
         <title id=\"bounce-t\">Hard bounce rate per provider over the last 24 hours; the alert fires above 10 %</title>"
    );
    for (i, p) in rated.iter().enumerate() {
        let rate = p.bounce_rate_24h.unwrap_or(0.0);
        let y = row * i as f64 + 4.0;
        let bar = plot_w * rate / scale;
        let fill = if rate > BOUNCE_ALERT { "#cf222e" } else { "#0072B2" };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{name}</text>\
             <rect class=\"bar\" x=\"{left}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{fill}\">\
             <title>{name}: {pct:.2} % hard bounces, {complaints:.3} % complaints</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{pct:.2} %</text>",
            left - 8.0,
            y + 14.0,
            row - 8.0,
            left + bar + 6.0,
            y + 14.0,
            name = escape(&p.name),
            pct = rate * 100.0,
            complaints = p.complaint_rate_24h.unwrap_or(0.0) * 100.0,
        );
    }
    let x = left + plot_w * BOUNCE_ALERT / scale;
    let _ = write!(
        svg,
        "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{:.1}\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>\
         <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">alert 10 %</text></svg>",
        height - 16.0,
        height - 4.0
    );
    format!("<section aria-labelledby=\"bounces\"><h2 id=\"bounces\">Bounce rates, last 24 hours</h2>{svg}</section>")
}

/// Capacity left today per client: the part of each client's daily capacity still
/// unused (green) against the whole (grey).
fn capacity_section(summary: &Summary) -> String {
    if summary.capacity.is_empty() {
        return "<section aria-labelledby=\"capacity\"><h2 id=\"capacity\">Capacity left today</h2>\
                <p>No sender addresses.</p></section>"
            .to_owned();
    }
    let (width, row, left) = (940.0, 26.0, 140.0);
    let height = row * summary.capacity.len() as f64 + 4.0;
    let plot_w = width - left - 170.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"capacity-t\" viewBox=\"0 0 {width} {height}\" width=\"100%\">\
         <title id=\"capacity-t\">Sends left today of each client's daily capacity</title>"
    );
    for (i, c) in summary.capacity.iter().enumerate() {
        let y = row * i as f64 + 4.0;
        let total = c.capacity_today.max(1.0);
        let left_w = plot_w * (c.left_today.max(0.0) / total).min(1.0);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{name}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{plot_w:.1}\" height=\"{h:.1}\" fill=\"#d8dde3\"/>\
             <rect class=\"bar\" x=\"{left}\" y=\"{y:.1}\" width=\"{left_w:.1}\" height=\"{h:.1}\" fill=\"#009E73\">\
             <title>{name}: {left_today} left of {capacity}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{left_today} left of {capacity}</text>",
            left - 8.0,
            y + 14.0,
            left + plot_w + 8.0,
            y + 14.0,
            h = row - 8.0,
            name = escape(&c.client),
            left_today = count(c.left_today),
            capacity = count(c.capacity_today),
        );
    }
    svg.push_str("</svg>");
    format!("<section aria-labelledby=\"capacity\"><h2 id=\"capacity\">Capacity left today</h2>{svg}</section>")
}

fn alerts_section(summary: &Summary) -> String {
    if summary.alerts.is_empty() {
        return "<section aria-labelledby=\"alerts\"><h2 id=\"alerts\">Open alerts</h2><p class=\"ok\">None.</p></section>"
            .to_owned();
    }
    let mut rows = String::new();
    for a in &summary.alerts {
        let _ = write!(
            rows,
            "<tr><td class=\"bad\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.kind),
            escape(&a.subject),
            a.fired_at.format("%Y-%m-%d %H:%M UTC"),
            escape(a.detail.as_deref().unwrap_or(""))
        );
    }
    format!(
        "<section aria-labelledby=\"alerts\"><h2 id=\"alerts\">Open alerts</h2><table><thead><tr>\
         <th scope=\"col\">Alert</th><th scope=\"col\">Subject</th><th scope=\"col\">Since</th><th scope=\"col\">Detail</th>\
         </tr></thead><tbody>{rows}</tbody></table></section>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1234.0), "1,234");
        assert_eq!(count(1234567.0), "1,234,567");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<svg onload=\"x\">&'"),
            "&lt;svg onload=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
