//! Command-line flags and `POSTRUNNER_*` environment variables, declared once with clap
//! and validated into typed configuration before anything starts.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;
use postrunner_queue::executor::ExecutorConfig;
use postrunner_queue::retry::Backoff;

#[derive(Debug, Parser)]
#[command(
    name = "postrunner",
    version,
    about = "Outreach email delivery on a PostgreSQL job queue"
)]
pub struct Cli {
    /// PostgreSQL URL. `demo` and `bench` find or start a local server when it is unset.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// How `DATABASE_URL` pools sessions: `session` (PostgreSQL itself, or PgBouncer in
    /// session mode) or `transaction` (PgBouncer in transaction mode; docs/operations.md,
    /// "PgBouncer").
    #[arg(long, env = "POSTRUNNER_POOLING", default_value = "session", value_parser = parse_pooling, global = true)]
    pub pooling: postrunner_schema::pooling::Pooling,

    /// PostgreSQL itself, past PgBouncer, for what needs one session throughout: LISTEN
    /// (idle workers poll without it), `migrate` (which refuses to run through PgBouncer
    /// in transaction mode) and backups. Only read with `--pooling transaction`.
    #[arg(long, env = "DATABASE_DIRECT_URL", global = true, hide_env_values = true)]
    pub database_direct_url: Option<String>,

    /// Log output format.
    #[arg(
        long,
        env = "POSTRUNNER_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// How long a statement of postrunner's waits for a lock another transaction holds
    /// before it fails (and is retried); the claims never wait at all.
    #[arg(long, env = "POSTRUNNER_LOCK_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub lock_timeout: Duration,

    /// The longest a statement of postrunner's may run before it fails.
    #[arg(long, env = "POSTRUNNER_STATEMENT_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    pub statement_timeout: Duration,

    /// Serve Prometheus metrics on this address (`/metrics`; the web role also
    /// `/metrics/database`), for the worker, scheduler and web roles.
    #[arg(long, env = "POSTRUNNER_METRICS_BIND", global = true)]
    pub metrics_bind: Option<std::net::SocketAddr>,

    /// How long the web role reuses one read of the database metrics.
    #[arg(long, env = "POSTRUNNER_DATABASE_METRICS_CACHE", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub database_metrics_cache: Duration,

    #[command(subcommand)]
    pub command: Command,
}

fn parse_pooling(s: &str) -> Result<postrunner_schema::pooling::Pooling, String> {
    s.parse()
}

