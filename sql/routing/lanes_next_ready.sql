-- When workers should next try a routed claim (sql/routing/next_ready.sql calls it),
-- and the probe both it and the claim use to see whether a lane has a message waiting.
--
-- Locks: none.

-- The lane's next due job, if any: one step into jobs_lane_idx in its own order, so it
-- costs an index probe whatever the table's statistics say (a sequential scan would
-- have to sort every waiting job to find the first).
CREATE OR REPLACE FUNCTION postrunner.lane_next_job(p_lane integer, p_at timestamptz)
RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT j.id
      FROM postrunner.jobs j
     WHERE j.lane = p_lane AND j.state = 'available' AND j.run_at <= p_at
     ORDER BY (-j.priority), j.run_at, j.id
     LIMIT 1
$$;

-- Whether a claimer may serve a lane of `p_client`: a bulk client's only when it signs
-- one-click unsubscribe links (claim_messages.sql).
CREATE OR REPLACE FUNCTION postrunner.lane_servable(p_client text, p_signs_unsubscribe boolean)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_signs_unsubscribe OR NOT (SELECT c.bulk FROM postrunner.clients c WHERE c.name = p_client)
$$;

-- When a claim could next route something: the earliest gate among lanes with messages
-- waiting (a time in the past means now: a lane was busy in another claim). NULL when
-- no lane this claimer may serve has messages waiting. Workers sleep until then instead of polling. Clamped
-- to [now, now + 1 day], so a client never sees the infinities gates may hold.
DROP FUNCTION IF EXISTS postrunner.lanes_next_ready(timestamptz);
CREATE OR REPLACE FUNCTION postrunner.lanes_next_ready(p_now timestamptz, p_signs_unsubscribe boolean)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(greatest(min(l.ready_at), coalesce(p_now, now())), coalesce(p_now, now()) + interval '1 day')
      FROM postrunner.lanes l
     WHERE postrunner.lane_servable(l.client, p_signs_unsubscribe)
       AND EXISTS (SELECT 1 FROM postrunner.lane_next_job(l.id, coalesce(p_now, now())))
$$;
