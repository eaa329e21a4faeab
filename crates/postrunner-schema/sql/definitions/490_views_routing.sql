-- Routing reports for psql and the read-only role. Part of the public interface (see
-- sql/README.md and sql/reports.sql).
--
-- Each shows a login only the clients it may act for (sql/definitions/470_security_tenancy.sql): the
-- test `(SELECT may_act_for(NULL)) OR client = ANY ((SELECT bound_clients()))` is
-- evaluated once per query, not per row. What belongs to no single client (a
-- provider's total spend) needs access to every client.
--
-- Locks: none.
--
-- Every view here is a security barrier: a login's own WHERE clause (a cast that fails
-- on a value, a function of its own that prints its arguments) runs only on the rows
-- the view's filter lets through, never before it (tests/tenancy.rs,
-- no_view_a_bound_login_reads_leaks_another_clients_rows).

-- Capacity per sender address, today in its client's time zone: the effective limit
-- (warm-up applied), what it reserved today, what is left, and when it may send next.
CREATE OR REPLACE VIEW postrunner.report_capacity WITH (security_barrier) AS
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
                                 THEN u.sent_on_day ELSE 0 END AS sent_today) t
 WHERE (SELECT postrunner.may_act_for(NULL)) OR a.client = ANY ((SELECT postrunner.bound_clients())::text[]);

-- The same rolled up per provider, per client and per direction (active addresses
-- only; a direction counts the addresses of the providers it may use).
CREATE OR REPLACE VIEW postrunner.report_capacity_rollup WITH (security_barrier) AS
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
 WHERE EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                WHERE (dp.client, dp.direction, dp.provider) = (d.client, d.name, r.provider))
    OR NOT EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                    WHERE (dp.client, dp.direction) = (d.client, d.name))
 GROUP BY d.client, d.name;

-- Why messages wait: per lane (a direction, and where they apply its recipients' time
-- zone and mailbox group), the messages ready to go, and for a gated lane the reason
-- and the moment it may send again (window, pacing, daily_limit, provider_rate,
-- budget, provider_down, provider_disabled, no_address, no_provider, paused,
-- mailbox_group, mailbox_lookup), or
-- 'unsubscribe' for a bulk client while no live worker signs one-click unsubscribe
-- links (claim_messages.sql).
CREATE OR REPLACE VIEW postrunner.report_blocked WITH (security_barrier) AS
WITH signing AS (
    SELECT EXISTS (SELECT 1 FROM postrunner.processes p
                    WHERE p.role = 'worker' AND p.signs_unsubscribe
                      AND p.heartbeat_at > now() - 3 * p.heartbeat_interval) AS live
)
SELECT l.client,
       l.direction,
       w.waiting,
       w.oldest_waiting,
       CASE WHEN l.ready_at > now() THEN l.waiting_for
            WHEN c.bulk AND NOT s.live THEN 'unsubscribe' END                                     AS waiting_for,
       CASE WHEN l.ready_at > now() AND l.ready_at < 'infinity' THEN l.ready_at END               AS until,
       CASE WHEN l.ready_at > now() THEN l.waiting_detail
            WHEN c.bulk AND NOT s.live
            THEN 'the client sends bulk mail and no live worker signs one-click unsubscribe links: '
                 'run workers with --unsubscribe-url (and POSTRUNNER_UNSUBSCRIBE_KEY), or mark the client bulk = false'
       END                                                                                        AS detail,
       nullif(l.recipient_zone, '')                                                               AS recipient_zone,
       nullif(l.mailbox_group, '')                                                                AS mailbox_group
  FROM postrunner.lanes l
  JOIN postrunner.clients c ON c.name = l.client
 CROSS JOIN signing s
 CROSS JOIN LATERAL (SELECT count(*) AS waiting, now() - min(j.run_at) AS oldest_waiting
                       FROM postrunner.jobs j WHERE j.lane = l.id AND j.state = 'available') w
 WHERE (SELECT postrunner.may_act_for(NULL)) OR l.client = ANY ((SELECT postrunner.bound_clients())::text[]);