impl Cli {
    /// The session limits of every pool this process opens.
    pub fn session_limits(&self) -> postrunner_schema::SessionLimits {
        postrunner_schema::SessionLimits {
            lock_timeout: self.lock_timeout,
            statement_timeout: self.statement_timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the migrations in migrations/ (idempotent; safe to run from several replicas at once).
    Migrate,
    /// Claim and run jobs: send mail, run periodic tasks. Run as many replicas as you like.
    Worker(WorkerArgs),
    /// Enqueue periodic tasks from postrunner.schedules, each tick once across all replicas.
    Scheduler,
    /// HTTP: provider webhooks, /healthz and /readyz. Run as many replicas as you like.
    Web(WebArgs),
    /// End-to-end demonstration on the embedded default database.
    Demo(DemoArgs),
    /// Benchmarks that print their figures.
    Bench(BenchArgs),
    /// Bulk-load configuration from a CSV file (upsert by key: re-importing is a no-op).
    Import(ImportArgs),
    /// Look up SPF, DKIM, DMARC and MX of every sender domain (report_domains); exits 1 if any fails.
    CheckDomains(CheckDomainsArgs),
    /// GDPR: erase everything held about a person for a client (they stay suppressed, as a hash).
    Erase(PersonArgs),
    /// GDPR: print everything held about a person for a client, as JSON.
    Export(PersonArgs),
    /// The operator's summary: queue, providers, capacity today, open alerts, processes, last backup.
    Status(StatusArgs),
    /// Backups to S3-compatible storage (POSTRUNNER_BACKUP_S3_*): take, list, check, restore.
    Backup(BackupArgs),
    /// Read every provider's own suppression lists (SendGrid, Mailgun, Postmark, SES) into postrunner.suppressions.
    PullSuppressions,
    /// Check the database against every promise (limits, suppressions, erasures, duplicates, the queue); exits 1 on a violation.
    Verify(VerifyArgs),
}

#[derive(Clone, Debug, Args)]
pub struct VerifyArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub what: BackupWhat,
}

#[derive(Clone, Debug, Subcommand)]
pub enum BackupWhat {
    /// Take a backup now, check it by restoring it into a scratch database, apply retention.
    Now,
    /// Every backup, newest first, with its status.
    List,
    /// Check a backup again: download, compare with its manifest, restore into a scratch database.
    Check {
        /// The backup's key (from `backup list`).
        key: String,
    },
    /// Restore a backup into a new, empty database, then re-apply later erasures.
    Restore {
        /// The backup's key (from `backup list`).
        key: String,
        /// The empty database to restore into.
        #[arg(long)]
        into: String,
        /// The database the backup was taken from, if still readable: the erasures and
        /// suppressions made since the backup are copied from it before the erasure
        /// log is applied again.
        #[arg(long)]
        catch_up_from: Option<String>,
        /// Do not read the providers' own suppression lists into the restored database
        /// (they need the providers' secrets in this environment).
        #[arg(long)]
        skip_provider_suppressions: bool,
    },
}

#[derive(Clone, Debug, Args)]
pub struct StatusArgs {
    /// Print the summary as JSON (postrunner.status_summary()) for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Args)]
pub struct CheckDomainsArgs {
    /// The nameserver to ask (`ip:port`); the system's configuration when unset.
    #[arg(long, env = "POSTRUNNER_NAMESERVER")]
    pub nameserver: Option<std::net::SocketAddr>,
}

/// A person, for a client (GDPR erase and export).
#[derive(Clone, Debug, Args)]
pub struct PersonArgs {
    #[arg(long)]
    pub client: String,
    /// Their email address (matched in any letter case).
    #[arg(long)]
    pub address: String,
}

#[derive(Clone, Debug, Args)]
pub struct WebArgs {
    /// Address and port to listen on.
    #[arg(long, env = "POSTRUNNER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Largest request body accepted, in bytes (SendGrid batches reach 768 KB).
    #[arg(long, env = "POSTRUNNER_MAX_BODY", default_value_t = 2 * 1024 * 1024)]
    pub max_body: usize,
    /// Longest a request may take, body included.
    #[arg(long, env = "POSTRUNNER_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How far a webhook's signed timestamp may be from now (SendGrid, Mailgun; Resend's
    /// Svix signatures have their library's five minutes).
    #[arg(long, env = "POSTRUNNER_WEBHOOK_TOLERANCE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub webhook_tolerance: Duration,
    /// Size of this process's connection pool.
    #[arg(long, env = "POSTRUNNER_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// A `host:port` trusted like Amazon's SNS hosts for signing-certificate and
    /// subscription URLs (tests with a local CA; never needed in production).
    #[arg(long, env = "POSTRUNNER_SNS_TRUSTED_HOSTS", value_delimiter = ',')]
    pub sns_trusted_host: Vec<String>,
    /// A PEM root certificate to trust when fetching from those hosts.
    #[arg(long, env = "POSTRUNNER_SNS_CA_FILE")]
    pub sns_ca_file: Option<std::path::PathBuf>,
}

/// The environment variable holding the `/status` page's token.
pub const STATUS_TOKEN_VARIABLE: &str = "POSTRUNNER_STATUS_TOKEN";
/// The environment variable holding the token `/metrics/database` asks for, when set
/// (`Authorization: Bearer`; Prometheus's `authorization` in its scrape config).
pub const METRICS_TOKEN_VARIABLE: &str = "POSTRUNNER_METRICS_TOKEN";

impl WebArgs {
    /// # Errors
    /// The CA file cannot be read, or the unsubscribe key or the status token is too short.
    pub fn web_config(&self) -> std::io::Result<crate::web::WebConfig> {
        let sns_ca_pem = match &self.sns_ca_file {
            Some(path) => Some(std::fs::read_to_string(path)?),
            None => None,
        };
        // Unsubscribe links are served when their key is set (the workers sign with it).
        let unsubscribe = if std::env::var_os(crate::unsubscribe::KEY_VARIABLE).is_some_and(|v| !v.is_empty()) {
            Some(crate::unsubscribe::UnsubscribeKeys::from_env().map_err(std::io::Error::other)?)
        } else {
            None
        };
        // The status page exists when its token is set; a short one is refused.
        let status_token = postrunner_providers::secret::Secret::token_from_env(STATUS_TOKEN_VARIABLE)
            .map_err(std::io::Error::other)?;
        Ok(crate::web::WebConfig {
            max_body: self.max_body,
            request_timeout: self.request_timeout,
            webhook_tolerance: self.webhook_tolerance,
            sns_trusted_hosts: self.sns_trusted_host.clone(),
            sns_ca_pem,
            unsubscribe,
            database_metrics: None,
            status_token,
        })
    }
}

#[derive(Clone, Debug, Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub what: ImportWhat,
    /// A CSV file with a header row naming its columns (see README, "Import").
    pub file: std::path::PathBuf,
    /// Import the valid rows and report the others, instead of importing nothing when
    /// any row is invalid.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportWhat {
    /// postrunner.providers, keyed by name.
    Providers,
    /// postrunner.sender_addresses, keyed by address.
    Addresses,
    /// postrunner.suppressions, keyed by client and address (case-insensitive).
    Suppressions,
}

#[derive(Clone, Debug, Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(long, env = "POSTRUNNER_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots (they wait in this process, leased), so fast
    /// jobs never wait for a claim round trip. 0 claims only for free slots.
    #[arg(long, env = "POSTRUNNER_PREFETCH", default_value_t = 64)]
    pub prefetch: usize,
    /// How long a claimed job stays this worker's without a heartbeat; a killed worker's
    /// jobs are rescued about this long after its last heartbeat.
    #[arg(long, env = "POSTRUNNER_LEASE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Interval of the heartbeat that extends leases (must be well under the lease).
    #[arg(long, env = "POSTRUNNER_HEARTBEAT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Polling fallback when no NOTIFY arrives; also how often due retries are promoted.
    #[arg(long, env = "POSTRUNNER_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// On SIGTERM, how long running jobs may take to finish before they are released.
    #[arg(long, env = "POSTRUNNER_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// An attempt running longer than this fails (and is retried).
    #[arg(long, env = "POSTRUNNER_JOB_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub job_timeout: Duration,
    /// Delays before each retry; the job fails once its max_attempts are used.
    #[arg(long, env = "POSTRUNNER_BACKOFF", default_value = "1m,5m,15m")]
    pub backoff: Backoff,
    /// Size of this process's connection pool.
    #[arg(long, env = "POSTRUNNER_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// Public base URL of `postrunner web`: messages then carry signed RFC 8058
    /// one-click links, `List-Unsubscribe: <{url}/u/<token>>` and
    /// `List-Unsubscribe-Post`, signed with the key in POSTRUNNER_UNSUBSCRIBE_KEY.
    /// Without it, the worker routes only the messages of clients marked `bulk = false`.
    #[arg(long, env = "POSTRUNNER_UNSUBSCRIBE_URL")]
    pub unsubscribe_url: Option<String>,
}

