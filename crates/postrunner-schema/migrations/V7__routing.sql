-- Routing: which sender address and provider a message goes out from, and when.
--
-- Every limit is enforced here, in the transaction that claims the message, so that it
-- holds across any number of worker replicas:
--   - daily limits per address (counted per calendar day in the client's time zone),
--     with warm-up ramps for new addresses;
--   - pacing: an address sends no sooner than (window length / effective daily limit),
--     with jitter, after its previous send;
--   - the direction's sending window (days of week, hours, time zone);
--   - per-provider rate (per calendar minute) and monthly budget (a hard limit);
--   - provider enabled and not down; recipient not suppressed for the client.
--
-- Data model:
--   lanes            one per direction: the unit the claim serves round-robin, with a
--                    gate (ready_at, waiting_for) saying until when it cannot send and why;
--   address_usage    per address: sends on its current day and its next pacing slot;
--   provider_usage   per provider with a rate or a budget: sends this minute and month;
--   provider_health  per provider: up, degraded or down (filled by health checks later);
--   send_attempts    the ledger: one row per reservation, with its outcome.
--
-- Lock discipline, which keeps claims deadlock-free: a claim takes every row it locks
-- with SKIP LOCKED (lanes, jobs, outbox rows, provider_usage, address_usage), so it never
-- waits; a row another claimer holds is simply not used this time. The only writers that
-- wait are single-message releases (provider_usage, then address_usage) and configuration
-- triggers that wake lanes.

-- Tunables of routing, next to max_body_bytes.
INSERT INTO postrunner.settings (name, value, note) VALUES
    ('warmup_schedule', '5,8,12,18,25,35,50',
     'daily limits of a warming address on its 1st, 2nd, ... day (capped at its daily_limit)'),
    ('warmup_growth', '1.25',
     'after the schedule, each further day of warm-up multiplies the last limit by this (capped at daily_limit)'),
    ('pacing_jitter', '0.2',
     'pacing slots vary by +- this fraction, so that sends do not look machine-timed');

-- ---------------------------------------------------------------------------------
-- Pure helpers: limits, days and windows.

-- The limit a warming address has on its day number `day_index` (0 = the day warm-up
-- started): the schedule's entry, then growth by warmup_growth per day.
CREATE FUNCTION postrunner.warmup_limit(day_index integer) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN day_index < cardinality(s.steps) THEN s.steps[greatest(day_index, 0) + 1]
        ELSE least(floor(s.steps[cardinality(s.steps)]
                         * power(s.growth, least(day_index - cardinality(s.steps) + 1, 200))), 2147483647)::integer
    END
      FROM (SELECT coalesce((SELECT string_to_array(value, ',')::integer[] FROM postrunner.settings
                              WHERE name = 'warmup_schedule'), '{5,8,12,18,25,35,50}') AS steps,
                   coalesce((SELECT value::float8 FROM postrunner.settings WHERE name = 'warmup_growth'), 1.25) AS growth) s
$$;

-- The number of messages an address may send on `on_day`: its daily_limit, or less
-- while it warms up. Never more than daily_limit.
CREATE FUNCTION postrunner.effective_daily_limit(daily_limit integer, warmup_started_on date, on_day date)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN warmup_started_on IS NULL THEN daily_limit
                ELSE least(daily_limit, postrunner.warmup_limit(on_day - warmup_started_on)) END
$$;

-- The calendar day at `at` in time zone `tz`, and the instant the next one starts.
CREATE FUNCTION postrunner.local_day(at timestamptz, tz text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (at AT TIME ZONE tz)::date $$;

CREATE FUNCTION postrunner.next_day_start(at timestamptz, tz text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (((at AT TIME ZONE tz)::date + 1)::timestamp AT TIME ZONE tz) $$;

-- Is a sending window (ISO days, start and end time of day, time zone) open at `at`?
CREATE FUNCTION postrunner.window_is_open(send_days smallint[], window_start time, window_end time, tz text,
                                          at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT extract(isodow FROM (at AT TIME ZONE tz))::smallint = ANY (send_days)
       AND (at AT TIME ZONE tz)::time >= window_start
       AND ((at AT TIME ZONE tz)::time < window_end OR window_end = '24:00')
$$;

-- The next instant after `at` at which the window opens (within the coming week).
CREATE FUNCTION postrunner.window_opens_at(send_days smallint[], window_start time, tz text, at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT min(((at AT TIME ZONE tz)::date + d + window_start) AT TIME ZONE tz)
      FROM generate_series(0, 7) AS d
     WHERE extract(isodow FROM (at AT TIME ZONE tz)::date + d)::smallint = ANY (send_days)
       AND (((at AT TIME ZONE tz)::date + d + window_start) AT TIME ZONE tz) > at
$$;

-- ---------------------------------------------------------------------------------
-- Lanes: one per direction.
CREATE TABLE postrunner.lanes (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client         text NOT NULL,
    direction      text NOT NULL,
    -- The gate: no claim serves this lane before ready_at. Set when the lane had
    -- messages but no capacity (to the earliest moment capacity frees), cleared by any
    -- configuration change that may free capacity earlier. A hint for speed only: the
    -- limits themselves are checked on the locked rows at every claim.
    ready_at       timestamptz NOT NULL DEFAULT '-infinity',
    waiting_for    text CHECK (waiting_for IN ('window', 'pacing', 'daily_limit', 'provider_rate', 'budget',
                                               'provider_down', 'provider_disabled', 'no_address', 'no_provider')),
    waiting_detail text,
    -- Round-robin between lanes: the least recently served goes first.
    served_at      timestamptz NOT NULL DEFAULT '-infinity',
    -- Weighted round-robin between the lane's providers (stride scheduling): each
    -- provider's virtual time; the lowest sends next, and each send moves it 1/weight on.
    turns          jsonb NOT NULL DEFAULT '{}',
    UNIQUE (client, direction),
    FOREIGN KEY (client, direction) REFERENCES postrunner.directions (client, name)
        ON UPDATE CASCADE ON DELETE CASCADE
);

INSERT INTO postrunner.lanes (client, direction) SELECT client, name FROM postrunner.directions;

CREATE FUNCTION postrunner.directions_add_lane() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.lanes (client, direction) SELECT client, name FROM new_directions
    ON CONFLICT (client, direction) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER directions_add_lane
    AFTER INSERT ON postrunner.directions
    REFERENCING NEW TABLE AS new_directions
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.directions_add_lane();

-- Email jobs carry their lane; every other kind has none. Jobs with a lane are claimed
-- by postrunner.claim_messages (lane by lane, with routing), the others by claim_jobs.
ALTER TABLE postrunner.jobs ADD COLUMN lane integer;
-- Times the job went back to the queue without using an attempt because its provider
-- failed (it is routed again, to a healthy provider); bounded by the handler.
ALTER TABLE postrunner.jobs ADD COLUMN reroutes integer NOT NULL DEFAULT 0;
UPDATE postrunner.jobs j SET lane = l.id
  FROM postrunner.outbox o JOIN postrunner.lanes l ON (l.client, l.direction) = (o.client, o.direction)
 WHERE o.job_id = j.id;
ALTER TABLE postrunner.jobs ADD CONSTRAINT jobs_email_has_lane CHECK ((kind = 'email.send') = (lane IS NOT NULL));

DROP INDEX postrunner.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON postrunner.jobs ((-priority), run_at, id) WHERE state = 'available' AND lane IS NULL;
CREATE INDEX jobs_lane_idx ON postrunner.jobs (lane, (-priority), run_at, id) WHERE state = 'available' AND lane IS NOT NULL;

CREATE OR REPLACE FUNCTION postrunner.outbox_enqueue_jobs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.jobs (id, kind, priority, run_at, state, lane)
    SELECT n.job_id, 'email.send', n.priority, coalesce(n.send_after, now()),
           CASE WHEN n.send_after > now() THEN 'scheduled' ELSE 'available' END::postrunner.job_state,
           l.id
      FROM new_messages n
      JOIN postrunner.lanes l ON (l.client, l.direction) = (n.client, n.direction);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION postrunner.retry_message(message_id uuid) RETURNS postrunner.message_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    msg record;
BEGIN
    SELECT o.job_id, o.status, l.id AS lane INTO msg
      FROM postrunner.outbox o JOIN postrunner.lanes l ON (l.client, l.direction) = (o.client, o.direction)
     WHERE o.id = message_id FOR UPDATE OF o;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id USING ERRCODE = 'no_data_found';
    END IF;
    IF msg.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'message % is % and needs no retry', message_id, msg.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postrunner.jobs WHERE id = msg.job_id) THEN
        -- The cleanup task deleted the finished job: carry the message with a new one,
        -- created cancelled so that retry_job below makes the transition the mirror sees.
        INSERT INTO postrunner.jobs (id, kind, state, finalized_at, lane)
        VALUES (msg.job_id, 'email.send', 'cancelled', now(), msg.lane);
    END IF;
    PERFORM postrunner.retry_job(msg.job_id);
    RETURN msg.status;
END
$$;

-- The generic claim now takes only jobs without a lane (see V6 for the rest).
CREATE OR REPLACE FUNCTION postrunner.claim_jobs(
    bigint, uuid, uuid, interval, timestamptz, smallint, timestamptz, bigint
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE sql VOLATILE AS $claim$
WITH due AS (
    SELECT id
      FROM postrunner.jobs
     WHERE state = 'available'
       AND lane IS NULL
       AND run_at <= coalesce($5::timestamptz, now())
       AND ((-priority), run_at, id) > ($6::smallint, coalesce($7::timestamptz, '-infinity'), $8::bigint)
     ORDER BY (-priority), run_at, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE postrunner.jobs AS j
   SET state = 'running',
       attempts = j.attempts + 1,
       leased_by = $2::uuid,
       lease_token = $3::uuid,
       lease_expires_at = coalesce($5::timestamptz, now()) + $4::interval,
       attempted_at = coalesce($5::timestamptz, clock_timestamp())
  FROM due
 WHERE j.id = due.id
RETURNING j.id, j.kind, j.args, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at, j.attempted_at
$claim$;

-- ---------------------------------------------------------------------------------
-- Usage and health.

-- Per sender address: how many messages it reserved on `day` (the client-local day of
-- its latest send) and when it may send next. Rows follow sender_addresses (trigger
-- below), with client, provider and `active` copied so the claim's index holds
-- everything it filters on.
CREATE TABLE postrunner.address_usage (
    address      text PRIMARY KEY REFERENCES postrunner.sender_addresses (address)
                 ON UPDATE CASCADE ON DELETE CASCADE,
    client       text NOT NULL,
    provider     text NOT NULL,
    active       boolean NOT NULL,
    day          date,
    sent_on_day  integer NOT NULL DEFAULT 0,
    -- The pacing slot; for an address that used its day's limit, the start of its
    -- client's next day.
    next_slot_at timestamptz NOT NULL DEFAULT '-infinity',
    last_sent_at timestamptz
);
-- The claim's scan: a client's active addresses of one provider whose slot has come,
-- the longest-waiting first (least recently used, in the sense of pacing).
CREATE INDEX address_usage_ready_idx ON postrunner.address_usage (client, provider, next_slot_at) WHERE active;

CREATE FUNCTION postrunner.sender_addresses_sync_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.address_usage AS u (address, client, provider, active)
    VALUES (NEW.address, NEW.client, NEW.provider, NEW.status = 'active')
    ON CONFLICT (address) DO UPDATE
       SET client = excluded.client,
           provider = excluded.provider,
           active = excluded.active,
           -- A changed limit or warm-up may free capacity before the slot computed
           -- under the old one (the claim re-checks the new limit on the locked row).
           next_slot_at = CASE
               WHEN (OLD.daily_limit, OLD.warmup_started_on) IS DISTINCT FROM (NEW.daily_limit, NEW.warmup_started_on)
               THEN least(u.next_slot_at, coalesce(u.last_sent_at + interval '24 hours' / NEW.daily_limit, '-infinity'))
               ELSE u.next_slot_at END;
    RETURN NULL;
END
$$;
CREATE TRIGGER sender_addresses_sync_usage
    AFTER INSERT OR UPDATE ON postrunner.sender_addresses
    FOR EACH ROW EXECUTE FUNCTION postrunner.sender_addresses_sync_usage();

-- Per provider with a per_minute rate or a monthly_budget: what it took this minute and
-- this month (reservations; a released reservation is given back).
CREATE TABLE postrunner.provider_usage (
    provider       text PRIMARY KEY REFERENCES postrunner.providers (name) ON UPDATE CASCADE ON DELETE CASCADE,
    minute         timestamptz,
    sent_in_minute integer NOT NULL DEFAULT 0,
    -- NULL until counted: the first count of a month is taken from send_attempts.
    month          date,
    sent_in_month  integer NOT NULL DEFAULT 0
);

CREATE TYPE postrunner.health_state AS ENUM ('up', 'degraded', 'down');

-- Provider health as routing sees it: down gets no traffic, degraded half its weight.
-- Written by health checks and send outcomes (provider issue); operators may set it.
CREATE TABLE postrunner.provider_health (
    provider             text PRIMARY KEY REFERENCES postrunner.providers (name) ON UPDATE CASCADE ON DELETE CASCADE,
    state                postrunner.health_state NOT NULL DEFAULT 'up',
    since                timestamptz NOT NULL DEFAULT now(),
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error           text,
    -- The provider asked for a pause (429 with Retry-After or a reset header): it gets
    -- no traffic before this, whatever its state.
    paused_until         timestamptz
);

CREATE FUNCTION postrunner.providers_add_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.provider_usage (provider) SELECT name FROM new_providers ON CONFLICT DO NOTHING;
    INSERT INTO postrunner.provider_health (provider) SELECT name FROM new_providers ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER providers_add_rows
    AFTER INSERT ON postrunner.providers
    REFERENCING NEW TABLE AS new_providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.providers_add_rows();
INSERT INTO postrunner.provider_usage (provider) SELECT name FROM postrunner.providers;
INSERT INTO postrunner.provider_health (provider) SELECT name FROM postrunner.providers;

-- A budget or rate set or changed mid-month: recount the month from the ledger.
CREATE FUNCTION postrunner.providers_recount_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    UPDATE postrunner.provider_usage SET month = NULL, minute = NULL WHERE provider = NEW.name;
    RETURN NULL;
END
$$;
CREATE TRIGGER providers_recount_usage
    AFTER UPDATE OF per_minute, monthly_budget, price_per_1000, monthly_fee ON postrunner.providers
    FOR EACH ROW EXECUTE FUNCTION postrunner.providers_recount_usage();

-- ---------------------------------------------------------------------------------
-- The ledger: one row per reservation (an attempt routed to an address).
CREATE TYPE postrunner.attempt_outcome AS ENUM (
    'reserved',  -- in flight: the worker is handing it to the provider
    'sent',      -- the provider accepted it
    'released',  -- it failed before the provider took it: its capacity was given back
    'failed',    -- it failed in a way where the provider may have taken it: still counted
    'lost'       -- the attempt ended without an outcome (worker died, lease expired,
                 -- shutdown): still counted, so a crash can never cause an overshoot
);

CREATE TABLE postrunner.send_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   uuid NOT NULL,
    job_id       bigint NOT NULL,
    attempt      integer NOT NULL,
    client       text NOT NULL,
    direction    text NOT NULL,
    provider     text NOT NULL,
    from_address text NOT NULL,
    -- The client-local day the reservation counts on.
    day          date NOT NULL,
    reserved_at  timestamptz NOT NULL,
    outcome      postrunner.attempt_outcome NOT NULL DEFAULT 'reserved',
    finished_at  timestamptz,
    error        text
);
CREATE INDEX send_attempts_job_idx ON postrunner.send_attempts (job_id);
CREATE INDEX send_attempts_provider_idx ON postrunner.send_attempts (provider, reserved_at);
CREATE INDEX send_attempts_day_idx ON postrunner.send_attempts (day, client);

-- Outcomes that use capacity.
CREATE FUNCTION postrunner.counts_as_sent(outcome postrunner.attempt_outcome) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT outcome <> 'released' $$;

-- The sends of provider p_provider that count against its month starting p_month
-- (UTC), from the ledger: how a provider's budget counter starts each month.
CREATE FUNCTION postrunner.provider_month_sends(p_provider text, p_month date) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM postrunner.send_attempts s
     WHERE s.provider = p_provider AND s.reserved_at >= p_month::timestamp AT TIME ZONE 'UTC'
       AND postrunner.counts_as_sent(s.outcome)
$$;

-- The rule "a direction may use the providers listed for it in direction_providers,
-- or, when none is listed, every provider".
CREATE FUNCTION postrunner.direction_may_use(p_client text, p_direction text, p_provider text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                    WHERE (dp.client, dp.direction, dp.provider) = (p_client, p_direction, p_provider))
        OR NOT EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                        WHERE (dp.client, dp.direction) = (p_client, p_direction))
$$;

-- An attempt that leaves `running` still 'reserved' in the ledger (its worker was
-- rescued after its lease expired, or released it at shutdown: a send that failed was
-- already closed by the worker, as 'failed' or 'released') is closed here as 'lost',
-- keeping its capacity. Part of the existing mirror trigger on email jobs.
--
-- The claim's own transition (available -> running) is no longer mirrored row by row:
-- the routed claim writes 'sending' for its whole batch in one statement.
CREATE OR REPLACE FUNCTION postrunner.jobs_sync_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    mirrored postrunner.message_status := postrunner.message_status_for(NEW.state, NEW.attempts);
BEGIN
    UPDATE postrunner.outbox
       SET status = mirrored,
           attempts = NEW.attempts,
           last_error = NEW.last_error
     WHERE job_id = NEW.id
       AND (status, attempts, last_error) IS DISTINCT FROM (mirrored, NEW.attempts, NEW.last_error);
    IF OLD.state = 'running' AND NEW.state <> 'running' THEN
        UPDATE postrunner.send_attempts
           SET outcome = 'lost',
               finished_at = now(),
               error = coalesce(NEW.last_error, 'released before the attempt started')
         WHERE job_id = NEW.id AND outcome = 'reserved';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_sync_outbox ON postrunner.jobs;
CREATE TRIGGER jobs_sync_outbox
    AFTER UPDATE OF state, attempts ON postrunner.jobs
    FOR EACH ROW WHEN (NEW.kind = 'email.send'
                       AND (OLD.state, OLD.attempts) IS DISTINCT FROM (NEW.state, NEW.attempts)
                       AND NOT (OLD.state = 'available' AND NEW.state = 'running'))
    EXECUTE FUNCTION postrunner.jobs_sync_outbox();

-- Status changes are the outbox's hot writes (sending, then sent): with no index on
-- status and room left in each page, they are HOT updates that touch no index.
DROP INDEX postrunner.outbox_status_idx;
ALTER TABLE postrunner.outbox SET (fillfactor = 80);

-- ---------------------------------------------------------------------------------
-- Waking gated lanes: any configuration change that may free capacity opens every gate
-- (lanes are few; the next claim recomputes the ones that are still blocked).
CREATE FUNCTION postrunner.wake_lanes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    UPDATE postrunner.lanes SET ready_at = '-infinity', waiting_for = NULL, waiting_detail = NULL
     WHERE ready_at > '-infinity';
    RETURN NULL;
END
$$;
CREATE TRIGGER sender_addresses_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.sender_addresses
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER providers_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER direction_providers_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.direction_providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER directions_wake_lanes AFTER UPDATE ON postrunner.directions
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER clients_wake_lanes AFTER UPDATE ON postrunner.clients
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER settings_wake_lanes AFTER INSERT OR UPDATE ON postrunner.settings
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE TRIGGER provider_health_wake_lanes AFTER UPDATE OF state ON postrunner.provider_health
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION postrunner.wake_lanes();
