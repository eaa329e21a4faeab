-- The routed claim: postrunner.claim_messages takes email jobs lane by lane and, in
-- the same transaction, gives each one a sender address and reserves its capacity
-- (route_lane). sql/queue/claim.sql calls it after the generic claim.
--
-- Why in the claim: the reservation then commits together with the lease. There is no
-- moment where a worker holds a message without a reservation, or a reservation without
-- a message, and no lock or transaction outlives the claim: the provider call happens
-- after the commit.
--
-- Planned generically (plan_cache_mode), like claim_jobs, so that planning never probes
-- index ends full of dead entries from a fast drain.

-- waiting, least recently served first. Fair between directions: each lane gets an
-- equal share of what is left of the limit, and the round-robin position moves on. A
-- lane is locked (SKIP LOCKED) only when it is served, so concurrent claimers spread
-- over the lanes; within one lane, routing is serial.
CREATE OR REPLACE FUNCTION postrunner.claim_messages(
    p_limit bigint, p_worker uuid, p_token uuid, p_lease interval, p_now timestamptz
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    at_ timestamptz := coalesce(p_now, now());
    lane_ids integer[];
    i integer;
    remaining bigint := p_limit;
    routed bigint;
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(l.id ORDER BY l.served_at, l.id) INTO lane_ids
      FROM (SELECT l.id, l.served_at FROM postrunner.lanes l
             WHERE l.ready_at <= at_
               AND EXISTS (SELECT 1 FROM postrunner.jobs j
                            WHERE j.lane = l.id AND j.state = 'available' AND j.run_at <= at_)
             ORDER BY l.served_at, l.id
             LIMIT 64) l;
    IF lane_ids IS NULL THEN
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(lane_ids) LOOP
        EXIT WHEN remaining <= 0;
        PERFORM FROM postrunner.lanes l WHERE l.id = lane_ids[i] AND l.ready_at <= at_ FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        RETURN QUERY SELECT * FROM postrunner.route_lane(
            lane_ids[i], ceil(remaining::numeric / (cardinality(lane_ids) - i + 1))::bigint,
            p_worker, p_token, p_lease, at_);
        GET DIAGNOSTICS routed = ROW_COUNT;
        remaining := remaining - routed;
    END LOOP;
END
$fn$;
