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
        FAILED = "failed.sql",
        LIST = "list.sql",
        PRUNED = "pruned.sql",
        SNAPSHOT_COUNTS = "snapshot_counts.sql",
        START = "start.sql",
        UPLOADED = "uploaded.sql",
        VERIFIED = "verified.sql",
    }
}

pub mod outbox {
    statements! {"outbox":
        CLOSE_ATTEMPT = "close_attempt.sql",
        RECORD_SENT = "record_sent.sql",
        SUPPRESS_RECIPIENT = "suppress_recipient.sql",
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
        PROBE_TARGETS = "probe_targets.sql",
        RECORD_FAILURE = "record_failure.sql",
        RECORD_PROBE = "record_probe.sql",
        RECORD_SUCCESSES = "record_successes.sql",
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
    }
}

pub mod routing {
    statements! {"routing":
        CLAIM = "claim.sql",
        NEXT_READY = "next_ready.sql",
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
    ("outbox", outbox::ALL),
    ("periodic", periodic::ALL),
    ("providers", providers::ALL),
    ("queue", queue::ALL),
    ("routing", routing::ALL),
    ("workers", workers::ALL),
];
