-- The database's metrics (docs/metrics.md, section 2): one row per series, (metric
-- without the postrunner_ prefix, labels, value). `postrunner web` serves them on
-- /metrics/database from a cached snapshot (src/metrics/database.rs), so however many
-- replicas run, one read per cache period.
--
-- Cost: no statement scans a whole ledger or outbox table. Queue depth reads the live
-- jobs; sends today come from address_usage; rates and spend from the rollups
-- (rollups.sql) plus the rows past their watermark; bad events through events_bad_idx.
--
-- Locks: none (reads).
CREATE OR REPLACE FUNCTION postrunner.metrics_snapshot()
RETURNS TABLE (metric text, labels jsonb, value float8)
LANGUAGE sql STABLE
SET search_path = pg_catalog, postrunner, pg_temp
-- The planner cannot know how few ledger rows are past the rollup watermark, so its
-- estimate crosses jit_above_cost, and compiling would take longer than the query
-- (190 ms of a 280 ms scrape in `postrunner bench metrics`).
SET jit = off
AS $$
WITH jobs AS (
    SELECT j.kind, j.state, count(*) AS n,
           min(j.run_at) FILTER (WHERE j.state = 'available' AND j.run_at <= now()) AS oldest_due
      FROM postrunner.jobs j GROUP BY j.kind, j.state
),
addr AS (
    SELECT u.address, u.client, u.provider, s.status = 'active' AS active,
           CASE WHEN u.day = postrunner.local_day(now(), c.time_zone) THEN u.sent_on_day ELSE 0 END AS sent_today,
           postrunner.effective_daily_limit(s.daily_limit, s.warmup_started_on, postrunner.local_day(now(), c.time_zone)) AS day_limit
      FROM postrunner.address_usage u
      JOIN postrunner.sender_addresses s ON s.address = u.address
      JOIN postrunner.clients c ON c.name = u.client
),
month AS (
    SELECT postrunner.utc_month(now()) AS starts,
           extract(epoch FROM (postrunner.utc_month(now()) + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                              - postrunner.utc_month(now())::timestamp AT TIME ZONE 'UTC') AS length_secs,
           greatest(extract(epoch FROM now() - postrunner.utc_month(now())::timestamp AT TIME ZONE 'UTC'), 1) AS elapsed_secs
),
spend AS (
    SELECT p.name AS provider, p.monthly_budget,
           p.monthly_fee + coalesce(sum(m.used), 0) * p.price_per_1000 / 1000 AS spend,
           p.monthly_fee
      FROM postrunner.providers p
      LEFT JOIN postrunner.monthly_sends((SELECT starts FROM month)) m
        ON m.provider = p.name AND m.month = (SELECT starts FROM month)
     GROUP BY p.name
),
windows AS (
    SELECT * FROM (VALUES ('24h', interval '24 hours'), ('7d', interval '7 days')) AS w(name, span)
),
sends AS (
    SELECT w.name AS win, s.client, s.direction, s.provider, s.sent
      FROM windows w CROSS JOIN LATERAL postrunner.sends_since(now() - w.span) s
),
bad_week AS (
    SELECT o.client, o.direction, o.provider, e.kind, e.occurred_at
      FROM postrunner.events e
      JOIN postrunner.outbox o ON o.id = e.message_id
     WHERE e.occurred_at > now() - interval '7 days'
       AND (e.kind = 'complained' OR (e.kind = 'bounced' AND e.bounce_class = 'hard'))
),
bad AS (
    SELECT w.name AS win, b.client, b.direction, b.provider, b.kind
      FROM windows w JOIN bad_week b ON b.occurred_at > now() - w.span
),
levels AS (
    SELECT win, 'provider' AS level, provider AS name, sent, NULL::postrunner.event_kind AS kind FROM sends
    UNION ALL SELECT win, 'client', client, sent, NULL FROM sends
    UNION ALL SELECT win, 'direction', client || '/' || direction, sent, NULL FROM sends
    UNION ALL SELECT win, 'provider', provider, 0, kind FROM bad WHERE provider IS NOT NULL
    UNION ALL SELECT win, 'client', client, 0, kind FROM bad
    UNION ALL SELECT win, 'direction', client || '/' || direction, 0, kind FROM bad
),
rates AS (
    SELECT win, level, name, sum(sent) AS sends,
           count(*) FILTER (WHERE kind = 'bounced') AS bounces,
           count(*) FILTER (WHERE kind = 'complained') AS complaints
      FROM levels GROUP BY win, level, name
)
SELECT 'queue_jobs', jsonb_build_object('kind', j.kind, 'state', j.state::text), j.n::float8
  FROM jobs j
UNION ALL
SELECT 'queue_oldest_waiting_seconds', jsonb_build_object('kind', j.kind),
       extract(epoch FROM now() - j.oldest_due)::float8
  FROM jobs j WHERE j.oldest_due IS NOT NULL
UNION ALL
SELECT 'address_sends_today', jsonb_build_object('address', a.address, 'provider', a.provider, 'client', a.client),
       a.sent_today FROM addr a
UNION ALL
SELECT 'provider_sends_today', jsonb_build_object('provider', a.provider), sum(a.sent_today) FROM addr a GROUP BY a.provider
UNION ALL
SELECT 'client_sends_today', jsonb_build_object('client', a.client), sum(a.sent_today) FROM addr a GROUP BY a.client
UNION ALL
SELECT 'capacity_left_today', jsonb_build_object('client', a.client, 'provider', a.provider),
       sum(greatest(a.day_limit - a.sent_today, 0)) FILTER (WHERE a.active)
  FROM addr a GROUP BY a.client, a.provider
UNION ALL
SELECT 'capacity_today', jsonb_build_object('client', a.client, 'provider', a.provider),
       coalesce(sum(a.day_limit) FILTER (WHERE a.active), 0)
  FROM addr a GROUP BY a.client, a.provider
UNION ALL
SELECT 'provider_health', jsonb_build_object('provider', h.provider, 'state', h.state::text), 1
  FROM postrunner.provider_health h
UNION ALL
SELECT 'provider_up', jsonb_build_object('provider', h.provider),
       CASE h.state WHEN 'up' THEN 1 WHEN 'degraded' THEN 0.5 ELSE 0 END
  FROM postrunner.provider_health h
UNION ALL
SELECT 'provider_latency_seconds', jsonb_build_object('provider', p.provider), p.latency_ms / 1000.0
  FROM postrunner.provider_health h
 CROSS JOIN LATERAL (SELECT r.provider, r.latency_ms FROM postrunner.provider_probes r
                      WHERE r.provider = h.provider ORDER BY r.at DESC LIMIT 1) p
UNION ALL
SELECT 'bounce_rate', jsonb_build_object('level', r.level, 'name', r.name, 'window', r.win),
       r.bounces::float8 / r.sends
  FROM rates r WHERE r.sends > 0
UNION ALL
SELECT 'complaint_rate', jsonb_build_object('level', r.level, 'name', r.name, 'window', r.win),
       r.complaints::float8 / r.sends
  FROM rates r WHERE r.sends > 0
UNION ALL
SELECT 'month_spend_dollars', jsonb_build_object('provider', s.provider), s.spend FROM spend s
UNION ALL
SELECT 'month_budget_dollars', jsonb_build_object('provider', s.provider), s.monthly_budget
  FROM spend s WHERE s.monthly_budget IS NOT NULL
UNION ALL
SELECT 'month_forecast_dollars', jsonb_build_object('provider', s.provider),
       s.monthly_fee + (s.spend - s.monthly_fee) * m.length_secs / m.elapsed_secs
  FROM spend s, month m
UNION ALL
SELECT 'alerts_firing', jsonb_build_object('kind', a.kind), count(*) FROM postrunner.alerts a
 WHERE a.state = 'firing' GROUP BY a.kind
UNION ALL
SELECT 'workers_live', jsonb_build_object('role', r.role),
       (SELECT count(*) FROM postrunner.processes p
         WHERE p.role = r.role AND p.heartbeat_at > now() - 3 * p.heartbeat_interval)
  FROM (VALUES ('worker'), ('scheduler'), ('web')) AS r(role)
UNION ALL
SELECT 'backup_last_success_timestamp_seconds', '{}'::jsonb,
       coalesce((SELECT extract(epoch FROM max(b.verified_at)) FROM postrunner.backups b WHERE b.status = 'verified'), 0)::float8
$$;
