-- Lock what a completion transaction is about to write, without waiting: the batch's
-- jobs, each (id $1[i], token $2[i]) still this worker's and running, and the outbox
-- rows of the email jobs among them, in the queue's lock order (jobs, then outbox
-- rows). Returns every job of the batch that is still this worker's, and whether its
-- rows were locked: one that was not is held by another transaction at this instant
-- (typically an application's SELECT ... FOR UPDATE of its message), and its outcome is
-- written a moment later instead of the whole batch waiting on it. Jobs not returned
-- are no longer this worker's (their lease was rescued).
WITH batch AS (
    SELECT b.id, b.lease_token FROM unnest($1::bigint[], $2::uuid[]) AS b(id, lease_token)
),
mine AS (
    SELECT j.id, j.kind
      FROM postrunner.jobs j
      JOIN batch b ON b.id = j.id AND b.lease_token = j.lease_token
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'running'
       FOR UPDATE OF j SKIP LOCKED
),
messages AS (
    SELECT o.job_id
      FROM postrunner.outbox o
     WHERE o.job_id = ANY ($1::bigint[])
       AND o.job_id IN (SELECT id FROM mine WHERE kind = 'email.send')
       FOR NO KEY UPDATE OF o SKIP LOCKED
)
SELECT j.id,
       j.id IN (SELECT id FROM mine WHERE kind <> 'email.send' UNION ALL SELECT job_id FROM messages) AS locked
  FROM postrunner.jobs j
  JOIN batch b ON b.id = j.id AND b.lease_token = j.lease_token
 WHERE j.id = ANY ($1::bigint[]) AND j.state = 'running'
