-- Record a won tick: enqueue the schedule's job unless the previous run of the same
-- schedule is still pending (unique key 'schedule:<name>'), and log the tick either way.
WITH job AS (
    INSERT INTO postrunner.jobs (kind, args, priority, unique_key)
    VALUES ($2, $3, $4, 'schedule:' || $1)
    ON CONFLICT DO NOTHING
    RETURNING id
)
INSERT INTO postrunner.schedule_runs (schedule, tick_at, job_id, won_by)
SELECT $1, $5, (SELECT id FROM job), $6
RETURNING job_id
