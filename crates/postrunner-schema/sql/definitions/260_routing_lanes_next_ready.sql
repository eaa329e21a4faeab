-- When workers should next try a routed claim (sql/statements/routing/next_ready.sql calls it),
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

-- (Whether a claimer may serve a lane is now the lane's own `bulk` column,
-- routing/lane_wakeups.sql.)
DROP FUNCTION IF EXISTS postrunner.lane_servable(text, boolean);

-- When a claim could next route something: the earliest gate among the first lanes in
-- line (lanes_queue_idx, the order the claim walks) that have messages waiting (a time
-- in the past means now: a lane was busy in another claim, or a parked lane has a
-- wakeup waiting). NULL when none of them has messages waiting. Gated lanes wait in
-- line at their gate's time, so the first lanes in line hold the earliest gate; its
-- cost does not grow with the number of lanes. Workers sleep until then instead of
-- polling. Clamped to [now, now + 1 day], so a client never sees the infinities gates
-- may hold.
DROP FUNCTION IF EXISTS postrunner.lanes_next_ready(timestamptz);
CREATE OR REPLACE FUNCTION postrunner.lanes_next_ready(p_now timestamptz, p_signs_unsubscribe boolean)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    at_ timestamptz := coalesce(p_now, now());
    first_gate timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM postrunner.lane_wakeups) THEN
        RETURN at_;
    END IF;
    IF p_signs_unsubscribe THEN
        SELECT min(l.ready_at) INTO first_gate
          FROM (SELECT l.id, l.ready_at FROM postrunner.lanes l
                 WHERE l.queue_at IS NOT NULL ORDER BY l.queue_at, l.id LIMIT 64) l
         WHERE EXISTS (SELECT 1 FROM postrunner.lane_next_job(l.id, at_));
    ELSE
        SELECT min(l.ready_at) INTO first_gate
          FROM (SELECT l.id, l.ready_at FROM postrunner.lanes l
                 WHERE l.queue_at IS NOT NULL AND NOT l.bulk ORDER BY l.queue_at, l.id LIMIT 64) l
         WHERE EXISTS (SELECT 1 FROM postrunner.lane_next_job(l.id, at_));
    END IF;
    IF first_gate IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN least(greatest(first_gate, at_), at_ + interval '1 day');
END
$fn$;
