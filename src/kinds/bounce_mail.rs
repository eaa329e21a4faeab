//! `system.read_bounce_mail` (every 30 s): reads each SMTP provider's bounce mailbox
//! over IMAP (`providers.bounce_mailbox`) into events.
//!
//! Per provider: an advisory lock (a transaction's), so that a slow read and the next tick's never read
//! one mailbox at once; the messages not flagged `$PostrunnerDone`, fetched whole
//! without marking them read; parsed into events (crates/postrunner-feedback/src/bounce_mail.rs) and
//! stored with postrunner.record_events in one transaction; only after that commit
//! are they flagged. A crash in between leaves them unflagged: the next read stores
//! nothing twice (events are unique per provider and dedupe key) and flags them. Mail
//! that is no report (an out-of-office reply) is flagged and left in the mailbox: never
//! lost, never deleted.

use chrono::Utc;
use postrunner_schema::statements;
use sqlx::PgPool;

use postrunner_feedback::bounce_mail::{self, BounceMail};
use postrunner_feedback::imap::{Mailbox, MailboxError, MailboxUrl};
use postrunner_feedback::{store, Verified};
use postrunner_providers::secret::Secret;
use postrunner_queue::handler::{Handler, JobError};
use postrunner_queue::ClaimedJob;

pub const KIND: &str = "system.read_bounce_mail";

/// Messages read per mailbox and pass; the rest wait for the next tick.
const PER_PASS: usize = 500;

/// What one pass did, over every mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailRead {
    /// Messages read (and flagged).
    pub messages: usize,
    /// Of them, bounce or complaint reports.
    pub reports: usize,
    /// Events new to postrunner.
    pub stored: i32,
    /// Events it already had (mail read again after a crash, or by another replica).
    pub duplicates: i32,
    /// Mailboxes another replica was reading at that moment.
    pub busy: usize,
    /// Mailboxes that could not be read (logged; their mail waits).
    pub failed: usize,
}

/// Why one mailbox could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("variable {0} (bounce_mailbox_secret_env) is not set")]
    NoPassword(String),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error("cannot record the events: {0}")]
    Store(#[from] store::StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct ReadBounceMail {
    pool: PgPool,
}

impl ReadBounceMail {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Reads every enabled provider's bounce mailbox once.
    ///
    /// # Errors
    /// Only when the providers cannot be listed; a mailbox that fails is counted in
    /// [`MailRead::failed`] and logged.
    pub async fn pass(&self) -> Result<MailRead, sqlx::Error> {
        let mailboxes: Vec<(String, String, String)> = statements::feedback::bounce_mailboxes()
            .rows()
            .fetch_all(&self.pool)
            .await?;
        let mut total = MailRead::default();
        for (provider, url, secret_env) in mailboxes {
            match self.read_one(&provider, &url, &secret_env).await {
                Ok(Some(read)) => {
                    total.messages += read.messages;
                    total.reports += read.reports;
                    total.stored += read.stored;
                    total.duplicates += read.duplicates;
                }
                Ok(None) => total.busy += 1,
                Err(error) => {
                    total.failed += 1;
                    tracing::warn!(provider, %error, "could not read the bounce mailbox");
                }
            }
        }
        Ok(total)
    }

    /// One mailbox, under its advisory lock; `None` when another replica holds it.
    async fn read_one(&self, provider: &str, url: &str, secret_env: &str) -> Result<Option<MailRead>, ReadError> {
        // A transaction holds the lock for the read and is rolled back after (dropped, if
        // this task is cut off midway): sql/statements/feedback/lock_bounce_mailbox.sql.
        let mut lock = postrunner_schema::begin(&self.pool).await?;
        let locked: bool = statements::feedback::lock_bounce_mailbox(provider)
            .scalar()
            .fetch_one(&mut *lock)
            .await?;
        if !locked {
            return Ok(None);
        }
        let read = self.read_locked(provider, url, secret_env).await;
        let _ = lock.rollback().await;
        read.map(Some)
    }

    async fn read_locked(&self, provider: &str, url: &str, secret_env: &str) -> Result<MailRead, ReadError> {
        let url: MailboxUrl = url.parse()?;
        let password = std::env::var(secret_env).map_err(|_| ReadError::NoPassword(secret_env.to_owned()))?;
        let mut mailbox = Mailbox::open(&url, &Secret::new(password)).await?;
        let uids = mailbox.unprocessed(PER_PASS).await?;
        let mut read = MailRead::default();
        if uids.is_empty() {
            mailbox.close().await;
            return Ok(read);
        }
        let messages = mailbox.fetch(&uids).await?;
        let now = Utc::now();
        let mut events = Vec::new();
        for (_, raw) in &messages {
            if let BounceMail::Report(found) = bounce_mail::parse(raw, now) {
                read.reports += 1;
                events.extend(found);
            }
        }
        let recorded = store::record(&self.pool, provider, &Verified { events, nonce: None }).await?;
        // Committed: now the mail may be flagged.
        let fetched: Vec<u32> = messages.iter().map(|(uid, _)| *uid).collect();
        mailbox.mark_processed(&fetched).await?;
        mailbox.close().await;
        read.messages = fetched.len();
        read.stored = recorded.stored;
        read.duplicates = recorded.duplicates;
        Ok(read)
    }
}

#[async_trait::async_trait]
impl Handler for ReadBounceMail {
    async fn run(&self, _job: &ClaimedJob) -> Result<Option<serde_json::Value>, JobError> {
        let read = self.pass().await.map_err(|e| JobError::Retry(e.to_string()))?;
        if read.messages > 0 {
            tracing::info!(
                mail.messages = read.messages,
                mail.reports = read.reports,
                events.stored = read.stored,
                events.duplicates = read.duplicates,
                "bounce mail read"
            );
        }
        Ok(None)
    }
}
