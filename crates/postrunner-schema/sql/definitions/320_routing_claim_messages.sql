-- The routed claim: postrunner.claim_messages takes email jobs lane by lane and, in the
-- same transaction, gives each one a sender address and reserves its capacity
-- (route_lane.sql). sql/statements/routing/claim.sql calls it; the generic claim of postrunner's
-- own jobs is a separate statement (sql/statements/queue/claim.sql), so that routing trouble can
-- never stop rescue, probes or cleanup.
--
-- Why in the claim: the reservation then commits together with the lease. There is no
-- moment where a worker holds a message without a reservation, or a reservation without
-- a message, and no lock or transaction outlives the claim: the provider call happens
-- after the commit.
--
-- Lanes are served in line, and clients in turn. A claim takes up to 64 lanes whose
-- gate is open: first the first lane in line of each of the 8 clients whose turn is
-- oldest (client_turns, locked SKIP LOCKED so concurrent claimers take different
-- clients; their turn moves to now), then the rest from the line of all lanes, walked
-- in (queue_at, id) order through lanes_queue_idx. Each gets an equal share of what is
-- left of the limit, and every lane examined goes to the back of the line (queue_at =
-- now, or its gate's time when the claim gated it), whether or not it sent: neither a
-- big direction nor a client with thousands of lanes can starve another
-- (tests/routing_scale.rs, a_client_with_ten_thousand_lanes_does_not_keep_another_waiting).
-- A lane found with nothing waiting is parked (queue_at NULL, out of the index) until a
-- wakeup brings it back (lane_wakeups.sql), so the walk's cost does not grow with the
-- number of lanes (`postrunner bench lanes`). A lane is locked (SKIP LOCKED) only when
-- it is served, so concurrent claimers spread over the lanes; within one lane, routing
-- is serial.
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
-- A client's first open lane in line (its turn, claim_messages). Planned for the client
-- it is asked about (force_custom_plan): the planner then walks the client's own line
-- (lanes_client_queue_idx) for a client with few lanes, instead of looking for it along
-- the line of all lanes, as a plan made for any client would (`postrunner bench lanes`).
CREATE OR REPLACE FUNCTION postrunner.client_first_lane(p_client text, p_line_end timestamptz, p_at timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
AS $fn$
BEGIN
    RETURN (SELECT l.id FROM postrunner.lanes l
             WHERE l.client = p_client AND l.queue_at <= p_line_end AND l.ready_at <= p_at
             ORDER BY l.queue_at, l.id
             LIMIT 1);
END
$fn$;

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
    line_end timestamptz;
    turn_clients text[];
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
    PERFORM postrunner.take_lane_wakeups(clock_timestamp());
    -- The walk stops at the lanes whose turn is still to come: gated ones wait in line
    -- at their gate's time, so the walk never reads past the open lanes, however many
    -- are gated. (A test's simulated now may lie before the clock: then the clock.)
    line_end := greatest(at_, clock_timestamp());
    -- The clients whose turn it is, and the first lane in line of each.
    turn_clients := ARRAY(SELECT t.client FROM postrunner.client_turns t
                           ORDER BY t.turn_at, t.client LIMIT 8 FOR UPDATE SKIP LOCKED);
    IF cardinality(turn_clients) > 0 THEN
        UPDATE postrunner.client_turns SET turn_at = clock_timestamp() WHERE client = ANY (turn_clients);
        lane_ids := ARRAY(
            SELECT x.lane
              FROM unnest(turn_clients) WITH ORDINALITY AS c(name, ord)
              JOIN postrunner.clients cl ON cl.name = c.name AND (p_signs_unsubscribe OR NOT cl.bulk)
             CROSS JOIN LATERAL postrunner.client_first_lane(c.name, line_end, at_) x(lane)
             WHERE x.lane IS NOT NULL
             ORDER BY c.ord);
    ELSE
        lane_ids := '{}';
    END IF;
    -- Then the line of all lanes. Two statements, so that each walks its own partial
    -- index in order.
    IF p_signs_unsubscribe THEN
        lane_ids := lane_ids || ARRAY(
            SELECT l.id FROM postrunner.lanes l
             WHERE l.queue_at <= line_end AND l.ready_at <= at_ AND l.id <> ALL (lane_ids)
             ORDER BY l.queue_at, l.id
             LIMIT 64 - cardinality(lane_ids));
    ELSE
        lane_ids := lane_ids || ARRAY(
            SELECT l.id FROM postrunner.lanes l
             WHERE l.queue_at <= line_end AND NOT l.bulk AND l.ready_at <= at_ AND l.id <> ALL (lane_ids)
             ORDER BY l.queue_at, l.id
             LIMIT 64 - cardinality(lane_ids));
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
        -- (lane_next_job with no bound on run_at: the index probe the walk uses.)
        IF NOT EXISTS (SELECT 1 FROM postrunner.lane_next_job(lane_id, 'infinity')) THEN
            UPDATE postrunner.lanes SET queue_at = NULL WHERE id = lane_id;
            CONTINUE;
        END IF;
        RETURN QUERY SELECT * FROM postrunner.route_lane(
            lane_id, ceil(remaining::numeric / (cardinality(lane_ids) - i + 1))::bigint,
            p_worker, p_token, p_lease, at_, p_now);
        GET DIAGNOSTICS routed = ROW_COUNT;
        remaining := remaining - routed;
    END LOOP;
END
$fn$;
