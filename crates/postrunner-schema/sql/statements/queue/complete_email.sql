-- Complete a batch of email jobs, each ($1[i], $2[i]) a job id and its lease token,
-- deleting only those whose outbox row this statement could lock without waiting
-- (FOR NO KEY UPDATE SKIP LOCKED): a message whose row an application holds at this
-- instant (its own SELECT ... FOR UPDATE) is left for a later write instead of stalling
-- the batch. The caller records the returned jobs' results in the same transaction
-- (sql/statements/outbox/record_sent.sql) and tries the others again shortly.
--
-- Locks: the outbox rows first, then the jobs (by the DELETE), against the queue's
-- usual order, because locking the jobs first too would double the cost of a
-- completion. Only postrunner locks jobs rows, and briefly: claims and heartbeats with
-- SKIP LOCKED (never waiting on the outbox rows held here); a rescue could, but only of
-- a job whose lease has expired, i.e. not this worker's any more; should it meet this
-- statement on the same message, PostgreSQL's deadlock detection ends one of them, and
-- either way the job runs once more and nothing is lost.
WITH messages AS (
    SELECT o.job_id
      FROM postrunner.outbox o
     WHERE o.job_id = ANY ($1::bigint[])
       FOR NO KEY UPDATE OF o SKIP LOCKED
)
DELETE FROM postrunner.jobs AS j
 USING unnest($1::bigint[], $2::uuid[]) AS done(id, lease_token)
 WHERE j.id = done.id
   AND j.lease_token = done.lease_token
   AND j.state = 'running'
   AND j.id IN (SELECT job_id FROM messages)
RETURNING j.id