-- Sends per address, provider, client, direction and client-local day, from the ledger
-- (what providers accepted; attempts still in flight or whose outcome is unknown are
-- counted separately, since they used capacity).
CREATE OR REPLACE VIEW postrunner.report_daily_volume WITH (security_barrier) AS
SELECT day, client, direction, provider, from_address AS address,
       count(*) FILTER (WHERE outcome = 'sent')                      AS sent,
       count(*) FILTER (WHERE outcome IN ('reserved', 'uncertain', 'lost', 'failed')) AS uncertain,
       count(*) FILTER (WHERE outcome = 'released')                  AS released
  FROM postrunner.send_attempts
 WHERE (SELECT postrunner.may_act_for(NULL)) OR client = ANY ((SELECT postrunner.bound_clients())::text[])
 GROUP BY day, client, direction, provider, from_address;

-- Spend per UTC month (this one and the eleven before) per provider: its plan's fixed
-- fee plus price per 1,000 messages reserved, against the hard monthly budget
-- (budget_used: the share spent; budget_reached: the hard stop is in effect, the claim
-- routes nothing more to it this month), and for this month a straight-line forecast
-- to its end. Per client, the same split by who sent (the fee is the provider's). Read
-- from the monthly rollups plus the ledger rows not rolled up yet
-- (sql/definitions/440_metrics_rollups.sql), never a scan of the ledger.
CREATE OR REPLACE VIEW postrunner.report_cost WITH (security_barrier) AS
WITH month AS (
    SELECT postrunner.utc_month(now()) AS current,
           extract(epoch FROM (postrunner.utc_month(now()) + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                              - postrunner.utc_month(now())::timestamp AT TIME ZONE 'UTC') AS length_secs,
           greatest(extract(epoch FROM now() - postrunner.utc_month(now())::timestamp AT TIME ZONE 'UTC'), 1) AS elapsed_secs
),
used AS (
    SELECT m.month, m.provider, m.client, m.used AS messages
      FROM postrunner.monthly_sends((postrunner.utc_month(now()) - interval '11 months')::date) m
),
months AS (
    SELECT DISTINCT u.month, u.provider FROM used u
    UNION
    SELECT (SELECT current FROM month), p.name FROM postrunner.providers p
),
per_provider AS (
    SELECT ms.month, p.name AS provider, coalesce(sum(u.messages), 0)::bigint AS messages,
           p.monthly_fee + coalesce(sum(u.messages), 0) * p.price_per_1000 / 1000 AS spend,
           p.monthly_fee, p.price_per_1000, p.monthly_budget
      FROM months ms
      JOIN postrunner.providers p ON p.name = ms.provider
      LEFT JOIN used u ON u.provider = ms.provider AND u.month = ms.month
     GROUP BY ms.month, p.name
)
SELECT 'provider' AS level, pp.provider, NULL::text AS client, pp.messages,
       round(pp.spend, 2) AS spend, pp.monthly_budget AS budget,
       round(CASE WHEN pp.month = m.current
                  THEN pp.monthly_fee + (pp.spend - pp.monthly_fee) * m.length_secs / m.elapsed_secs
                  ELSE pp.spend END, 2) AS projected,
       pp.monthly_budget IS NOT NULL AND pp.spend + pp.price_per_1000 / 1000 > pp.monthly_budget AS budget_reached,
       pp.month,
       pp.monthly_fee AS fee,
       pp.price_per_1000,
       round(pp.spend / nullif(pp.monthly_budget, 0), 4) AS budget_used
  FROM per_provider pp, month m
 WHERE (SELECT postrunner.may_act_for(NULL))
UNION ALL
SELECT 'client', u.provider, u.client, u.messages,
       round(u.messages * p.price_per_1000 / 1000, 2), NULL,
       round(u.messages * p.price_per_1000 / 1000
             * CASE WHEN u.month = m.current THEN m.length_secs / m.elapsed_secs ELSE 1 END, 2),
       NULL, u.month, NULL, p.price_per_1000, NULL
  FROM used u JOIN postrunner.providers p ON p.name = u.provider, month m
 WHERE (SELECT postrunner.may_act_for(NULL)) OR u.client = ANY ((SELECT postrunner.bound_clients())::text[]);
