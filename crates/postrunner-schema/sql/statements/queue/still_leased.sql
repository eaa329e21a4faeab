-- Which of the jobs $1 (id $1[i], token $2[i]) are still this worker's to finish: the
-- ones a completion could not lock (sql/statements/queue/lock_batch.sql) are either held by
-- another transaction for a moment (still ours: try again) or gone (their lease was
-- rescued: nothing to write). Reads without locking.
SELECT j.id
  FROM postrunner.jobs j
  JOIN unnest($1::bigint[], $2::uuid[]) AS b(id, lease_token) ON b.id = j.id AND b.lease_token = j.lease_token
 WHERE j.id = ANY ($1::bigint[]) AND j.state = 'running'
