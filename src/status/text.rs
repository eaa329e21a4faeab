//! `postrunner status` in the terminal: the summary as aligned plain text.

use std::fmt::Write as _;

use super::Summary;

/// The summary as text, one section per subject.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "postrunner status at {}",
        summary.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );

    queue_section(&mut out, summary);
    providers_section(&mut out, summary);
    capacity_section(&mut out, summary);
    alerts_section(&mut out, summary);
    processes_and_backup_section(&mut out, summary);
    out
}

fn queue_section(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nqueue");
    let _ = writeln!(out, "  messages waiting   {}", summary.queue.email_waiting);
    if let Some(age) = summary.queue.oldest_waiting_seconds {
        let _ = writeln!(out, "  oldest waiting     {age:.0} s");
    }
    for (state, jobs) in &summary.queue.by_state {
        let _ = writeln!(out, "  jobs {state:<14}{jobs}");
    }
}

fn providers_section(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nproviders");
    let _ = writeln!(
        out,
        "  {:<16} {:<9} {:>8} {:>11} {:>9} {:>10} {:>10}",
        "name", "state", "latency", "sent today", "bounce", "spend", "budget"
    );
    for p in &summary.providers {
        let state = if p.enabled {
            p.state.as_deref().unwrap_or("-")
        } else {
            "disabled"
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<9} {:>8} {:>11} {:>9} {:>10} {:>10}",
            p.name,
            state,
            p.latency_ms.map_or("-".to_owned(), |ms| format!("{ms:.0} ms")),
            p.sends_today,
            p.bounce_rate_24h
                .map_or("-".to_owned(), |r| format!("{:.2} %", r * 100.0)),
            p.month_spend.map_or("-".to_owned(), |s| format!("${s:.2}")),
            p.month_budget.map_or("-".to_owned(), |b| format!("${b:.2}")),
        );
    }
}

fn capacity_section(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\ncapacity today");
    for c in &summary.capacity {
        let _ = writeln!(
            out,
            "  {:<16} {:>8} left of {:>8}",
            c.client, c.left_today, c.capacity_today
        );
    }
}

fn alerts_section(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nalerts");
    if summary.alerts.is_empty() {
        let _ = writeln!(out, "  none firing");
    }
    for a in &summary.alerts {
        let _ = writeln!(
            out,
            "  FIRING {} {} since {}: {}",
            a.kind,
            a.subject,
            a.fired_at.format("%Y-%m-%d %H:%M UTC"),
            a.detail.as_deref().unwrap_or("")
        );
    }
}

fn processes_and_backup_section(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nprocesses");
    for role in ["worker", "scheduler", "web"] {
        let _ = writeln!(
            out,
            "  {role:<10} {}",
            summary.workers.get(role).copied().unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        out,
        "\nlast backup\n  {}",
        match &summary.last_backup {
            Some(backup) => format!(
                "{} {} (started {}){}",
                backup["key"].as_str().unwrap_or("?"),
                backup["status"].as_str().unwrap_or("?"),
                backup["started_at"].as_str().unwrap_or("?"),
                backup["error"].as_str().map_or(String::new(), |e| format!(": {e}"))
            ),
            None => "none recorded".to_owned(),
        }
    );
}
