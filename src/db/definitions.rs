//! The current definitions of postrunner's functions, triggers and views: one file per
//! subject under `sql/`, applied by `postrunner migrate` after the migrations, in the
//! order of [`DEFINITIONS`], in one transaction, under the migration lock.
//!
//! Migrations (`migrations/`) hold the schema and never change once merged; a function's
//! body lives in exactly one file here, so an edit to it is an edit of that file with its
//! own history. Every file is idempotent (`CREATE OR REPLACE`); when any file changed
//! since the last run (checksums in `postrunner.sql_definitions`), all of them are
//! applied again in order, so a file may rely on the ones before it. The first,
//! `roles.sql`, creates the roles the policies and grants name; the last,
//! `security/grants.sql`, grants each role its privileges on what the others created.

use tokio_postgres::Client;

/// One definitions file: its path under `sql/` and its text.
#[derive(Clone, Copy, Debug)]
pub struct Definition {
    pub file: &'static str,
    pub sql: &'static str,
}

macro_rules! definitions {
    ($($file:literal),* $(,)?) => {
        &[$(Definition { file: $file, sql: include_str!(concat!("../../sql/", $file)) }),*]
    };
}

/// Every definitions file, in the order it is applied (a file may use what the files
/// before it define).
pub const DEFINITIONS: &[Definition] = definitions![
    "roles.sql",
    "common/validation.sql",
    "common/settings.sql",
    "common/schema_version.sql",
    "security/authority.sql",
    "queue/wake.sql",
    "queue/job_triggers.sql",
    "queue/job_control.sql",
    "queue/claim_jobs.sql",
    "gdpr/erasure.sql",
    "outbox/validate.sql",
    "routing/lane_key.sql",
    "routing/lane_wakeups.sql",
    "outbox/enqueue_jobs.sql",
    "outbox/status_mirror.sql",
    "outbox/status_guard.sql",
    "outbox/cancel.sql",
    "outbox/retry_message.sql",
    "routing/calendar.sql",
    "routing/limits.sql",
    "routing/config_triggers.sql",
    "providers/breaker.sql",
    "routing/mailbox_groups.sql",
    "routing/reservations.sql",
    "routing/lane_blocked.sql",
    "routing/lanes_next_ready.sql",
    "routing/take_messages.sql",
    "routing/lane_providers.sql",
    "routing/pick_senders.sql",
    "routing/reserve.sql",
    "routing/route_lane.sql",
    "routing/claim_messages.sql",
    "feedback/record_events.sql",
    "outbox/uncertain.sql",
    "feedback/policies.sql",
    "feedback/pauses.sql",
    "feedback/unsubscribe.sql",
    "feedback/provider_suppressions.sql",
    "backups/catch_up.sql",
    "compliance/domain_gate.sql",
    "compliance/recipient_domains.sql",
    "alerts/rules.sql",
    "alerts/notifications.sql",
    "metrics/rollups.sql",
    "metrics/snapshot.sql",
    "metrics/status.sql",
    "security/tenancy.sql",
    "views/queue.sql",
    "views/routing.sql",
    "views/health.sql",
    "views/feedback.sql",
    "views/domains.sql",
    "verify/promises.sql",
    "security/grants.sql",
];

/// Applies the definitions when any of them changed; returns the files that changed
/// (new or edited), in order, or nothing when the database already has them all.
///
/// # Errors
/// A file failed to apply; the whole transaction is rolled back and names the file.
pub async fn apply(client: &mut Client) -> Result<Vec<&'static str>, DefinitionError> {
    let recorded: std::collections::HashMap<String, String> = client
        .query("SELECT file, checksum FROM postrunner.sql_definitions", &[])
        .await
        .map_err(DefinitionError::Read)?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let checksums: Vec<String> = {
        let texts: Vec<&str> = DEFINITIONS.iter().map(|d| d.sql).collect();
        let row = client
            .query_one(
                "SELECT array_agg(md5(t) ORDER BY n) FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n)",
                &[&texts],
            )
            .await
            .map_err(DefinitionError::Read)?;
        row.get(0)
    };
    let changed: Vec<&'static str> = DEFINITIONS
        .iter()
        .zip(&checksums)
        .filter(|(d, sum)| recorded.get(d.file) != Some(*sum))
        .map(|(d, _)| d.file)
        .collect();
    let removed = recorded.keys().any(|file| DEFINITIONS.iter().all(|d| d.file != file));
    if changed.is_empty() && !removed {
        return Ok(changed);
    }

    let tx = client.transaction().await.map_err(DefinitionError::Read)?;
    for definition in DEFINITIONS {
        tx.batch_execute(definition.sql)
            .await
            .map_err(|source| DefinitionError::Apply {
                file: definition.file,
                source,
            })?;
    }
    tx.execute("DELETE FROM postrunner.sql_definitions", &[])
        .await
        .map_err(DefinitionError::Read)?;
    let files: Vec<&str> = DEFINITIONS.iter().map(|d| d.file).collect();
    tx.execute(
        "INSERT INTO postrunner.sql_definitions (file, checksum) SELECT * FROM unnest($1::text[], $2::text[])",
        &[&files, &checksums],
    )
    .await
    .map_err(DefinitionError::Read)?;
    tx.commit().await.map_err(DefinitionError::Read)?;
    Ok(changed)
}

/// Why applying the definitions failed.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read or record the applied definitions")]
    Read(#[source] tokio_postgres::Error),
    #[error("sql/{file} failed to apply")]
    Apply {
        file: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}
