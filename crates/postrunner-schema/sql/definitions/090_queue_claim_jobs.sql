-- The generic claim: postrunner.claim_jobs(limit, worker, token, lease, now,
-- cursor_neg_priority, cursor_run_at, cursor_id) takes jobs without a lane (postrunner's
-- own work, benchmarks); email jobs are claimed routed (sql/definitions/320_routing_claim_messages.sql).
-- sql/statements/queue/claim.sql calls it.
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
-- Plan shape, whatever the statistics: the chosen ids come from jobs_claim_idx in its
-- own order (anything else would sort the whole backlog), and the UPDATE finds them by
-- primary key from that array. Joining the UPDATE to a CTE instead let the planner,
-- seeing LIMIT estimated at a tenth of a 50,000-job table, hash-join it against a
-- sequential scan of jobs: 25-30 ms a claim instead of about 2 (tests/plans.rs).
--
-- Locks: FOR UPDATE SKIP LOCKED on the chosen rows, so concurrent claimers take
-- disjoint jobs without waiting for each other. The claim commits at once: no row
-- lock or transaction is held while the job runs; the lease (lease_expires_at,
-- extended by heartbeat.sql) is what keeps other workers away, and the token is what
-- lets only this claim complete the job.
CREATE OR REPLACE FUNCTION postrunner.claim_jobs(
    bigint, uuid, uuid, interval, timestamptz, smallint, timestamptz, bigint
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE sql VOLATILE AS $claim$
UPDATE postrunner.jobs AS j
   SET state = 'running',
       attempts = j.attempts + 1,
       leased_by = $2::uuid,
       lease_token = $3::uuid,
       lease_expires_at = coalesce($5::timestamptz, now()) + $4::interval,
       attempted_at = coalesce($5::timestamptz, clock_timestamp())
 WHERE j.id = ANY (ARRAY(
           SELECT id
             FROM postrunner.jobs
            WHERE state = 'available'
              AND lane IS NULL
              AND run_at <= coalesce($5::timestamptz, now())
              AND ((-priority), run_at, id) > ($6::smallint, coalesce($7::timestamptz, '-infinity'), $8::bigint)
            ORDER BY (-priority), run_at, id
            LIMIT $1
              FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.kind, j.args, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at, j.attempted_at
$claim$;
