-- Enqueue one job. $4 NULL means run now; a future run_at makes it 'scheduled'
-- (trigger jobs_schedule_future). A live job with the same unique key ($5) already
-- present makes this a no-op: no row is returned.
INSERT INTO postrunner.jobs (kind, args, priority, run_at, unique_key, max_attempts)
VALUES ($1, $2, $3, coalesce($4::timestamptz, now()), $5, coalesce($6, 4))
ON CONFLICT DO NOTHING
RETURNING id