/// Flags that contradict each other.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--concurrency must be at least 1")]
    NoConcurrency,
    #[error(
        "--heartbeat ({heartbeat:?}) must be at most half of --lease ({lease:?}), or leases expire between heartbeats"
    )]
    HeartbeatTooSlow { heartbeat: Duration, lease: Duration },
    #[error("--max-connections must be at least 4 (listen, claim, complete, heartbeat)")]
    TooFewConnections,
}

impl WorkerArgs {
    /// Validates the flags into an executor configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the contradiction.
    pub fn executor_config(&self) -> Result<ExecutorConfig, ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::NoConcurrency);
        }
        if self.heartbeat * 2 > self.lease {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat,
                lease: self.lease,
            });
        }
        if self.max_connections < 4 {
            return Err(ConfigError::TooFewConnections);
        }
        Ok(ExecutorConfig {
            concurrency: self.concurrency,
            prefetch: self.prefetch,
            lease: self.lease,
            heartbeat: self.heartbeat,
            poll_interval: self.poll_interval,
            grace: self.grace,
            job_timeout: self.job_timeout,
            backoff: self.backoff.clone(),
            signs_unsubscribe: self.unsubscribe_url.is_some(),
        })
    }
}

#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Messages the demo enqueues.
    #[arg(long, default_value_t = 3000)]
    pub messages: u32,
    /// Worker executors the demo runs side by side.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// How long the simulated providers take to answer, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub send_ms: u64,
    /// Keep `postrunner web` (webhooks, unsubscribe pages) up this long after the summary.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub linger: Duration,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// The real worker path (claim -> run -> complete) over no-op jobs.
    Queue(BenchQueueArgs),
    /// Routed sends: claim + route + send (log provider) + record, per sender pool size.
    Route(BenchRouteArgs),
    /// End to end through a local HTTP provider simulator, with the worker's memory.
    Send(BenchSendArgs),
    /// Provider webhooks through a `postrunner web` process: signed, verified, committed.
    Events(BenchEventsArgs),
    /// One-click unsubscribe POSTs through a `postrunner web` process: checked, committed.
    Unsubscribe(BenchUnsubscribeArgs),
    /// Scrapes of /metrics/database (uncached, over a busy deployment's tables) and /metrics.
    Metrics(BenchMetricsArgs),
    /// `postrunner verify` over months of history (1M messages by default).
    Verify(BenchVerifyArgs),
    /// Claim latency with few and with very many lanes (recipient time zones, directions).
    Lanes(BenchLanesArgs),
}

