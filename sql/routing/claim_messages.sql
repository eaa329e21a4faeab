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
-- Lanes are served in line: the claim walks lanes whose gate is open in (queue_at, id)
-- order through lanes_queue_idx, takes up to 64, gives each an equal share of what is
-- left of the limit, and sends every lane it examined to the back of the line
-- (queue_at = now, or its gate's time when the claim gated it), whether or not it sent:
-- neither a big direction nor a client with thousands of lanes can starve another
-- (tests/routing_scale.rs). A lane found with nothing waiting is parked (queue_at NULL,
-- out of the index) until a wakeup brings it back (lane_wakeups.sql), so the walk's
-- cost does not grow with the number of lanes (`postrunner bench lanes`). A lane is
-- locked (SKIP LOCKED) only when it is served, so concurrent claimers spread over the
-- lanes; within one lane, routing is serial.
--
-- A bulk client's lanes (clients.bulk, the default) are served only by a claimer that
-- signs one-click unsubscribe links (p_signs_unsubscribe: `worker --unsubscribe-url`):
-- no message of theirs can leave without its RFC 8058 headers. The lanes are not gated
-- for it, so a signing worker takes them at once; report_blocked says 'unsubscribe'
-- while no live worker signs (tests/unsubscribe.rs).
--
-- Plans are generic (plan_cache_mode), so that planning never probes index ends full
-- of dead entries from a fast drain; "has messages waiting" is a one-row probe of
-- jobs_lane_idx per lane, so statistics cannot turn it into a scan of the jobs table
-- (tests/plans.rs).
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
    lane_id integer;
    i integer;
    remaining bigint := p_limit;
    routed bigint;
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Parked lanes whose jobs became available since come back first (at the back).
    PERFORM postrunner.take_lane_wakeups(coalesce(p_now, clock_timestamp()));
    -- Two statements, so that each walks its own partial index in order.
    IF p_signs_unsubscribe THEN
        lane_ids := ARRAY(
            SELECT l.id FROM postrunner.lanes l
             WHERE l.queue_at IS NOT NULL AND l.ready_at <= at_
             ORDER BY l.queue_at, l.id
             LIMIT 64);
    ELSE
        lane_ids := ARRAY(
            SELECT l.id FROM postrunner.lanes l
             WHERE l.queue_at IS NOT NULL AND NOT l.bulk AND l.ready_at <= at_
             ORDER BY l.queue_at, l.id
             LIMIT 64);
    END IF;
    FOR i IN 1 .. cardinality(lane_ids) LOOP
        EXIT WHEN remaining <= 0;
        lane_id := lane_ids[i];
        PERFORM FROM postrunner.lanes l
         WHERE l.id = lane_id AND l.ready_at <= at_ AND l.queue_at IS NOT NULL
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        -- Nothing waiting at all (due or not): parked. Checked after the lane is locked,
        -- in a statement of its own (so with a snapshot taken after the lock): a job
        -- made available after this snapshot left a wakeup row for the next claim.
        IF NOT EXISTS (SELECT 1 FROM postrunner.jobs j WHERE j.lane = lane_id AND j.state = 'available') THEN
            UPDATE postrunner.lanes SET queue_at = NULL WHERE id = lane_id;
            CONTINUE;
        END IF;
        RETURN QUERY SELECT * FROM postrunner.route_lane(
            lane_id, ceil(remaining::numeric / (cardinality(lane_ids) - i + 1))::bigint,
            p_worker, p_token, p_lease, at_, p_now);
        GET DIAGNOSTICS routed = ROW_COUNT;
        remaining := remaining - routed;
        -- To the back of the line, or to its gate's time if route_lane gated it.
        UPDATE postrunner.lanes
           SET queue_at = greatest(ready_at, coalesce(p_now, clock_timestamp()))
         WHERE id = lane_id;
    END LOOP;
END
$fn$;
