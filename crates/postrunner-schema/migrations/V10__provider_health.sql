-- Provider health: a circuit breaker per provider, fed by live send outcomes.
--
--   up        -- no recent provider failure: full weight
--   degraded  -- 1 .. breaker_failures-1 consecutive provider failures: half weight
--   down      -- breaker_failures consecutive failures, or an error rate of at least
--                breaker_error_rate over the last breaker_window_secs (with at least
--                breaker_min_attempts sends in it): no traffic for
--                breaker_cooldown_secs, then trial sends (route_lane, V8): one success
--                brings it up, one failure takes it down again for another cool-down
--
-- "Provider failure" is SendError::Unavailable (5xx, 429, timeouts, refused or reset
-- connections, authentication, quota), never a refusal of one message or recipient.
-- Every change of state is kept in provider_health_history, and wakes every lane
-- (trigger provider_health_wake_lanes, V7).
INSERT INTO postrunner.settings (name, value, note) VALUES
    ('breaker_failures', '3', 'consecutive provider failures that take a provider down'),
    ('breaker_cooldown_secs', '30', 'seconds a down provider gets no traffic before trial sends'),
    ('breaker_error_rate', '0.5', 'share of failed sends over the window that takes a provider down'),
    ('breaker_window_secs', '60', 'the window of breaker_error_rate'),
    ('breaker_min_attempts', '20', 'sends needed in the window before the error rate counts');

ALTER TABLE postrunner.provider_health
    ADD COLUMN last_failure_at timestamptz,
    ADD COLUMN last_success_at timestamptz;

CREATE TABLE postrunner.provider_health_history (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL REFERENCES postrunner.providers (name) ON UPDATE CASCADE ON DELETE CASCADE,
    state    postrunner.health_state NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    reason   text
);
CREATE INDEX provider_health_history_provider_idx ON postrunner.provider_health_history (provider, at);

-- A send through p_provider failed because of the provider; p_retry_after is its own
-- hint of when to come back (NULL: none). Returns its new state.
CREATE FUNCTION postrunner.record_provider_failure(p_provider text, p_error text, p_retry_after interval DEFAULT NULL)
RETURNS postrunner.health_state
LANGUAGE plpgsql AS $fn$
DECLARE
    threshold integer := coalesce((SELECT value::integer FROM postrunner.settings WHERE name = 'breaker_failures'), 3);
    max_rate float8 := coalesce((SELECT value::float8 FROM postrunner.settings WHERE name = 'breaker_error_rate'), 0.5);
    window_secs float8 := coalesce((SELECT value::float8 FROM postrunner.settings WHERE name = 'breaker_window_secs'), 60);
    min_attempts integer := coalesce((SELECT value::integer FROM postrunner.settings WHERE name = 'breaker_min_attempts'), 20);
    was postrunner.health_state;
    now_state postrunner.health_state;
    too_many boolean;
BEGIN
    SELECT state INTO was FROM postrunner.provider_health WHERE provider = p_provider FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- The error rate over the window, from the ledger (closed attempts only).
    SELECT count(*) >= min_attempts
           AND count(*) FILTER (WHERE outcome IN ('released', 'failed')) >= max_rate * count(*)
      INTO too_many
      FROM postrunner.send_attempts
     WHERE provider = p_provider
       AND reserved_at > now() - make_interval(secs => window_secs)
       AND outcome <> 'reserved';
    UPDATE postrunner.provider_health
       SET consecutive_failures = consecutive_failures + 1,
           state = CASE WHEN consecutive_failures + 1 >= threshold OR too_many THEN 'down' ELSE 'degraded' END::postrunner.health_state,
           -- Going down, or failing a trial while down, starts a (new) cool-down.
           since = CASE WHEN consecutive_failures + 1 >= threshold OR too_many OR state <> 'degraded' THEN now() ELSE since END,
           last_error = left(p_error, 500),
           last_failure_at = now(),
           paused_until = CASE WHEN p_retry_after IS NULL THEN paused_until
                               ELSE greatest(paused_until, now() + p_retry_after) END
     WHERE provider = p_provider
    RETURNING state INTO now_state;
    IF now_state IS DISTINCT FROM was THEN
        INSERT INTO postrunner.provider_health_history (provider, state, reason)
        VALUES (p_provider, now_state, left(p_error, 500));
    END IF;
    RETURN now_state;
END
$fn$;

-- Sends through p_providers succeeded: they are up. Writes only rows that change, so
-- the steady state (all up) costs an index probe per provider and no write.
CREATE FUNCTION postrunner.record_provider_successes(p_providers text[])
RETURNS void
LANGUAGE sql AS $fn$
WITH old AS (
    SELECT provider, state
      FROM postrunner.provider_health
     WHERE provider = ANY (p_providers) AND (state <> 'up' OR consecutive_failures > 0)
       FOR UPDATE
),
changed AS (
    UPDATE postrunner.provider_health h
       SET state = 'up',
           consecutive_failures = 0,
           since = CASE WHEN old.state <> 'up' THEN now() ELSE h.since END,
           last_success_at = now()
      FROM old
     WHERE h.provider = old.provider
    RETURNING h.provider, old.state AS was
)
INSERT INTO postrunner.provider_health_history (provider, state, reason)
SELECT provider, 'up', 'sends succeed again' FROM changed WHERE was <> 'up'
$fn$;

