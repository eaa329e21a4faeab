//! Logging setup: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`), as
//! human-readable lines or JSON (`POSTRUNNER_LOG_FORMAT=json`).
//!
//! Conventions (see README "Logging"): dotted field names (`job.id`, `provider.name`),
//! units in names (`latency_ms`); never secrets, recipient addresses or bodies.

use tracing_subscriber::{fmt, EnvFilter};

/// Output format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber with `RUST_LOG`, or `default_filter` when it is unset
/// (roles log at `info`; one-shot commands that print their own output at `warn`).
/// Safe to call more than once (later calls are no-ops). Colours only on a terminal: a
/// log collector or a file gets plain lines.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// [`init`], writing to the file at `path` (truncated first, no colours) instead of stderr: for
/// `demo`, whose live view must stay readable.
///
/// # Errors
/// The file cannot be opened.
pub fn init_to_file(format: LogFormat, default_filter: &str, path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file));
    let _ = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
