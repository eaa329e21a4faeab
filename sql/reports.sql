-- Examples of reading postrunner with psql. The report_* views and `workers` are part
-- of the public interface and readable by postrunner_reader (sql/roles.sql); the last
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
