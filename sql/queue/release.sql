-- Give back jobs a stopping worker will not finish: each (id $1[i], token $2[i]) becomes
-- available at once for another replica. A job that never started ($3[i] false: it was
-- prefetched) does not count the attempt; one interrupted mid-run ($3[i] true: the grace
-- period ran out) does, and is discarded if that was its last. One NOTIFY wakes idle
-- workers so another replica picks the jobs up without waiting for its poll.
WITH released AS (
    UPDATE postrunner.jobs AS j
       SET state = CASE WHEN r.started AND j.attempts >= j.max_attempts
                        THEN 'discarded' ELSE 'available' END::postrunner.job_state,
           attempts = CASE WHEN r.started THEN j.attempts ELSE greatest(j.attempts - 1, 0) END,
           last_error = CASE WHEN r.started THEN 'interrupted: the worker stopped before the attempt finished'
                             ELSE j.last_error END,
           finalized_at = CASE WHEN r.started AND j.attempts >= j.max_attempts THEN now() END,
           run_at = now(),
           leased_by = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM unnest($1::bigint[], $2::uuid[], $3::bool[]) AS r(id, lease_token, started)
     WHERE j.id = r.id
       AND j.lease_token = r.lease_token
       AND j.state = 'running'
    RETURNING j.id
)
SELECT count(*) AS released,
       (count(*) > 0 AND pg_notify('postrunner_jobs', '') IS NULL) AS notified
  FROM released
