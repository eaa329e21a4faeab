-- Step 3 of the routed claim (route_lane): the providers a lane's direction may use
-- now, with what each may still take in this claim, and the claim's instant.
--
-- A provider is usable when it is enabled, the direction may use it, it is not paused
-- (Retry-After), and it is up, degraded (half weight) or down with its cool-down over:
-- then it is on trial (half weight), and each cool-down period admits
-- breaker_trial_sends trial sends across all workers, counted on its provider_health row.
--
-- Locks, all SKIP LOCKED (a claim never waits; a provider whose row another claim holds
-- sits this claim out): the provider_usage rows of providers with a rate or a budget,
-- and the provider_health rows of providers on trial.
--
-- The claim's instant is read after those locks, from the clock (or the simulated
-- `p_now` of tests), and is never earlier than the minute a counter already holds: a
-- claim whose transaction began at 12:00:59.9 and reaches the counter after a 12:01
-- claim committed counts in 12:01 instead of from zero, so a counter never moves
-- backwards (tests/boundaries.rs). Likewise never earlier than p_not_before: the
-- hour a mailbox group's counter already counts in (mailbox_groups.sql).
DROP FUNCTION IF EXISTS postrunner.lane_providers(text, text, integer, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION postrunner.lane_providers(
    p_client text, p_direction text, p_want integer, p_at timestamptz, p_now timestamptz, p_not_before timestamptz,
    OUT providers postrunner.route_provider[], OUT claim_at timestamptz, OUT all_locked boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    cooldown interval := postrunner.breaker_cooldown();
    max_trials integer := postrunner.setting_number('breaker_trial_sends', 5)::integer;
    usable text[];
    limited text[];
    on_trial text[];
    counted text[];
    admitted text[];
BEGIN
    SELECT coalesce(array_agg(p.name), '{}'),
           coalesce(array_agg(p.name) FILTER (WHERE p.per_minute IS NOT NULL OR p.monthly_budget IS NOT NULL), '{}'),
           coalesce(array_agg(p.name) FILTER (WHERE h.state = 'down'), '{}')
      INTO usable, limited, on_trial
      FROM postrunner.providers p
      JOIN postrunner.provider_health h ON h.provider = p.name
     WHERE p.enabled
       AND (h.state <> 'down' OR h.since <= p_at - cooldown)
       AND (h.paused_until IS NULL OR h.paused_until <= p_at)
       AND postrunner.direction_may_use(p_client, p_direction, p.name);

    counted := ARRAY(SELECT u.provider FROM postrunner.provider_usage u
                      WHERE u.provider = ANY (limited)
                        FOR UPDATE SKIP LOCKED);
    admitted := ARRAY(SELECT h.provider FROM postrunner.provider_health h
                       WHERE h.provider = ANY (on_trial) AND h.state = 'down'
                         FOR UPDATE SKIP LOCKED);
    all_locked := cardinality(counted) = cardinality(limited) AND cardinality(admitted) = cardinality(on_trial);

    claim_at := greatest(coalesce(p_now, clock_timestamp()),
                         (SELECT max(u.minute) FROM postrunner.provider_usage u WHERE u.provider = ANY (counted)),
                         p_not_before);

    SELECT coalesce(array_agg(ROW(
               p.name,
               coalesce(dp.weight, p.weight)::float8 * CASE WHEN h.state = 'up' THEN 1 ELSE 0.5 END,
               greatest(0, least(
                   p_want,
                   p.per_minute - CASE WHEN u.minute = date_trunc('minute', claim_at) THEN u.sent_in_minute ELSE 0 END,
                   postrunner.budget_messages(p.monthly_budget, p.monthly_fee, p.price_per_1000)
                       - CASE WHEN p.monthly_budget IS NULL THEN 0
                              WHEN u.month = postrunner.utc_month(claim_at) THEN u.sent_in_month
                              ELSE postrunner.provider_month_sends(p.name, postrunner.utc_month(claim_at)) END,
                   CASE WHEN h.state = 'down'
                        THEN max_trials - CASE WHEN h.trial_window_at > claim_at - cooldown THEN h.trial_sends ELSE 0 END
                   END)),
               h.state = 'down')::postrunner.route_provider ORDER BY p.name), '{}')
      INTO providers
      FROM postrunner.providers p
      JOIN postrunner.provider_health h ON h.provider = p.name
      LEFT JOIN postrunner.provider_usage u ON u.provider = p.name
      LEFT JOIN postrunner.direction_providers dp
             ON (dp.client, dp.direction, dp.provider) = (p_client, p_direction, p.name)
     WHERE p.name = ANY (usable)
       AND (p.name <> ALL (limited) OR p.name = ANY (counted))
       AND (h.state <> 'down' OR p.name = ANY (admitted));
END
$fn$;
