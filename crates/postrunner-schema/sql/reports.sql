-- Examples of reading postrunner with psql. The report_* views and `workers` are part
-- of the public interface and readable by postrunner_reader (sql/definitions/010_roles.sql); the last
-- two queries read tables and need postrunner_service.
--
--   psql "$DATABASE_URL" -f sql/reports.sql

-- How deep is the queue, and has anything been waiting too long?
SELECT kind, state, jobs, oldest_waiting, next_run_at
  FROM postrunner.report_queue
 ORDER BY kind, state;

-- Messages by client, direction and status.
SELECT client, direction, status, messages, oldest, newest
  FROM postrunner.report_outbox
 ORDER BY client, direction, status;

-- Why are messages waiting, and until when?
SELECT client, direction, waiting, waiting_for, until, detail
  FROM postrunner.report_blocked
 WHERE waiting > 0
 ORDER BY waiting DESC;

-- Capacity left today per provider, client and direction.
SELECT level, name, addresses, effective_limit, sent_today, remaining, next_slot_at
  FROM postrunner.report_capacity_rollup
 ORDER BY level, name;

-- The addresses with the least left today (and the ones still warming up).
SELECT client, provider, address, effective_limit, daily_limit, warmup_started_on, sent_today, remaining, next_slot_at
  FROM postrunner.report_capacity
 WHERE status = 'active'
 ORDER BY remaining, address
 LIMIT 20;

-- Yesterday's volume per client and provider (client-local days).
SELECT day, client, provider, sum(sent) AS sent, sum(uncertain) AS uncertain, sum(released) AS released
  FROM postrunner.report_daily_volume
 WHERE day >= current_date - 1
 GROUP BY day, client, provider
 ORDER BY day, client, provider;

-- Spend this month against each provider's hard budget, and where it is heading.
SELECT provider, messages, spend, budget, budget_used, projected, budget_reached
  FROM postrunner.report_cost
 WHERE level = 'provider' AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
 ORDER BY spend DESC;

-- Spend per client and month.
SELECT month, client, provider, messages, spend
  FROM postrunner.report_cost
 WHERE level = 'client'
 ORDER BY month DESC, client, provider;

-- Provider health, probe latency and the last hour of sends.
SELECT provider, state, since, consecutive_failures, latency_p50_ms, latency_p95_ms,
       sent_last_hour, failed_last_hour, trial_at, paused_until, last_error
  FROM postrunner.report_provider_health
 ORDER BY provider;

-- Alerts, firing first.
SELECT kind, subject, state, fired_at, resolved_at, lasted, detail
  FROM postrunner.report_alerts
 LIMIT 20;

-- Which postrunner processes are alive, and what are they running?
SELECT role, host, pid, version, concurrency, running_jobs, started_at, now() - heartbeat_at AS silent_for
  FROM postrunner.workers
 ORDER BY role, host, pid;

-- The last failures, with their error history (what an operator re-drives).
SELECT id, to_address, attempts, last_error, created_at
  FROM postrunner.outbox
 WHERE status = 'failed'
 ORDER BY created_at DESC
 LIMIT 20;

-- When did each periodic task last run, and when is it next due?
SELECT name, cron, kind, enabled, last_run_at, next_run_at
  FROM postrunner.schedules
 ORDER BY name;

-- Suppressions the feedback loop made this week, with what caused them.
SELECT client, address, reason, event_provider, event_kind, event_at, expires_at
  FROM postrunner.report_suppressions
 WHERE event_at > now() - interval '7 days'
 ORDER BY event_at DESC
 LIMIT 20;

-- Provider events per day and kind, and how many were for unknown messages.
SELECT provider, day, kind, bounce_class, events, unmatched
  FROM postrunner.report_events
 ORDER BY day DESC, provider, kind;
