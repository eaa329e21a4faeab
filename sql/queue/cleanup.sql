-- Periodic housekeeping: forget processes silent for a day, schedule history older than
-- a week, and discarded or cancelled jobs finalized more than $1 ago (their messages'
-- outcome stays in postrunner.outbox).
WITH processes AS (
    DELETE FROM postrunner.processes WHERE heartbeat_at < now() - interval '1 day' RETURNING 1
), runs AS (
    DELETE FROM postrunner.schedule_runs WHERE recorded_at < now() - interval '7 days' RETURNING 1
), jobs AS (
    DELETE FROM postrunner.jobs
     WHERE state IN ('discarded', 'cancelled') AND finalized_at < now() - $1::interval
    RETURNING 1
)
SELECT (SELECT count(*) FROM processes) AS processes,
       (SELECT count(*) FROM runs) AS schedule_runs,
       (SELECT count(*) FROM jobs) AS jobs
