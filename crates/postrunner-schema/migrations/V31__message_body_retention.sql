-- Retention of message bodies: a message final for longer than
-- message_body_retention_days keeps its row (status, addresses, subject, metadata,
-- timestamps: what reports, verify, costs and erasures read) but loses its text and
-- HTML bodies and its headers, the bulk of the outbox's size. The hourly cleanup clears
-- them (sql/statements/retention/prune.sql) and stamps body_cleared_at; a message whose
-- body is cleared cannot be re-driven (sql/definitions/180_outbox_retry_message.sql).
INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('message_body_retention_days', '30',
     'bodies and headers of messages final for longer than this many days are cleared by the hourly cleanup',
     'integer', 1, 3650);

ALTER TABLE postrunner.outbox ADD COLUMN body_cleared_at timestamptz;

-- The cleanup walks the messages that still have their bodies, oldest first: an index
-- of only those rows stays as small as the retention window.
CREATE INDEX outbox_bodies_kept_idx ON postrunner.outbox ((coalesce(sent_at, created_at)))
    WHERE body_cleared_at IS NULL;
