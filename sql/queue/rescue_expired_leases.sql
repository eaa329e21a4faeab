-- Return jobs whose lease expired (their worker died, hung, or lost the database for
-- longer than the lease) to the queue. The attempt that was lost counts; a job that has
-- used its last attempt is discarded instead. $1 is "now" (NULL means now()).
--
-- Locks: SKIP LOCKED, so a rescue never waits on (or deadlocks with) a worker that is
-- completing the same job at this moment; the worker's token then no longer matches
-- if the rescue won.
WITH expired AS (
    SELECT id
      FROM postrunner.jobs
     WHERE state = 'running'
       AND lease_expires_at < coalesce($1::timestamptz, now())
       FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE postrunner.jobs AS j
       SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'discarded' ELSE 'available' END::postrunner.job_state,
           run_at = coalesce($1::timestamptz, now()),
           last_error = 'lease expired: worker ' || j.leased_by || ' stopped heartbeating during attempt ' || j.attempts,
           errors = j.errors || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempts, 'at', coalesce($1::timestamptz, now()),
                        'error', 'lease expired: worker ' || j.leased_by || ' stopped heartbeating')),
           finalized_at = CASE WHEN j.attempts >= j.max_attempts THEN coalesce($1::timestamptz, now()) END,
           leased_by = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM expired
     WHERE j.id = expired.id
    RETURNING j.id, j.state
)
SELECT count(*) FILTER (WHERE state = 'available') AS requeued,
       count(*) FILTER (WHERE state = 'discarded') AS discarded,
       (count(*) FILTER (WHERE state = 'available') > 0 AND pg_notify('postrunner_jobs', '') IS NULL) AS notified
  FROM rescued
