-- The routed claim: postrunner.claim_messages takes email jobs lane by lane and, in the
-- same transaction, gives each one a sender address and reserves its capacity
-- (route_lane.sql). sql/routing/claim.sql calls it; the generic claim of postrunner's
-- own jobs is a separate statement (sql/queue/claim.sql), so that routing trouble can
-- never stop rescue, probes or cleanup.
--
-- Why in the claim: the reservation then commits together with the lease. There is no
-- moment where a worker holds a message without a reservation, or a reservation without
-- a message, and no lock or transaction outlives the claim: the provider call happens
-- after the commit.
--
-- Lanes whose gate is open and that have messages waiting are served least recently
-- served first, each an equal share of what is left of the limit, so a big direction
-- cannot starve a small one. A lane is locked (SKIP LOCKED) only when it is served, so
-- concurrent claimers spread over the lanes; within one lane, routing is serial.
--
-- A bulk client's lanes (clients.bulk, the default) are served only by a claimer that
-- signs one-click unsubscribe links (p_signs_unsubscribe: `worker --unsubscribe-url`):
-- no message of theirs can leave without its RFC 8058 headers. The lanes are not gated
-- for it, so a signing worker takes them at once; report_blocked says 'unsubscribe'
-- while no live worker signs (tests/unsubscribe.rs).
--
-- Plans are generic (plan_cache_mode), so that planning never probes index ends full
-- of dead entries from a fast drain; "has messages waiting" is a one-row probe of
-- jobs_lane_idx per lane, in index order, so statistics cannot turn it into a scan of
-- the jobs table (tests/plans.rs).
DROP FUNCTION IF EXISTS postrunner.claim_messages(bigint, uuid, uuid, interval, timestamptz);
CREATE OR REPLACE FUNCTION postrunner.claim_messages(
    p_limit bigint, p_worker uuid, p_token uuid, p_lease interval, p_now timestamptz, p_signs_unsubscribe boolean
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
    lane_ids := ARRAY(
        SELECT l.id
          FROM postrunner.lanes l
         WHERE l.ready_at <= at_
           AND postrunner.lane_servable(l.client, p_signs_unsubscribe)
           AND EXISTS (SELECT 1 FROM postrunner.lane_next_job(l.id, at_))
         ORDER BY l.served_at, l.id
         LIMIT 64);
    FOR i IN 1 .. cardinality(lane_ids) LOOP
        EXIT WHEN remaining <= 0;
        PERFORM FROM postrunner.lanes l WHERE l.id = lane_ids[i] AND l.ready_at <= at_ FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        RETURN QUERY SELECT * FROM postrunner.route_lane(
            lane_ids[i], ceil(remaining::numeric / (cardinality(lane_ids) - i + 1))::bigint,
            p_worker, p_token, p_lease, at_, p_now);
        GET DIAGNOSTICS routed = ROW_COUNT;
        remaining := remaining - routed;
    END LOOP;
END
$fn$;