-- Health probes (the scheduler's system.probe_providers every 30 s): a cheap
-- authenticated call per enabled provider, its latency and outcome.
CREATE TABLE postrunner.provider_probes (
    provider   text NOT NULL REFERENCES postrunner.providers (name) ON UPDATE CASCADE ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    latency_ms double precision NOT NULL,
    ok         boolean NOT NULL,
    error      text
);
CREATE INDEX provider_probes_provider_at_idx ON postrunner.provider_probes (provider, at);

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('probe_providers', '*/30 * * * * *', 'system.probe_providers', 80);

-- Provider health for psql: state, since when, failures, the last error, probe latency
-- (p50 and p95 over the last 15 minutes) and the last hour of sends from the ledger.
CREATE VIEW postrunner.report_provider_health AS
SELECT p.name AS provider,
       p.kind,
       p.enabled,
       h.state,
       h.since,
       h.consecutive_failures,
       h.last_error,
       h.last_failure_at,
       h.last_success_at,
       CASE WHEN h.state = 'down' THEN h.since + postrunner.breaker_cooldown() END AS trial_at,
       CASE WHEN h.paused_until > now() THEN h.paused_until END AS paused_until,
       l.latency_p50_ms,
       l.latency_p95_ms,
       l.probes_failed,
       s.sent_last_hour,
       s.failed_last_hour
  FROM postrunner.providers p
  LEFT JOIN postrunner.provider_health h ON h.provider = p.name
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE a.outcome = 'sent') AS sent_last_hour,
              count(*) FILTER (WHERE a.outcome IN ('released', 'failed')) AS failed_last_hour
         FROM postrunner.send_attempts a
        WHERE a.provider = p.name AND a.reserved_at > now() - interval '1 hour') s
 CROSS JOIN LATERAL (
       SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.ok))::numeric, 1) AS latency_p50_ms,
              round((percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.ok))::numeric, 1) AS latency_p95_ms,
              count(*) FILTER (WHERE NOT r.ok) AS probes_failed
         FROM postrunner.provider_probes r
        WHERE r.provider = p.name AND r.at > now() - interval '15 minutes') l;

-- Alerts: one row per firing, resolved in place, so each change of state is recorded
-- once (notification comes later). At most one firing alert per kind and subject.
CREATE TABLE postrunner.alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    subject     text NOT NULL,
    state       text NOT NULL DEFAULT 'firing' CHECK (state IN ('firing', 'resolved')),
    detail      text,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE UNIQUE INDEX alerts_one_firing_idx ON postrunner.alerts (kind, subject) WHERE state = 'firing';

INSERT INTO postrunner.settings (name, value, note) VALUES
    ('alert_provider_down_secs', '300', 'a provider down this long raises a provider_down alert');

-- Fires `provider_down` for providers down longer than alert_provider_down_secs, and
-- resolves the firing ones whose provider is no longer down. Safe to run from several
-- schedulers at once (the unique index makes a second firing a no-op). Returns how
-- many alerts fired and resolved.
CREATE FUNCTION postrunner.evaluate_alerts(OUT fired integer, OUT resolved integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    after interval := make_interval(secs => coalesce(
        (SELECT value::float8 FROM postrunner.settings WHERE name = 'alert_provider_down_secs'), 300));
BEGIN
    INSERT INTO postrunner.alerts (kind, subject, detail)
    SELECT 'provider_down', h.provider,
           format('%s down since %s: %s', h.provider, h.since, coalesce(h.last_error, 'no error recorded'))
      FROM postrunner.provider_health h
      JOIN postrunner.providers p ON p.name = h.provider AND p.enabled
     WHERE h.state = 'down' AND h.since <= now() - after
    ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    GET DIAGNOSTICS fired = ROW_COUNT;

    UPDATE postrunner.alerts a
       SET state = 'resolved', resolved_at = now()
     WHERE a.kind = 'provider_down' AND a.state = 'firing'
       AND NOT EXISTS (SELECT 1 FROM postrunner.provider_health h JOIN postrunner.providers p ON p.name = h.provider
                        WHERE h.provider = a.subject AND h.state = 'down' AND p.enabled);
    GET DIAGNOSTICS resolved = ROW_COUNT;
END
$fn$;

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('evaluate_alerts', '*/15 * * * * *', 'system.evaluate_alerts', 80);

CREATE VIEW postrunner.report_alerts AS
SELECT kind, subject, state, detail, fired_at, resolved_at,
       coalesce(resolved_at, now()) - fired_at AS lasted
  FROM postrunner.alerts
 ORDER BY state = 'firing' DESC, fired_at DESC;
