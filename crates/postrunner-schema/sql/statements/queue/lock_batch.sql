-- Lock the outbox rows of the failed email jobs of a completion batch ($1) without
-- waiting, before their failures are written (the status mirror updates those rows).
-- Returns the jobs whose rows are now ours to write; one not returned is held by
-- another transaction at this instant (typically an application's SELECT ... FOR
-- UPDATE of its message): its outcome is written a moment later instead of the whole
-- batch waiting on it. Lock order: as sql/statements/queue/complete_email.sql.
SELECT o.job_id
  FROM postrunner.outbox o
 WHERE o.job_id = ANY ($1::bigint[])
   FOR NO KEY UPDATE OF o SKIP LOCKED
