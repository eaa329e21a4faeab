-- Return jobs whose lease expired (their worker died, hung, or lost the database for
-- longer than the lease) to the queue. The attempt that was lost counts; a job that has
-- used its last attempt is discarded instead. $1 is "now" (NULL means now()).
--
-- An email job is held instead ('held' until now + uncertain_wait_secs): its worker may
-- have handed the message to the provider before it died, so sending it again at once
-- could deliver it twice. The hold is decided by evidence or the client's duplicate
-- policy (sql/definitions/340_outbox_uncertain.sql); the status mirror closes its reservation
-- 'uncertain'.
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
       SET state = CASE WHEN j.kind = 'email.send' THEN 'held'
                        WHEN j.attempts >= j.max_attempts THEN 'discarded'
                        ELSE 'available' END::postrunner.job_state,
           run_at = coalesce($1::timestamptz, now())
                    + CASE WHEN j.kind = 'email.send' THEN postrunner.uncertain_wait() ELSE interval '0' END,
           last_error = 'lease expired: worker ' || j.leased_by || ' stopped heartbeating during attempt ' || j.attempts,
           errors = j.errors || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempts, 'at', coalesce($1::timestamptz, now()),
                        'error', 'lease expired: worker ' || j.leased_by || ' stopped heartbeating',
                        'uncertain', j.kind = 'email.send')),
           finalized_at = CASE WHEN j.kind <> 'email.send' AND j.attempts >= j.max_attempts
                               THEN coalesce($1::timestamptz, now()) END,
           leased_by = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM expired
     WHERE j.id = expired.id
    RETURNING j.id, j.state
)
SELECT count(*) FILTER (WHERE state = 'available') AS requeued,
       count(*) FILTER (WHERE state = 'discarded') AS discarded,
       count(*) FILTER (WHERE state = 'held') AS held,
       (count(*) FILTER (WHERE state = 'available') > 0 AND postrunner.notify_workers() IS NULL) AS notified
  FROM rescued