#[derive(Clone, Debug, Args)]
pub struct BenchVerifyArgs {
    /// Sent messages in the history (each with its ledger row and an event).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: i64,
    /// Messages still queued (with their jobs).
    #[arg(long, default_value_t = 20_000)]
    pub queued: i64,
    /// People erased (GDPR) since their messages were sent.
    #[arg(long, default_value_t = 200)]
    pub erasures: i64,
    /// Runs of verify.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

#[derive(Clone, Debug, Args)]
pub struct BenchLanesArgs {
    /// Lane counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,100000")]
    pub lanes: Vec<u32>,
    /// Messages waiting over the lanes (at least one per lane).
    #[arg(long, default_value_t = 100_000)]
    pub messages: i64,
    /// Claims timed per lane count.
    #[arg(long, default_value_t = 300)]
    pub claims: usize,
    /// Messages each claim may take (a worker's free slots).
    #[arg(long, default_value_t = 16)]
    pub limit: i64,
}

#[derive(Clone, Debug, Args)]
pub struct BenchMetricsArgs {
    /// Sent messages in the outbox (history).
    #[arg(long, default_value_t = 1_000_000)]
    pub outbox: i64,
    /// Messages still queued (with their jobs).
    #[arg(long, default_value_t = 20_000)]
    pub queued: i64,
    /// Reservations in the ledger, over 60 days.
    #[arg(long, default_value_t = 3_000_000)]
    pub ledger: i64,
    /// Scrapes of the database endpoint (five times as many of the process's).
    #[arg(long, default_value_t = 200)]
    pub scrapes: usize,
}

#[derive(Clone, Debug, Args)]
pub struct BenchUnsubscribeArgs {
    /// POSTs, one per message.
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The web process's connection pool.
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
}

#[derive(Clone, Debug, Args)]
pub struct BenchEventsArgs {
    /// SendGrid requests (each a batch of --batch events).
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Events per SendGrid request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Resend requests (one event each).
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The web process's connection pool.
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
}

#[derive(Clone, Debug, Args)]
pub struct BenchSendArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u32,
    /// The worker's concurrency (as `worker --concurrency`).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The worker's prefetch (as `worker --prefetch`); larger claims route more per
    /// second (routing costs a fixed amount per lane served in a claim).
    #[arg(long, default_value_t = 256)]
    pub prefetch: usize,
    /// Serve the worker's metrics (`--metrics-bind`) and scrape them every second, as
    /// Prometheus would: compare with a run without to see what metrics cost.
    #[arg(long)]
    pub metrics: bool,
}

#[derive(Clone, Debug, Args)]
pub struct BenchRouteArgs {
    /// Messages to route and send, per pool size.
    #[arg(long, default_value_t = 50_000)]
    pub messages: u32,
    /// Sender pool sizes to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1200,100000")]
    pub addresses: Vec<u32>,
    /// Worker executors (each as `postrunner worker`).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Messages in flight per worker (as `worker --concurrency`). Routing costs a fixed
    /// amount per lane served in a claim, so larger claims route more per second.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Messages claimed ahead of free slots (as `worker --prefetch`).
    #[arg(long, default_value_t = 256)]
    pub prefetch: usize,
}

#[derive(Clone, Debug, Args)]
pub struct BenchQueueArgs {
    /// Backlogs to enqueue, ANALYZE (as autovacuum would) and drain, one after the other
    /// (comma-separated): a plan that changes with the statistics shows up as a number.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,200000,1000000")]
    pub jobs: Vec<u32>,
    /// Drains of each backlog; the median is reported (a short drain is noisy).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots (as `worker --prefetch`).
    #[arg(long, default_value_t = 64)]
    pub prefetch: usize,
    /// Samples for the pickup-latency measurement (one job at a time, workers idle).
    #[arg(long, default_value_t = 300)]
    pub pickup_samples: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn heartbeat_slower_than_half_the_lease_is_refused() {
        let cli = Cli::parse_from(["postrunner", "worker", "--lease", "10s", "--heartbeat", "6s"]);
        let Command::Worker(args) = cli.command else {
            panic!("worker")
        };
        assert!(matches!(
            args.executor_config(),
            Err(ConfigError::HeartbeatTooSlow { .. })
        ));
    }
}
