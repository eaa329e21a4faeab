-- The operator's summary (`postrunner status`, the web role's /status page): one jsonb
-- document built from the same snapshot as /metrics/database (snapshot.sql), plus the
-- open alerts and sends per hour over the last 24 hours. Cheap for the same reasons:
-- no whole-ledger scan (rollups, address_usage, live jobs only).
--
-- Locks: none (reads).
CREATE OR REPLACE FUNCTION postrunner.status_summary()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
WITH m AS (SELECT * FROM postrunner.metrics_snapshot()),
providers AS (
    SELECT p.name, h.state::text AS state, h.since, h.last_error,
           (SELECT m.value * 1000 FROM m WHERE m.metric = 'provider_latency_seconds' AND m.labels ->> 'provider' = p.name) AS latency_ms,
           coalesce((SELECT m.value FROM m WHERE m.metric = 'provider_sends_today' AND m.labels ->> 'provider' = p.name), 0) AS sends_today,
           (SELECT m.value FROM m WHERE m.metric = 'month_spend_dollars' AND m.labels ->> 'provider' = p.name) AS month_spend,
           (SELECT m.value FROM m WHERE m.metric = 'month_budget_dollars' AND m.labels ->> 'provider' = p.name) AS month_budget,
           (SELECT m.value FROM m WHERE m.metric = 'month_forecast_dollars' AND m.labels ->> 'provider' = p.name) AS month_forecast,
           (SELECT m.value FROM m WHERE m.metric = 'bounce_rate' AND m.labels @> jsonb_build_object('level', 'provider', 'name', p.name, 'window', '24h')) AS bounce_rate_24h,
           (SELECT m.value FROM m WHERE m.metric = 'complaint_rate' AND m.labels @> jsonb_build_object('level', 'provider', 'name', p.name, 'window', '24h')) AS complaint_rate_24h,
           p.enabled
      FROM postrunner.providers p
      LEFT JOIN postrunner.provider_health h ON h.provider = p.name
),
capacity AS (
    SELECT c.labels ->> 'client' AS client, sum(c.value) AS capacity_today,
           coalesce(sum(l.value), 0) AS left_today
      FROM m c
      LEFT JOIN m l ON l.metric = 'capacity_left_today' AND l.labels = c.labels
     WHERE c.metric = 'capacity_today'
     GROUP BY 1
),
queue AS (
    SELECT m.labels ->> 'state' AS state, sum(m.value) AS jobs
      FROM m WHERE m.metric = 'queue_jobs' GROUP BY 1
),
hours AS (
    SELECT h.hour, h.provider, h.sent FROM postrunner.hourly_sends(date_trunc('hour', now()) - interval '23 hours') h
)
SELECT jsonb_build_object(
    'generated_at', now(),
    'queue', jsonb_build_object(
        'by_state', coalesce((SELECT jsonb_object_agg(q.state, q.jobs) FROM queue q), '{}'),
        'email_waiting', coalesce((SELECT sum(m.value) FROM m WHERE m.metric = 'queue_jobs'
                                      AND m.labels ->> 'kind' = 'email.send' AND m.labels ->> 'state' IN ('available', 'scheduled')), 0),
        'oldest_waiting_seconds', (SELECT max(m.value) FROM m WHERE m.metric = 'queue_oldest_waiting_seconds')),
    'providers', coalesce((SELECT jsonb_agg(to_jsonb(p) ORDER BY p.name) FROM providers p), '[]'),
    'capacity', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.client) FROM capacity c), '[]'),
    'alerts', coalesce((SELECT jsonb_agg(jsonb_build_object('kind', a.kind, 'subject', a.subject, 'detail', a.detail, 'fired_at', a.fired_at)
                                         ORDER BY a.fired_at DESC)
                          FROM postrunner.alerts a WHERE a.state = 'firing'), '[]'),
    'sends_per_hour', coalesce((SELECT jsonb_agg(jsonb_build_object('hour', h.hour, 'provider', h.provider, 'sent', h.sent)
                                                 ORDER BY h.hour, h.provider) FROM hours h), '[]'),
    'workers', coalesce((SELECT jsonb_object_agg(m.labels ->> 'role', m.value) FROM m WHERE m.metric = 'workers_live'), '{}'),
    'last_backup', (SELECT jsonb_build_object('key', b.object_key, 'status', b.status, 'started_at', b.started_at,
                                              'verified_at', b.verified_at, 'size_bytes', b.size_bytes, 'error', b.error)
                      FROM postrunner.backups b WHERE b.status IN ('verified', 'failed', 'uploaded')
                     ORDER BY b.started_at DESC LIMIT 1)
)
$$;
