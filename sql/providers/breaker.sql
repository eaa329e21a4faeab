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
--
-- Locks: the provider's provider_health row (FOR UPDATE), briefly.

-- How long a provider that went down gets no traffic before trial sends
-- (settings 'breaker_cooldown_secs', default 30).
CREATE OR REPLACE FUNCTION postrunner.breaker_cooldown() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => coalesce((SELECT value::float8 FROM postrunner.settings
                                            WHERE name = 'breaker_cooldown_secs'), 30))
$$;

-- A send through p_provider failed because of the provider; p_retry_after is its own
-- hint of when to come back (NULL: none). Returns its new state.
CREATE OR REPLACE FUNCTION postrunner.record_provider_failure(p_provider text, p_error text, p_retry_after interval DEFAULT NULL)
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
CREATE OR REPLACE FUNCTION postrunner.record_provider_successes(p_providers text[])
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
