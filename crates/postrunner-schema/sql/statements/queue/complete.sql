-- Complete a batch of jobs: each pair ($1[i], $2[i]) is a job id and the lease token
-- its worker claimed it with. Completed jobs are deleted here, in the completing
-- statement, so the hot table never accumulates finished rows.
--
-- The token guard means a worker whose lease expired and whose job was rescued (and
-- perhaps claimed again) completes nothing: the returned ids are the jobs that really
-- completed, and only they get their results recorded.
DELETE FROM postrunner.jobs AS j
 USING unnest($1::bigint[], $2::uuid[]) AS done(id, lease_token)
 WHERE j.id = done.id
   AND j.lease_token = done.lease_token
   AND j.state = 'running'
RETURNING j.id
