-- The exact and safe core (issue 8): typed settings, the failure class and trial flag of
-- each attempt, bounded half-open trials of a down provider, the composite types the
-- routed claim passes between its steps, and input rules the outbox INSERT enforces.
-- Function, trigger and view bodies are in sql/ (src/db/definitions.rs).

-- Settings are typed, and checked when written (trigger settings_check, in
-- sql/common/settings.sql): a value the claim could not read is refused by the UPDATE
-- that tries to store it, instead of making every claim fail.
ALTER TABLE postrunner.settings
    ADD COLUMN type text CHECK (type IN ('integer', 'number', 'integer_list')),
    ADD COLUMN min_value numeric,
    ADD COLUMN max_value numeric;
UPDATE postrunner.settings s
   SET type = t.type, min_value = t.min_value, max_value = t.max_value
  FROM (VALUES ('max_body_bytes',           'integer',      1,      1073741824),
               ('warmup_schedule',          'integer_list', 1,      1000000),
               ('warmup_growth',            'number',       1,      10),
               ('pacing_jitter',            'number',       0,      0.9),
               ('breaker_failures',         'integer',      1,      1000),
               ('breaker_cooldown_secs',    'number',       1,      86400),
               ('breaker_error_rate',       'number',       0.01,   1),
               ('breaker_window_secs',      'number',       1,      86400),
               ('breaker_min_attempts',     'integer',      1,      1000000),
               ('alert_provider_down_secs', 'number',       0,      604800)) AS t(name, type, min_value, max_value)
 WHERE s.name = t.name;
-- A setting of unknown name (added by hand) is kept as a number without bounds.
UPDATE postrunner.settings SET type = 'number' WHERE type IS NULL;
ALTER TABLE postrunner.settings ALTER COLUMN type SET NOT NULL;

INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('breaker_trial_sends', '5', 'trial sends admitted per cool-down to a down provider, across all workers', 'integer', 1, 1000),
    ('breaker_trial_successes', '3', 'successful trial sends (or probes) that bring a down provider up again', 'integer', 1, 1000),
    ('max_headers', '50', 'most extra headers an INSERT into postrunner.outbox may carry', 'integer', 0, 1000),
    ('max_header_bytes', '998', 'longest extra header value an INSERT accepts, in bytes', 'integer', 1, 16384),
    ('max_metadata_bytes', '16384', 'largest metadata (as JSON text) an INSERT accepts, in bytes', 'integer', 2, 1048576);

-- Why an attempt failed, when it did: only 'provider' (5xx, 429, timeouts, connection
-- errors, authentication) counts against the provider's circuit breaker; a recipient
-- refused or a message rejected says nothing about the provider's health.
ALTER TABLE postrunner.send_attempts
    ADD COLUMN fault text CHECK (fault IN ('recipient', 'message', 'transient', 'provider')),
    -- Admitted as a trial send of a down provider past its cool-down.
    ADD COLUMN trial boolean NOT NULL DEFAULT false;

-- Half-open: once a down provider's cool-down has passed, each cool-down period admits
-- breaker_trial_sends trial sends across all workers (counted here, under the row's
-- lock); breaker_trial_successes successes bring it up, one provider failure takes it
-- down for another cool-down.
ALTER TABLE postrunner.provider_health
    ADD COLUMN trial_window_at timestamptz,
    ADD COLUMN trial_sends integer NOT NULL DEFAULT 0,
    ADD COLUMN trial_successes integer NOT NULL DEFAULT 0;

-- What the steps of the routed claim (sql/routing/route_lane.sql) hand each other.
-- A provider a lane may use now, with what it may still take in this claim.
CREATE TYPE postrunner.route_provider AS (
    provider  text,
    weight    float8,    -- the direction's weight, halved while degraded or on trial
    allowance integer,   -- what rate, budget and trial admission still allow
    trial     boolean    -- a down provider past its cool-down: these are trial sends
);
-- A sender address chosen for a message, after its row was locked and re-checked.
CREATE TYPE postrunner.route_pick AS (
    job_id    bigint,
    address   text,
    provider  text,
    day       date,      -- the client-local day the send counts on
    day_limit integer,
    trial     boolean
);

-- Signatures that changed: their new definitions are in sql/.
DROP FUNCTION postrunner.route_lane(integer, bigint, uuid, uuid, interval, timestamptz);
DROP FUNCTION postrunner.close_attempt(bigint, boolean, text);

-- A display name goes into the From header: no control characters (rows written from
-- now on; existing ones are not re-checked).
ALTER TABLE postrunner.sender_addresses
    ADD CONSTRAINT sender_addresses_display_name_printable
    CHECK (display_name !~ '[[:cntrl:]]' AND length(display_name) <= 200) NOT VALID;
