-- Holding and resolving uncertain sends (issue 9, part 7; the states are V17's).
-- Function bodies are in sql/outbox/uncertain.sql.

-- What happens to a held message when the wait ends without evidence: 'resend' (the
-- recipient may get it twice, but never not at all) or 'never-duplicate' (it fails:
-- the recipient may get it not at all, but never twice).
ALTER TABLE postrunner.clients
    ADD COLUMN duplicate_policy text NOT NULL DEFAULT 'resend'
        CHECK (duplicate_policy IN ('resend', 'never-duplicate'));

-- How an uncertain attempt was decided: 'event' (the provider reported on the message),
-- 'lookup' (the provider's API knows it), 'resent' or 'given_up' (the wait ended with no
-- evidence; its capacity stays used either way).
ALTER TABLE postrunner.send_attempts
    ADD COLUMN resolution text CHECK (resolution IN ('event', 'lookup', 'resent', 'given_up')),
    ADD COLUMN resolved_at timestamptz,
    -- The last time the provider was asked about it (providers with a lookup).
    ADD COLUMN looked_up_at timestamptz;

INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('uncertain_wait_secs', '900', 'how long a send whose outcome is uncertain is held for evidence before the client''s duplicate_policy decides, in seconds', 'number', 1, 604800),
    ('uncertain_lookup_secs', '60', 'how often a held send''s provider is asked about it, when the provider can be, in seconds', 'number', 1, 86400);

-- Held jobs by the end of their wait (the resolver's walk).
CREATE INDEX jobs_held_idx ON postrunner.jobs (run_at) WHERE state = 'held';
-- A message's open question.
CREATE INDEX send_attempts_uncertain_idx ON postrunner.send_attempts (message_id) WHERE outcome = 'uncertain';

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('resolve_uncertain', '*/10 * * * * *', 'system.resolve_uncertain', 80);
