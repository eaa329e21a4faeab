-- Backups (issue 11): a pg_dump of the database in custom format, streamed to
-- S3-compatible storage with a manifest (checksum, size, schema version, row counts
-- from the dump's own snapshot), then restored into a scratch database and checked.
-- One row per backup; the metrics and the status summary read the last verified one.
CREATE TABLE postrunner.backups (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Its objects: <prefix>/<object_key>.dump and <prefix>/<object_key>.manifest.json
    object_key     text NOT NULL UNIQUE,
    -- running: being dumped; uploaded: in storage, not yet checked; verified: restored
    -- and matched its manifest; failed: the dump, upload or check failed (error);
    -- pruned: removed from storage by the retention policy.
    status         text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'uploaded', 'verified', 'failed', 'pruned')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    verified_at    timestamptz,
    size_bytes     bigint,
    sha256         text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    schema_version text,
    row_counts     jsonb,
    error          text,
    trigger        text NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual'))
);
CREATE INDEX backups_verified_idx ON postrunner.backups (verified_at) WHERE status = 'verified';

-- Daily at 03:00 UTC. Off until storage is configured (POSTRUNNER_BACKUP_S3_* in the
-- workers' environment): UPDATE postrunner.schedules SET enabled = true WHERE name = 'backup'.
INSERT INTO postrunner.schedules (name, cron, kind, priority, enabled) VALUES
    ('backup', '0 0 3 * * *', 'system.backup', 20, false);
