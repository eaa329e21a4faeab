-- Provider health and alert reports for psql and the read-only role; they belong to no
-- single client, so a login needs access to every client to see them
-- (sql/definitions/470_security_tenancy.sql).
--
-- Locks: none.
--
-- Every view here is a security barrier: a login's own WHERE clause (a cast that fails
-- on a value, a function of its own that prints its arguments) runs only on the rows
-- the view's filter lets through, never before it (tests/tenancy.rs,
-- no_view_a_bound_login_reads_leaks_another_clients_rows).

-- Provider health for psql: state, since when, failures, the last error, probe latency
-- (p50 and p95 over the last 15 minutes) and the last hour of sends from the ledger.
CREATE OR REPLACE VIEW postrunner.report_provider_health WITH (security_barrier) AS
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
              count(*) FILTER (WHERE a.outcome IN ('released', 'uncertain', 'failed')) AS failed_last_hour
         FROM postrunner.send_attempts a
        WHERE a.provider = p.name AND a.reserved_at > now() - interval '1 hour') s
 CROSS JOIN LATERAL (
       SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.ok))::numeric, 1) AS latency_p50_ms,
              round((percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.ok))::numeric, 1) AS latency_p95_ms,
              count(*) FILTER (WHERE NOT r.ok) AS probes_failed
         FROM postrunner.provider_probes r
        WHERE r.provider = p.name AND r.at > now() - interval '15 minutes') l
 WHERE (SELECT postrunner.may_act_for(NULL));


CREATE OR REPLACE VIEW postrunner.report_alerts WITH (security_barrier) AS
SELECT kind, subject, state, detail, fired_at, resolved_at,
       coalesce(resolved_at, now()) - fired_at AS lasted
  FROM postrunner.alerts
 WHERE (SELECT postrunner.may_act_for(NULL))
 ORDER BY state = 'firing' DESC, fired_at DESC;

-- Alert notifications and how they went (sql/definitions/430_alerts_notifications.sql), newest first.
CREATE OR REPLACE VIEW postrunner.report_notifications WITH (security_barrier) AS
SELECT n.channel, c.kind AS channel_kind, a.kind AS alert, a.subject, n.transition, n.status,
       n.created_at, n.sent_at, n.last_error, j.attempts
  FROM postrunner.notifications n
  JOIN postrunner.notification_channels c ON c.name = n.channel
  JOIN postrunner.alerts a ON a.id = n.alert_id
  LEFT JOIN postrunner.jobs j ON j.id = n.job_id
 WHERE (SELECT postrunner.may_act_for(NULL))
 ORDER BY n.id DESC;
