-- Throttles per recipient mailbox group (issue 10, part 7): at most per_hour messages
-- in a client-local clock hour and per_day in a client-local day, per client and group
-- (mailbox_group_limits), over all of the client's addresses, directions and workers.
-- A lane holds one group's messages (lane_key.sql), so the routed claim (route_lane)
-- asks once per lane how many may go, takes at most that many, and counts what it
-- routed on the same locked row in the same transaction: the limit holds across any
-- number of workers (tests/mailbox_groups.rs, also in real time across an hour).
--
-- A counter never moves backwards: a claim that started in an earlier hour (or day)
-- than the counter already holds counts in the counter's, never resets it.
--
-- Locks: the group's mailbox_group_usage row, FOR UPDATE SKIP LOCKED (a claim never
-- waits; a group another claim holds sits this claim out, without gating the lane).

-- How many messages lane group p_group of p_client may route at p_at: limited (a limit
-- exists), busy (its counter is held by another claim), the allowance, and when it is
-- 0 the moment it frees and why.
CREATE OR REPLACE FUNCTION postrunner.lane_group_allowance(
    p_client text, p_group text, p_client_tz text, p_at timestamptz,
    OUT limited boolean, OUT busy boolean, OUT allowance bigint, OUT frees_at timestamptz, OUT detail text)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    lim postrunner.mailbox_group_limits;
    u postrunner.mailbox_group_usage;
    this_hour timestamp := date_trunc('hour', p_at AT TIME ZONE p_client_tz);
    today date := postrunner.local_day(p_at, p_client_tz);
    hour_left bigint;
    day_left bigint;
BEGIN
    limited := false;
    busy := false;
    IF p_group IN ('', '?') THEN
        RETURN;
    END IF;
    SELECT * INTO lim FROM postrunner.mailbox_group_limits g WHERE g.client = p_client AND g.mailbox_group = p_group;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    limited := true;
    SELECT * INTO u FROM postrunner.mailbox_group_usage g
     WHERE g.client = p_client AND g.mailbox_group = p_group
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        busy := true;
        RETURN;
    END IF;
    hour_left := lim.per_hour - CASE WHEN u.hour >= this_hour THEN u.sent_in_hour ELSE 0 END;
    day_left := lim.per_day - CASE WHEN u.day >= today THEN u.sent_on_day ELSE 0 END;
    allowance := greatest(0, least(hour_left, day_left));
    IF allowance > 0 THEN
        RETURN;
    END IF;
    IF day_left <= 0 THEN
        frees_at := postrunner.day_end(greatest(u.day, today), p_client_tz);
        detail := format('%s: %s a day used for %s, until %s', p_group, lim.per_day, greatest(u.day, today), frees_at);
    ELSE
        frees_at := (greatest(u.hour, this_hour) + interval '1 hour') AT TIME ZONE p_client_tz;
        detail := format('%s: %s an hour used, until %s', p_group, lim.per_hour, frees_at);
    END IF;
END
$fn$;

-- Counts p_n messages routed at p_at in group p_group of p_client, on the row
-- lane_group_allowance locked in the same claim.
CREATE OR REPLACE FUNCTION postrunner.count_group_sends(
    p_client text, p_group text, p_client_tz text, p_at timestamptz, p_n integer)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE postrunner.mailbox_group_usage u
       SET sent_in_hour = CASE WHEN u.hour >= date_trunc('hour', p_at AT TIME ZONE p_client_tz) THEN u.sent_in_hour ELSE 0 END + p_n,
           hour = greatest(u.hour, date_trunc('hour', p_at AT TIME ZONE p_client_tz)),
           sent_on_day = CASE WHEN u.day >= postrunner.local_day(p_at, p_client_tz) THEN u.sent_on_day ELSE 0 END + p_n,
           day = greatest(u.day, postrunner.local_day(p_at, p_client_tz))
     WHERE u.client = p_client AND u.mailbox_group = p_group
$$;

-- Gives back one closed reservation's count (give_back, reservations.sql), when the
-- counter still counts the hour and day it was made in.
CREATE OR REPLACE FUNCTION postrunner.give_back_group(a postrunner.send_attempts)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE postrunner.mailbox_group_usage u
       SET sent_in_hour = CASE WHEN u.hour = date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone)
                               THEN greatest(u.sent_in_hour - 1, 0) ELSE u.sent_in_hour END,
           sent_on_day = CASE WHEN u.day = postrunner.local_day(a.reserved_at, c.time_zone)
                              THEN greatest(u.sent_on_day - 1, 0) ELSE u.sent_on_day END
      FROM postrunner.clients c
     WHERE c.name = a.client AND u.client = a.client AND u.mailbox_group = a.mailbox_group
$$;

-- Moves the jobs of lanes p_lanes that are not running into the lanes their messages
-- belong in now (a client's first group limit; a recipient domain found after its
-- lookup). Jobs another transaction holds are left for a later call. Returns how many
-- moved.
--
-- Locks: the jobs (FOR UPDATE SKIP LOCKED); lanes it creates.
CREATE OR REPLACE FUNCTION postrunner.relane(p_lanes integer[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    moved bigint;
BEGIN
    WITH candidates AS (
        SELECT j.id, o.client, o.direction, o.to_address, o.recipient_time_zone
          FROM postrunner.jobs j
          JOIN postrunner.outbox o ON o.job_id = j.id
         WHERE j.lane = ANY (p_lanes) AND j.state IN ('available', 'scheduled', 'retryable')
           FOR UPDATE OF j SKIP LOCKED
    ),
    target AS (
        SELECT c.id, postrunner.message_lane(c.client, c.direction, c.to_address, c.recipient_time_zone) AS lane
          FROM candidates c
    )
    UPDATE postrunner.jobs j SET lane = t.lane
      FROM target t
     WHERE j.id = t.id AND j.lane IS DISTINCT FROM t.lane;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
        PERFORM pg_notify('postrunner_jobs', '');
    END IF;
    RETURN moved;
END
$fn$;
