-- Step 2 of the routed claim (route_lane): the lane's next messages, in claim order
-- ((-priority), run_at, id), with their outbox rows.
--
-- Locks: the jobs (FOR UPDATE SKIP LOCKED), then their outbox rows (FOR NO KEY UPDATE
-- SKIP LOCKED): the queue's lock order, and a claim never waits. A message whose row an
-- application holds is left for a later claim. Suppressed recipients end here as
-- 'suppressed' (their job deleted), using no capacity; a quarantine (soft bounces) only
-- until it expires.
--
-- Plan shape, whatever the statistics: the jobs are walked through jobs_lane_idx in its
-- own order (anything else would have to sort the whole lane), and the outbox rows are
-- then looked up one at a time by job id (a LATERAL subquery with a locking clause is
-- never flattened into a join), so a full outbox can never be hash-joined
-- (tests/plans.rs).
--
-- Returns the taken jobs in claim order.
CREATE OR REPLACE FUNCTION postrunner.lane_take_messages(p_lane integer, p_want bigint, p_at timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
-- Every statement here reaches its rows by key (or an index range, in index order): a
-- sequential scan is never right for them, whatever the statistics (tests/plans.rs).
SET enable_seqscan = off
AS $fn$
DECLARE
    candidates bigint[];
    taken bigint[];
    suppressed bigint[];
BEGIN
    candidates := ARRAY(
        SELECT j.id
          FROM postrunner.jobs j
         WHERE j.lane = p_lane AND j.state = 'available' AND j.run_at <= p_at
         ORDER BY (-j.priority), j.run_at, j.id
         LIMIT p_want
           FOR UPDATE SKIP LOCKED);
    IF cardinality(candidates) = 0 THEN
        RETURN candidates;
    END IF;

    SELECT coalesce(array_agg(c.job_id ORDER BY c.ord) FILTER (WHERE NOT m.suppressed), '{}'),
           array_agg(c.job_id) FILTER (WHERE m.suppressed)
      INTO taken, suppressed
      FROM unnest(candidates) WITH ORDINALITY AS c(job_id, ord)
     CROSS JOIN LATERAL (
           SELECT EXISTS (SELECT 1 FROM postrunner.suppressions s
                           WHERE s.client = o.client AND lower(s.address) = lower(o.to_address)
                             AND (s.expires_at IS NULL OR s.expires_at > p_at)) AS suppressed
             FROM postrunner.outbox o
            WHERE o.job_id = c.job_id
              FOR NO KEY UPDATE OF o SKIP LOCKED) m;

    IF suppressed IS NOT NULL THEN
        DELETE FROM postrunner.jobs WHERE id = ANY (suppressed);
        UPDATE postrunner.outbox
           SET status = 'suppressed', last_error = 'the recipient is suppressed for this client'
         WHERE job_id = ANY (suppressed);
    END IF;
    RETURN taken;
END
$fn$;
