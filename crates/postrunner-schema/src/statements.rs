//! The statements the code runs, one file each under `sql/statements/<area>/`, as
//! constants named after their files (`queue::CLAIM` is `sql/statements/queue/claim.sql`).
//! Only this crate includes SQL files; the statements prepare against the migrated schema
//! in `tests/statements.rs`, which also checks that every file has its constant here.

/// `sql/statements/<area>/<file>`, as a constant named after the file.
macro_rules! statements {
    ($area:literal: $($name:ident = $file:literal),* $(,)?) => {
        $(
            #[doc = concat!("`sql/statements/", $area, "/", $file, "`")]
            pub const $name: &str = include_str!(concat!("../sql/statements/", $area, "/", $file));
        )*
        /// Every statement of this area, with its file name (for the tests).
        pub const ALL: &[(&str, &str)] = &[$(($file, $name)),*];
    };
}

pub mod alerts {
    statements! {"alerts":
        DISPATCH_NOTIFICATIONS = "dispatch_notifications.sql",
        EVALUATE = "evaluate.sql",
        NOTIFICATION_BATCH = "notification_batch.sql",
        NOTIFICATION_OUTCOME = "notification_outcome.sql",
    }
}

pub mod backups {
    statements! {"backups":
        CATCH_UP = "catch_up.sql",
        COUNT_ROWS = "count_rows.sql",
        ERASURES_AS_JSON = "erasures_as_json.sql",
        EXPORT_SNAPSHOT = "export_snapshot.sql",
        FAILED = "failed.sql",
        LIST = "list.sql",
        PRUNED = "pruned.sql",
        REPLAY_ERASURES = "replay_erasures.sql",
        SNAPSHOT_COUNTS = "snapshot_counts.sql",
        SNAPSHOT_TRANSACTION = "snapshot_transaction.sql",
        START = "start.sql",
        SUPPRESSIONS_AS_JSON = "suppressions_as_json.sql",
        TARGET_OCCUPIED = "target_occupied.sql",
        UPLOADED = "uploaded.sql",
        VERIFIED = "verified.sql",
    }
}

pub mod common {
    statements! {"common":
        DATABASE_NOW = "database_now.sql",
        PING = "ping.sql",
    }
}

pub mod compliance {
    statements! {"compliance":
        APPLY_DOMAIN_CHECKS = "apply_domain_checks.sql",
        PENDING_RECIPIENT_DOMAINS = "pending_recipient_domains.sql",
        RECORD_DOMAIN_CHECK = "record_domain_check.sql",
        RECORD_RECIPIENT_DOMAINS = "record_recipient_domains.sql",
        SENDER_DOMAINS = "sender_domains.sql",
    }
}

pub mod feedback {
    statements! {"feedback":
        APPLY_PROVIDER_SUPPRESSIONS = "apply_provider_suppressions.sql",
        BOUNCE_MAILBOXES = "bounce_mailboxes.sql",
        LOCK_BOUNCE_MAILBOX = "lock_bounce_mailbox.sql",
        RECORD_EVENTS = "record_events.sql",
        UNSUBSCRIBE = "unsubscribe.sql",
        UNSUBSCRIBE_TARGET = "unsubscribe_target.sql",
    }
}

pub mod gdpr {
    statements! {"gdpr":
        ERASE = "erase.sql",
        EXPORT = "export.sql",
    }
}

pub mod import {
    statements! {"import":
        COLUMN_TYPES = "column_types.sql",
    }
}

pub mod metrics {
    statements! {"metrics":
        ROLLUP_SENDS = "rollup_sends.sql",
        SCRAPE_TIMEOUT = "scrape_timeout.sql",
        SNAPSHOT = "snapshot.sql",
    }
}

pub mod outbox {
    statements! {"outbox":
        CLOSE_ATTEMPT = "close_attempt.sql",
        RECORD_SENT = "record_sent.sql",
        RESOLVE_BY_LOOKUP = "resolve_by_lookup.sql",
        SETTLE_UNCERTAIN = "settle_uncertain.sql",
        SUPPRESS_RECIPIENT = "suppress_recipient.sql",
        UNCERTAIN_LOOKUPS = "uncertain_lookups.sql",
        UNCERTAIN_PROVIDERS = "uncertain_providers.sql",
    }
}

pub mod periodic {
    statements! {"periodic":
        ADVANCE = "advance.sql",
        DUE = "due.sql",
        RECORD_RUN = "record_run.sql",
    }
}

pub mod providers {
    statements! {"providers":
        DKIM_DOMAINS = "dkim_domains.sql",
        ENABLED = "enabled.sql",
        PROBE_TARGETS = "probe_targets.sql",
        PROVIDER_ROW = "provider_row.sql",
        RECORD_FAILURE = "record_failure.sql",
        RECORD_PROBE = "record_probe.sql",
        RECORD_SUCCESSES = "record_successes.sql",
        SENDER_DOMAINS_OF = "sender_domains_of.sql",
        WEBHOOK_SETTINGS = "webhook_settings.sql",
    }
}

pub mod queue {
    statements! {"queue":
        CLAIM = "claim.sql",
        CLEANUP = "cleanup.sql",
        COMPLETE = "complete.sql",
        COMPLETE_EMAIL = "complete_email.sql",
        ENQUEUE = "enqueue.sql",
        FAIL = "fail.sql",
        HEARTBEAT = "heartbeat.sql",
        LOCK_BATCH = "lock_batch.sql",
        PROMOTE = "promote.sql",
        RELEASE = "release.sql",
        RESCUE_EXPIRED_LEASES = "rescue_expired_leases.sql",
        STILL_LEASED = "still_leased.sql",
        WAKE_CHANNEL = "wake_channel.sql",
    }
}

pub mod routing {
    statements! {"routing":
        CLAIM = "claim.sql",
        NEXT_READY = "next_ready.sql",
    }
}

pub mod status {
    statements! {"status":
        SUMMARY = "summary.sql",
    }
}

pub mod verify {
    statements! {"verify":
        FINDINGS = "findings.sql",
    }
}

pub mod workers {
    statements! {"workers":
        DEREGISTER = "deregister.sql",
        REGISTER = "register.sql",
    }
}

/// Every area's statements, by area (for the tests).
pub const AREAS: &[(&str, &[(&str, &str)])] = &[
    ("alerts", alerts::ALL),
    ("backups", backups::ALL),
    ("common", common::ALL),
    ("compliance", compliance::ALL),
    ("feedback", feedback::ALL),
    ("gdpr", gdpr::ALL),
    ("import", import::ALL),
    ("metrics", metrics::ALL),
    ("outbox", outbox::ALL),
    ("periodic", periodic::ALL),
    ("providers", providers::ALL),
    ("queue", queue::ALL),
    ("routing", routing::ALL),
    ("status", status::ALL),
    ("verify", verify::ALL),
    ("workers", workers::ALL),
];
