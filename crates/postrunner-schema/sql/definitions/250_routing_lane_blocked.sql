-- Why a lane cannot send now, and until when (report_blocked and the lane gate).
--
-- Locks: none (reads the configuration, health and usage rows as they are).

-- Why lane p_lane cannot send at p_at, and until when: per provider the direction may
-- use, the later of its provider-level block (disabled, down, rate, budget) and its
-- earliest address slot; the lane waits for the provider that frees first.
CREATE OR REPLACE FUNCTION postrunner.lane_blocked(p_lane integer, p_at timestamptz)
RETURNS TABLE (ready_at timestamptz, waiting_for text, waiting_detail text)
LANGUAGE sql STABLE AS $$
WITH lane AS (
    SELECT l.client, l.direction, c.time_zone AS client_tz, d.send_days, d.window_start, d.window_end,
           coalesce(d.time_zone, c.time_zone) AS window_tz
      FROM postrunner.lanes l
      JOIN postrunner.directions d ON (d.client, d.name) = (l.client, l.direction)
      JOIN postrunner.clients c ON c.name = l.client
     WHERE l.id = p_lane
),
providers AS (
    SELECT p.*, h.state AS health, h.since AS health_since, h.paused_until, h.trial_window_at, h.trial_sends, u.minute, u.sent_in_minute, u.month, u.sent_in_month
      FROM lane
      JOIN postrunner.providers p ON TRUE
      LEFT JOIN postrunner.provider_health h ON h.provider = p.name
      LEFT JOIN postrunner.provider_usage u ON u.provider = p.name
     WHERE postrunner.direction_may_use(lane.client, lane.direction, p.name)
),
per_provider AS (
    SELECT p.name,
           -- provider-level block
           CASE WHEN NOT p.enabled THEN 'infinity'::timestamptz
                -- Until its cool-down ends, or, on trial with this period's trial sends
                -- used, until the next period (a change of health wakes every lane too).
                WHEN p.health = 'down' THEN greatest(
                    p.health_since + postrunner.breaker_cooldown(),
                    CASE WHEN p.trial_window_at > p_at - postrunner.breaker_cooldown()
                              AND p.trial_sends >= postrunner.setting_number('breaker_trial_sends', 5)
                         THEN p.trial_window_at + postrunner.breaker_cooldown() END,
                    p_at)
                -- A counter may already hold a later minute than p_at's (never less).
                WHEN p.per_minute IS NOT NULL AND p.minute >= date_trunc('minute', p_at)
                     AND p.sent_in_minute >= p.per_minute THEN p.minute + interval '1 minute'
                WHEN p.paused_until > p_at THEN p.paused_until
                WHEN postrunner.budget_messages(p.monthly_budget, p.monthly_fee, p.price_per_1000) = 0
                     THEN 'infinity'::timestamptz
                WHEN p.monthly_budget IS NOT NULL AND p.month >= postrunner.utc_month(p_at)
                     AND p.sent_in_month >= postrunner.budget_messages(p.monthly_budget, p.monthly_fee, p.price_per_1000)
                     THEN (p.month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
           END AS blocked_until,
           CASE WHEN NOT p.enabled THEN 'provider_disabled'
                WHEN p.health = 'down' THEN 'provider_down'
                WHEN p.per_minute IS NOT NULL AND p.minute >= date_trunc('minute', p_at)
                     AND p.sent_in_minute >= p.per_minute THEN 'provider_rate'
                WHEN p.paused_until > p_at THEN 'provider_rate'
                ELSE 'budget'
           END AS provider_reason,
           (SELECT min(u.next_slot_at) FROM postrunner.address_usage u
             WHERE u.client = lane.client AND u.provider = p.name AND u.active) AS next_slot
      FROM providers p, lane
),
per_provider_wait AS (
    SELECT name,
           CASE WHEN next_slot IS NULL THEN 'infinity'::timestamptz
                ELSE greatest(coalesce(blocked_until, '-infinity'), next_slot) END AS until,
           CASE WHEN next_slot IS NULL THEN 'no_address'
                WHEN blocked_until IS NOT NULL AND blocked_until >= next_slot THEN provider_reason
                WHEN next_slot >= postrunner.next_day_start(p_at, (SELECT client_tz FROM lane)) THEN 'daily_limit'
                ELSE 'pacing'
           END AS reason
      FROM per_provider
)
SELECT until, reason, detail
  FROM (SELECT w.until, w.reason, format('%s: %s until %s', w.name, replace(w.reason, '_', ' '), w.until) AS detail
          FROM per_provider_wait w
        UNION ALL
        SELECT 'infinity', 'no_provider', 'no enabled provider is allowed for this direction'
         WHERE NOT EXISTS (SELECT 1 FROM per_provider_wait)) w
 ORDER BY until, detail
 LIMIT 1
$$;
