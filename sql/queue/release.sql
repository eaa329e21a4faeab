-- Give back jobs a stopping worker could not finish within its grace period: they are
-- available again at once, the interrupted attempt is not counted, and one NOTIFY wakes
-- idle workers so another replica picks them up without waiting for its poll.
WITH released AS (
    UPDATE postrunner.jobs AS j
       SET state = 'available',
           attempts = greatest(j.attempts - 1, 0),
           run_at = now(),
           leased_by = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM unnest($1::bigint[], $2::uuid[]) AS r(id, lease_token)
     WHERE j.id = r.id
       AND j.lease_token = r.lease_token
       AND j.state = 'running'
    RETURNING j.id
)
SELECT count(*) AS released,
       (count(*) > 0 AND pg_notify('postrunner_jobs', '') IS NULL) AS notified
  FROM released
