//! The current definitions of postrunner's functions, triggers and views: one file per
//! subject under `sql/definitions/`, numbered in the order `postrunner migrate` applies
//! them after the migrations ([`DEFINITIONS`]), in one transaction, under the migration
//! lock. Numbers go in tens, so a new file slots in without renaming the others.
//!
//! Migrations (`migrations/`) hold the schema and never change once merged; a function's
//! body lives in exactly one file here, so an edit to it is an edit of that file with its
//! own history. Every file is idempotent (`CREATE OR REPLACE`); when any file changed
//! since the last run (checksums in `postrunner.sql_definitions`), all of them are
//! applied again in order, so a file may rely on the ones before it. The first,
//! `010_roles.sql`, creates the roles the policies and grants name; the last,
//! `540_security_grants.sql`, grants each role its privileges on what the others created.

use tokio_postgres::Client;

/// One definitions file: its name under `sql/definitions/` and its text.
#[derive(Clone, Copy, Debug)]
pub struct Definition {
    pub file: &'static str,
    pub sql: &'static str,
}

macro_rules! definitions {
    ($($file:literal),* $(,)?) => {
        &[$(Definition { file: $file, sql: include_str!(concat!("../sql/definitions/", $file)) }),*]
    };
}

/// Every definitions file, in the order it is applied (a file may use what the files
/// before it define).
pub const DEFINITIONS: &[Definition] = definitions![
    "010_roles.sql",
    "020_common_validation.sql",
    "030_common_settings.sql",
    "040_common_schema_version.sql",
    "050_security_authority.sql",
    "060_queue_wake.sql",
    "070_queue_job_triggers.sql",
    "080_queue_job_control.sql",
    "090_queue_claim_jobs.sql",
    "100_gdpr_erasure.sql",
    "110_outbox_validate.sql",
    "120_routing_lane_key.sql",
    "130_routing_lane_wakeups.sql",
    "140_outbox_enqueue_jobs.sql",
    "150_outbox_status_mirror.sql",
    "160_outbox_status_guard.sql",
    "170_outbox_cancel.sql",
    "180_outbox_retry_message.sql",
    "190_routing_calendar.sql",
    "200_routing_limits.sql",
    "210_routing_config_triggers.sql",
    "220_providers_breaker.sql",
    "230_routing_mailbox_groups.sql",
    "240_routing_reservations.sql",
    "250_routing_lane_blocked.sql",
    "260_routing_lanes_next_ready.sql",
    "270_routing_take_messages.sql",
    "280_routing_lane_providers.sql",
    "290_routing_pick_senders.sql",
    "300_routing_reserve.sql",
    "310_routing_route_lane.sql",
    "320_routing_claim_messages.sql",
    "330_feedback_record_events.sql",
    "340_outbox_uncertain.sql",
    "350_feedback_policies.sql",
    "360_feedback_pauses.sql",
    "370_feedback_unsubscribe.sql",
    "380_feedback_provider_suppressions.sql",
    "390_backups_catch_up.sql",
    "400_compliance_domain_gate.sql",
    "410_compliance_recipient_domains.sql",
    "420_alerts_rules.sql",
    "430_alerts_notifications.sql",
    "440_metrics_rollups.sql",
    "450_metrics_snapshot.sql",
    "460_metrics_status.sql",
    "470_security_tenancy.sql",
    "480_views_queue.sql",
    "490_views_routing.sql",
    "500_views_health.sql",
    "510_views_feedback.sql",
    "520_views_domains.sql",
    "530_verify_promises.sql",
    "540_security_grants.sql",
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

/// The definitions file of this name (`010_roles.sql`), if there is one.
pub fn named(file: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.file == file)
}
