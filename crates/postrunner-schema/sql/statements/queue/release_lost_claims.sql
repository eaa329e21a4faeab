-- Give back the jobs of claims whose reply never reached their worker: the connection
-- dropped after the claim committed (a failover, a cut), so the worker never saw them
-- and started none. $1 holds those claims' lease tokens, which the worker chose before
-- claiming. The jobs become available at once, their attempt not counted and their
-- reservations' capacity given back, as a prefetched job released at shutdown is
-- (postrunner.release_jobs, sql/definitions/240_routing_reservations.sql); without this
-- they would wait for their lease to expire and, being email, be held as uncertain
-- although nothing was sent.
--
-- Locks: the jobs, FOR UPDATE inside release_jobs (only rows still leased under these
-- tokens: a rescue that came first, or another worker's claim since, leaves nothing to
-- do). Reached through the running jobs' index, not a scan of the queue.
SELECT postrunner.release_jobs(coalesce(array_agg(id), '{}'),
                               coalesce(array_agg(lease_token), '{}'),
                               coalesce(array_agg(false), '{}')) AS released
  FROM postrunner.jobs
 WHERE state = 'running'
   AND lease_token = ANY ($1::uuid[])
