-- Provider health: a circuit breaker per provider (provider_health), fed by send
-- outcomes and health probes.
--
--   up        no recent provider failure: full weight
--   degraded  1 .. breaker_failures-1 consecutive provider failures: half weight; one
--             success brings it up
--   down      breaker_failures consecutive provider failures, or a share of at least
--             breaker_error_rate provider faults among the attempts closed in the last
--             breaker_window_secs (at least breaker_min_attempts of them): no traffic for
--             breaker_cooldown_secs; then it is on trial (half open): each cool-down
--             period admits breaker_trial_sends trial sends across all workers
--             (sql/definitions/280_routing_lane_providers.sql), breaker_trial_successes successful
--             trials (a good probe during the trial counts as one) bring it up, and one
--             provider failure takes it down for another cool-down.
--
-- "Provider failure" is SendError::Unavailable (5xx, 429, timeouts, refused or reset
-- connections, authentication, quota): the attempt's `fault` is 'provider'. A refused
-- recipient or a rejected message says nothing about the provider and never counts.
-- Every change of state is kept in provider_health_history, and wakes every lane
-- (trigger provider_health_wake_lanes, sql/definitions/210_routing_config_triggers.sql).
--
-- Locks: the provider's provider_health row (FOR UPDATE), briefly; the claim takes it
-- with SKIP LOCKED only while admitting trial sends.

-- How long a provider that went down gets no traffic before trial sends.
CREATE OR REPLACE FUNCTION postrunner.breaker_cooldown() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => postrunner.setting_number('breaker_cooldown_secs', 30))
$$;

-- A send or probe through p_provider failed because of the provider; p_retry_after is
-- its own hint of when to come back (NULL: none). Returns its new state.
CREATE OR REPLACE FUNCTION postrunner.record_provider_failure(p_provider text, p_error text, p_retry_after interval DEFAULT NULL)
RETURNS postrunner.health_state
LANGUAGE plpgsql AS $fn$
DECLARE
    threshold integer := postrunner.setting_number('breaker_failures', 3)::integer;
    max_rate float8 := postrunner.setting_number('breaker_error_rate', 0.5);
    window_secs float8 := postrunner.setting_number('breaker_window_secs', 60);
    min_attempts integer := postrunner.setting_number('breaker_min_attempts', 20)::integer;
    was postrunner.health_state;
    now_state postrunner.health_state;
    too_many boolean;
BEGIN
    SELECT state INTO was FROM postrunner.provider_health WHERE provider = p_provider FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- The share of provider faults among the attempts closed in the window.
    SELECT count(*) >= min_attempts AND count(*) FILTER (WHERE fault = 'provider') >= max_rate * count(*)
      INTO too_many
      FROM postrunner.send_attempts
     WHERE provider = p_provider
       AND reserved_at > now() - make_interval(secs => window_secs)
       AND outcome <> 'reserved';
    UPDATE postrunner.provider_health
       SET consecutive_failures = consecutive_failures + 1,
           state = CASE WHEN consecutive_failures + 1 >= threshold OR too_many OR state = 'down'
                        THEN 'down' ELSE 'degraded' END::postrunner.health_state,
           -- Going down, or failing while down (a trial), starts a (new) cool-down.
           since = CASE WHEN consecutive_failures + 1 >= threshold OR too_many OR state <> 'degraded'
                        THEN now() ELSE since END,
           trial_window_at = NULL,
           trial_sends = 0,
           trial_successes = 0,
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

-- Successes through p_providers, p_trials[i] of them trial sends (or good probes) of a
-- down provider on trial. A degraded provider is up again at once; a down one only
-- once breaker_trial_successes trials have succeeded, and only after its cool-down (a
-- send that was in flight when it went down proves nothing). Writes only the rows that
-- change, so the steady state (all up) costs an index probe per provider and no write.
CREATE OR REPLACE FUNCTION postrunner.record_successes(p_providers text[], p_trials integer[])
RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    -- The steady state: every provider up, nothing to write.
    IF NOT EXISTS (SELECT 1 FROM postrunner.provider_health h
                    WHERE h.provider = ANY (p_providers) AND (h.state <> 'up' OR h.consecutive_failures > 0)) THEN
        RETURN;
    END IF;
WITH given AS (
    SELECT provider, trials FROM unnest(p_providers, p_trials) AS g(provider, trials)
),
old AS (
    SELECT h.provider, h.state, h.trial_successes + g.trials AS successes,
           h.state = 'down' AND h.since <= now() - postrunner.breaker_cooldown() AS on_trial
      FROM postrunner.provider_health h
      JOIN given g ON g.provider = h.provider
     WHERE h.provider = ANY (p_providers) AND (h.state <> 'up' OR h.consecutive_failures > 0)
       FOR UPDATE OF h
),
decided AS (
    SELECT old.*,
           old.state <> 'down'
           OR (old.on_trial AND old.successes >= postrunner.setting_number('breaker_trial_successes', 3)) AS closes
      FROM old
),
changed AS (
    UPDATE postrunner.provider_health h
       SET state = CASE WHEN d.closes THEN 'up' ELSE h.state END,
           since = CASE WHEN d.closes AND h.state <> 'up' THEN now() ELSE h.since END,
           consecutive_failures = CASE WHEN d.closes THEN 0 ELSE h.consecutive_failures END,
           trial_successes = CASE WHEN d.closes THEN 0 WHEN d.on_trial THEN d.successes ELSE h.trial_successes END,
           trial_window_at = CASE WHEN d.closes THEN NULL ELSE h.trial_window_at END,
           trial_sends = CASE WHEN d.closes THEN 0 ELSE h.trial_sends END,
           last_success_at = now()
      FROM decided d
     WHERE h.provider = d.provider
    RETURNING h.provider, d.closes, d.state AS was
)
INSERT INTO postrunner.provider_health_history (provider, state, reason)
SELECT provider, 'up', CASE WHEN was = 'down' THEN 'trial sends succeed' ELSE 'sends succeed again' END
  FROM changed WHERE closes AND was <> 'up';
END
$fn$;

-- Sends recorded as sent (the completion transaction, sql/statements/outbox/record_sent.sql):
-- their providers' successes, counting the trial sends among them.
CREATE OR REPLACE FUNCTION postrunner.record_send_successes(p_attempt_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    providers text[];
    trials integer[];
BEGIN
    SELECT array_agg(x.provider), array_agg(x.trials)
      INTO providers, trials
      FROM (SELECT s.provider, count(*) FILTER (WHERE s.trial)::integer AS trials
              FROM postrunner.send_attempts s
             WHERE s.id = ANY (p_attempt_ids)
             GROUP BY s.provider) x;
    IF providers IS NOT NULL THEN
        PERFORM postrunner.record_successes(providers, trials);
    END IF;
END
$fn$;

-- A good health probe of each of p_providers: counts as one trial success of a down
-- provider on trial (so that a provider without traffic recovers too); never closes a
-- breaker alone.
CREATE OR REPLACE FUNCTION postrunner.record_provider_successes(p_providers text[])
RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM postrunner.record_successes(p_providers, array_fill(1, ARRAY[cardinality(p_providers)]));
END
$fn$;
