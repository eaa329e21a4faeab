-- The routed claim, one lane at a time: postrunner.route_lane takes up to p_want
-- messages of lane p_lane and, in the claiming transaction, gives each a sender address
-- and reserves its capacity (claim_messages calls it for each lane it serves). Returns
-- the claimed jobs; args carries the message and its route.
--
--  0. a paused direction or client: the lane is gated until it is resumed;
--  1. the sending window, in the direction's time zone or, for a direction whose
--     window follows the recipient, in the lane's recipient time zone: closed -> the
--     lane is gated until it opens (tests/recipient_windows.rs);
--     a lane whose recipients' domain waits for its MX lookup is gated until the
--     lookup moves its messages on (recipient_domains.sql); a lane whose mailbox
--     group's hourly or daily limit is spent is gated until it frees, and otherwise
--     takes no more messages than the limit allows (mailbox_groups.sql);
--  2. the lane's next messages with their outbox rows (take_messages.sql);
--  3. the providers the direction may use now, what each may take, and the claim's
--     instant (lane_providers.sql);
--  4. candidate addresses merged across providers by weight, and
--  5. the chosen ones locked and re-checked (pick_senders.sql);
--  6. reservations, ledger and leases in one statement (reserve.sql), the mailbox
--     group's count, then the lane's stride turns and round-robin position;
--  7. messages left without an address: the lane is gated until the earliest moment
--     capacity frees, with the reason (lane_blocked.sql, report_blocked), unless that
--     is only because other claims held some rows at this instant;
--  8. one write of the lane row: its gate, its round-robin state, its place in line.
--
-- Every row is locked with SKIP LOCKED: a claim never waits and cannot deadlock. The
-- limits are checked on the locked rows' latest versions (PostgreSQL re-reads a row
-- when it locks it), so they hold across any number of workers.
--
-- p_at is the claim's start (the window and which messages are due); p_now is the
-- simulated "now" of tests, NULL in production (then counting uses the clock, read
-- after the counters are locked: lane_providers.sql).
CREATE OR REPLACE FUNCTION postrunner.route_lane(
    p_lane integer, p_want bigint, p_worker uuid, p_token uuid, p_lease interval, p_at timestamptz,
    p_now timestamptz
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    lane record;
    messages bigint[];
    usable record;
    senders record;
    routed integer;
    gate record;
    grp record;
    want bigint := p_want;
    -- What the lane's one write at the end records: a gate that closed, and after a send
    -- its round-robin state.
    gate_until timestamptz;
    gate_for text;
    gate_detail text;
    served_now timestamptz;
    new_turns jsonb;
BEGIN
    SELECT l.id, l.client, l.direction, l.turns, l.mailbox_group, d.send_days, d.window_start, d.window_end,
           CASE WHEN d.window_basis = 'recipient' AND l.recipient_zone <> '' THEN l.recipient_zone
                ELSE coalesce(d.time_zone, c.time_zone) END AS window_tz,
           CASE WHEN d.window_basis = 'recipient' AND l.recipient_zone <> '' THEN 'recipient local, ' ELSE '' END AS window_basis,
           c.time_zone AS client_tz,
           CASE WHEN d.paused_at IS NOT NULL THEN coalesce(d.paused_reason, 'the direction is paused')
                WHEN c.paused_at IS NOT NULL THEN coalesce(c.paused_reason, 'the client is paused') END AS paused_reason
      INTO lane
      FROM postrunner.lanes l
      JOIN postrunner.directions d ON (d.client, d.name) = (l.client, l.direction)
      JOIN postrunner.clients c ON c.name = l.client
     WHERE l.id = p_lane;

    <<route>>
    BEGIN
        -- 0. A direction or client paused (automatically, for bounces, or by an operator)
        --    sends nothing until resumed (resuming wakes every lane: config_triggers.sql).
        IF lane.paused_reason IS NOT NULL THEN
            gate_until := 'infinity';
            gate_for := 'paused';
            gate_detail := lane.paused_reason;
            EXIT route;
        END IF;

        -- 1. The sending window.
        IF NOT postrunner.window_is_open(lane.send_days, lane.window_start, lane.window_end, lane.window_tz, p_at) THEN
            gate_until := postrunner.window_opens_at(lane.send_days, lane.window_start, lane.window_tz, p_at);
            gate_for := 'window';
            gate_detail := format('sends %s to %s (%s%s), ISO days %s', lane.window_start, lane.window_end,
                                  lane.window_basis, lane.window_tz, array_to_string(lane.send_days, ','));
            EXIT route;
        END IF;

        -- 1b. Recipients whose mailbox group is not known yet.
        IF lane.mailbox_group = '?' THEN
            gate_until := 'infinity';
            gate_for := 'mailbox_lookup';
            gate_detail := 'the recipients'' domains wait for their MX lookup (system.classify_recipient_domains)';
            EXIT route;
        END IF;

        -- 1c. The mailbox group's limits.
        SELECT * INTO grp FROM postrunner.lane_group_allowance(lane.client, lane.mailbox_group, lane.client_tz, p_at);
        IF grp.busy THEN
            EXIT route;
        END IF;
        IF grp.limited THEN
            IF grp.allowance = 0 THEN
                gate_until := grp.frees_at;
                gate_for := 'mailbox_group';
                gate_detail := grp.detail;
                EXIT route;
            END IF;
            want := least(want, grp.allowance);
        END IF;

        -- 2. The messages.
        messages := postrunner.lane_take_messages(p_lane, want, p_at);
        -- None (every candidate busy in another claim, or held by an application's
        -- transaction): nothing to gate; workers back off while an open lane gives
        -- nothing (crates/postrunner-queue/src/executor/fetch.rs).
        IF cardinality(messages) = 0 THEN
            EXIT route;
        END IF;

        -- 3-5. Providers, then addresses.
        SELECT * INTO usable
          FROM postrunner.lane_providers(lane.client, lane.direction, cardinality(messages), p_at, p_now,
                                         CASE WHEN grp.limited THEN grp.counts_from END);
        SELECT * INTO senders
          FROM postrunner.lane_pick_senders(lane.client, lane.client_tz, lane.turns, usable.providers,
                                            messages, usable.claim_at);

        -- 6. Reserve and claim.
        routed := cardinality(senders.picks);
        IF routed > 0 THEN
            RETURN QUERY SELECT * FROM postrunner.lane_reserve(
                senders.picks, p_worker, p_token, p_lease, usable.claim_at,
                extract(epoch FROM (lane.window_end - lane.window_start)), lane.client_tz, lane.mailbox_group);
            IF grp.limited THEN
                PERFORM postrunner.count_group_sends(lane.client, lane.mailbox_group, lane.client_tz, usable.claim_at,
                                                     routed);
            END IF;
            served_now := usable.claim_at;
            new_turns := postrunner.lane_turns(lane.turns, usable.providers, senders.picks, senders.offered);
        END IF;

        -- 7. Messages left without an address.
        IF routed < cardinality(messages) AND usable.all_locked AND senders.all_locked THEN
            SELECT * INTO gate FROM postrunner.lane_blocked(p_lane, usable.claim_at);
            IF gate.ready_at > usable.claim_at THEN
                gate_until := gate.ready_at;
                gate_for := gate.waiting_for;
                gate_detail := gate.waiting_detail;
            END IF;
        END IF;
    END route;

    -- 8. The lane's one write: the gate that closed, the round-robin state after a send,
    --    and its place in line: to the back, or at its gate's time when one closed
    --    (claim_messages.sql; the line is kept on the clock, also when a test simulates
    --    now). Examined, it moves whether or not it sent.
    UPDATE postrunner.lanes
       SET ready_at = coalesce(gate_until, ready_at),
           waiting_for = CASE WHEN gate_until IS NOT NULL THEN gate_for ELSE waiting_for END,
           waiting_detail = CASE WHEN gate_until IS NOT NULL THEN gate_detail ELSE waiting_detail END,
           served_at = coalesce(served_now, served_at),
           turns = coalesce(new_turns, turns),
           queue_at = greatest(coalesce(gate_until, ready_at), clock_timestamp())
     WHERE id = p_lane;
END
$fn$;

-- The lane's stride turns after a claim: a provider that sent moves on by
-- sends / weight; one that offered addresses but was not reached keeps its turn (it
-- goes first next time); one that could not take part at all (no address ready, rate
-- or budget used up) is brought up to the slowest that sent, so it rejoins at par
-- instead of taking everything until it catches up. Stored relative to the lowest, so
-- the numbers stay small; providers not usable now keep theirs.
CREATE OR REPLACE FUNCTION postrunner.lane_turns(
    p_turns jsonb, p_providers postrunner.route_provider[], p_picks postrunner.route_pick[], p_offered text[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (
    WITH used AS (
        SELECT p.provider, count(*) AS sends FROM unnest(p_picks) p GROUP BY p.provider
    ),
    raw AS (
        SELECT pv.provider AS name, coalesce((p_turns ->> pv.provider)::float8, 0) AS old, pv.weight, u.sends
          FROM unnest(p_providers) pv
          LEFT JOIN used u ON u.provider = pv.provider
    ),
    moved AS (
        SELECT r.name,
               CASE WHEN r.sends IS NOT NULL THEN r.old + r.sends / r.weight
                    WHEN r.name = ANY (p_offered) THEN r.old
                    ELSE greatest(r.old, (SELECT min(old + sends / weight) FROM raw WHERE sends IS NOT NULL))
               END AS turn
          FROM raw r
    )
    SELECT p_turns || coalesce((SELECT jsonb_object_agg(name, turn - (SELECT min(turn) FROM moved)) FROM moved), '{}'));
END
$$;
