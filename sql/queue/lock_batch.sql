-- Lock the email jobs of a completion batch ($1) and their outbox rows, without
-- waiting, in the queue's lock order (jobs, then outbox rows). Returns the jobs whose
-- rows are now ours to write. One not returned is held by another transaction at this
-- instant (typically an application's SELECT ... FOR UPDATE of its message), or is no
-- longer in the queue: its outcome is written a moment later instead of the whole batch
-- waiting on it. The lease tokens are checked by the statements that write.
--
-- Only email jobs need this: applications can lock their messages, never jobs.
WITH jobs AS (
    SELECT j.id
      FROM postrunner.jobs j
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'running'
       FOR UPDATE SKIP LOCKED
)
SELECT o.job_id
  FROM postrunner.outbox o
 WHERE o.job_id = ANY ($1::bigint[])
   AND o.job_id IN (SELECT id FROM jobs)
   FOR NO KEY UPDATE OF o SKIP LOCKED
