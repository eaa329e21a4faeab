-- When workers should next try a routed claim (sql/routing/next_ready.sql calls it).
--
-- Locks: none.

-- When a claim could next route something: the earliest gate among lanes with messages
-- waiting (a time in the past means now: a lane was busy in another claim). NULL when
-- no lane has messages waiting. Workers sleep until then instead of polling. Clamped
-- to [now, now + 1 day], so a client never sees the infinities gates may hold.
CREATE OR REPLACE FUNCTION postrunner.lanes_next_ready(p_now timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(greatest(min(l.ready_at), coalesce(p_now, now())), coalesce(p_now, now()) + interval '1 day')
      FROM postrunner.lanes l
     WHERE EXISTS (SELECT 1 FROM postrunner.jobs j
                    WHERE j.lane = l.id AND j.state = 'available' AND j.run_at <= coalesce(p_now, now()))
$$;
