-- Routing reports for psql and the read-only role. Part of the public interface (see
-- sql/README.md and sql/reports.sql): later migrations change them with CREATE OR
-- REPLACE VIEW only.

-- Capacity per sender address, today in its client's time zone: the effective limit
-- (warm-up applied), what it reserved today, what is left, and when it may send next.
CREATE VIEW postrunner.report_capacity AS
SELECT a.client,
       a.provider,
       a.address,
       a.status,
       a.daily_limit,
       a.warmup_started_on,
       t.today,
       postrunner.effective_daily_limit(a.daily_limit, a.warmup_started_on, t.today)     AS effective_limit,
       t.sent_today,
       greatest(postrunner.effective_daily_limit(a.daily_limit, a.warmup_started_on, t.today)
                - t.sent_today, 0)                                                        AS remaining,
       CASE WHEN u.next_slot_at > now() THEN u.next_slot_at END                           AS next_slot_at,
       u.last_sent_at
  FROM postrunner.sender_addresses a
  JOIN postrunner.clients c ON c.name = a.client
  LEFT JOIN postrunner.address_usage u ON u.address = a.address
 CROSS JOIN LATERAL (SELECT postrunner.local_day(now(), c.time_zone) AS today,
                            CASE WHEN u.day = postrunner.local_day(now(), c.time_zone)
                                 THEN u.sent_on_day ELSE 0 END AS sent_today) t;

-- The same rolled up per provider, per client and per direction (active addresses
-- only; a direction counts the addresses of the providers it may use).
CREATE VIEW postrunner.report_capacity_rollup AS
SELECT 'provider' AS level, provider AS name, count(*) AS addresses,
       sum(effective_limit) AS effective_limit, sum(sent_today) AS sent_today, sum(remaining) AS remaining,
       min(next_slot_at) AS next_slot_at
  FROM postrunner.report_capacity WHERE status = 'active' GROUP BY provider
UNION ALL
SELECT 'client', client, count(*), sum(effective_limit), sum(sent_today), sum(remaining), min(next_slot_at)
  FROM postrunner.report_capacity WHERE status = 'active' GROUP BY client
UNION ALL
SELECT 'direction', d.client || '/' || d.name, count(r.address), sum(r.effective_limit), sum(r.sent_today),
       sum(r.remaining), min(r.next_slot_at)
  FROM postrunner.directions d
  JOIN postrunner.report_capacity r ON r.client = d.client AND r.status = 'active'
 WHERE postrunner.direction_may_use(d.client, d.name, r.provider)
 GROUP BY d.client, d.name;

-- Why messages wait: per direction, the messages ready to go, and for a gated lane the
-- reason and the moment it may send again (window, pacing, daily_limit, provider_rate,
-- budget, provider_down, provider_disabled, no_address, no_provider).
CREATE VIEW postrunner.report_blocked AS
SELECT l.client,
       l.direction,
       w.waiting,
       w.oldest_waiting,
       CASE WHEN l.ready_at > now() THEN l.waiting_for END                                        AS waiting_for,
       CASE WHEN l.ready_at > now() AND l.ready_at < 'infinity' THEN l.ready_at END               AS until,
       CASE WHEN l.ready_at > now() THEN l.waiting_detail END                                     AS detail
  FROM postrunner.lanes l
 CROSS JOIN LATERAL (SELECT count(*) AS waiting, now() - min(j.run_at) AS oldest_waiting
                       FROM postrunner.jobs j WHERE j.lane = l.id AND j.state = 'available') w;

-- Sends per address, provider, client, direction and client-local day, from the ledger
-- (what providers accepted; attempts still in flight or whose outcome is unknown are
-- counted separately, since they used capacity).
CREATE VIEW postrunner.report_daily_volume AS
SELECT day, client, direction, provider, from_address AS address,
       count(*) FILTER (WHERE outcome = 'sent')                      AS sent,
       count(*) FILTER (WHERE outcome IN ('reserved', 'lost', 'failed')) AS uncertain,
       count(*) FILTER (WHERE outcome = 'released')                  AS released
  FROM postrunner.send_attempts
 GROUP BY day, client, direction, provider, from_address;

-- Spend this month (UTC) per provider: monthly fee plus price per 1,000 messages
-- reserved, against the hard monthly budget, with a straight-line projection to the
-- end of the month. Per client, the same split by who sent (the fee is the provider's).
CREATE VIEW postrunner.report_cost AS
WITH month AS (
    SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS starts,
           (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' AS ends
),
used AS (
    SELECT s.provider, s.client, count(*) AS messages
      FROM postrunner.send_attempts s, month m
     WHERE s.reserved_at >= m.starts AND s.reserved_at < m.ends AND postrunner.counts_as_sent(s.outcome)
     GROUP BY s.provider, s.client
),
per_provider AS (
    SELECT p.name AS provider, coalesce(sum(u.messages), 0)::bigint AS messages,
           p.monthly_fee + coalesce(sum(u.messages), 0) * p.price_per_1000 / 1000 AS spend,
           p.monthly_fee, p.price_per_1000, p.monthly_budget
      FROM postrunner.providers p LEFT JOIN used u ON u.provider = p.name
     GROUP BY p.name
)
SELECT 'provider' AS level, pp.provider, NULL::text AS client, pp.messages,
       round(pp.spend, 2) AS spend, pp.monthly_budget AS budget,
       round(pp.monthly_fee + (pp.spend - pp.monthly_fee)
             * extract(epoch FROM m.ends - m.starts) / greatest(extract(epoch FROM now() - m.starts), 1), 2) AS projected,
       pp.monthly_budget IS NOT NULL AND pp.spend + pp.price_per_1000 / 1000 > pp.monthly_budget AS budget_reached
  FROM per_provider pp, month m
UNION ALL
SELECT 'client', u.provider, u.client, u.messages,
       round(u.messages * p.price_per_1000 / 1000, 2), NULL,
       round(u.messages * p.price_per_1000 / 1000
             * extract(epoch FROM m.ends - m.starts) / greatest(extract(epoch FROM now() - m.starts), 1), 2),
       NULL
  FROM used u JOIN postrunner.providers p ON p.name = u.provider, month m;
