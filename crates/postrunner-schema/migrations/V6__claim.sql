-- The claim, as a function: postrunner.claim_jobs(limit, worker, token, lease, now,
-- cursor_neg_priority, cursor_run_at, cursor_id). sql/queue/claim.sql calls it.
--
-- Why a LANGUAGE sql function rather than a prepared statement: a prepared statement
-- whose generic plan looks costlier than its custom plans is re-planned with the actual
-- parameter values on every execution, and planning with actual values makes PostgreSQL
-- probe the ends of jobs_claim_idx for selectivity, walking the dead entries a draining
-- queue leaves there until VACUUM. Measured on a 200,000-job drain: about 7 ms per claim
-- as a prepared statement against about 2.5 ms here, where the body is planned with
-- parameters as unknowns.
--
-- Claim up to $1 runnable jobs for worker $2 under lease token $3, leased for $4.
-- $5 is "now" (NULL means now()), so tests can move time without sleeping.
-- ($6, $7, $8) is a cursor in claim order, ((-priority), run_at, id): only jobs after it
-- are considered. A worker passes the last job it claimed while it drains a backlog,
-- so the index scan starts past the dead entries its earlier claims left behind, and
-- the minimum (-32768, '-infinity', min bigint) for a claim from the very start, which
-- it makes whenever a batch comes back short, a NOTIFY arrives, or a poll interval has
-- passed (a newly arrived job of higher priority sorts before the cursor).
--
-- Locks: FOR UPDATE SKIP LOCKED on the chosen rows, so concurrent claimers take
-- disjoint jobs without waiting for each other. The claim commits at once: no row
-- lock or transaction is held while the job runs; the lease (lease_expires_at,
-- extended by heartbeat.sql) is what keeps other workers away, and the token is what
-- lets only this claim complete the job.
--
-- An email job is claimed only together with its outbox row, locked here with SKIP
-- LOCKED: the claim then never waits on an application holding that row (a cancel in
-- progress, a long transaction), and the status mirror trigger that writes 'sending'
-- finds the row already locked by us, so the claim can neither block nor deadlock.
CREATE FUNCTION postrunner.claim_jobs(
    bigint, uuid, uuid, interval, timestamptz, smallint, timestamptz, bigint
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE sql VOLATILE AS $claim$
WITH candidates AS (
    SELECT id, kind
      FROM postrunner.jobs
     WHERE state = 'available'
       AND run_at <= coalesce($5::timestamptz, now())
       AND ((-priority), run_at, id) > ($6::smallint, coalesce($7::timestamptz, '-infinity'), $8::bigint)
     ORDER BY (-priority), run_at, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
),
messages AS (
    SELECT job_id
      FROM postrunner.outbox
     WHERE job_id IN (SELECT id FROM candidates WHERE kind = 'email.send')
       FOR NO KEY UPDATE SKIP LOCKED
),
due AS (
    SELECT id FROM candidates WHERE kind <> 'email.send'
    UNION ALL
    SELECT job_id FROM messages
)
UPDATE postrunner.jobs AS j
   SET state = 'running',
       attempts = j.attempts + 1,
       leased_by = $2::uuid,
       lease_token = $3::uuid,
       lease_expires_at = coalesce($5::timestamptz, now()) + $4::interval,
       attempted_at = coalesce($5::timestamptz, clock_timestamp())
  FROM due
 WHERE j.id = due.id
RETURNING j.id, j.kind, j.args, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at, j.attempted_at
$claim$;
