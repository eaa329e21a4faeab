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
-- 0 the moment it frees and why. counts_from: the start of the hour the counter
-- counts in, when a later claim already moved it past p_at's hour; the claim's instant
-- is then never earlier (lane_providers.sql), so what it reserves is counted, and given
-- back, in that hour (tests/mailbox_groups.rs,
-- a_release_gives_back_to_the_later_hour_its_claim_was_counted_in).
DROP FUNCTION IF EXISTS postrunner.lane_group_allowance(text, text, text, timestamptz);
CREATE OR REPLACE FUNCTION postrunner.lane_group_allowance(
    p_client text, p_group text, p_client_tz text, p_at timestamptz,
    OUT limited boolean, OUT busy boolean, OUT allowance bigint, OUT frees_at timestamptz, OUT detail text,
    OUT counts_from timestamptz)
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
    IF u.hour > this_hour THEN
        counts_from := u.hour AT TIME ZONE p_client_tz;
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
-- counter still counts the hour and day it was made in (a claim's instant is never
-- earlier than the hour the counter held when it counted: lane_group_allowance).
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
        PERFORM postrunner.notify_workers();
    END IF;
    RETURN moved;
END
$fn$;

-- Sends a client made before a recipient domain was known to be in a group (the domain
-- was first seen before the client had limits, or was looked up only later): when an MX
-- lookup (or an operator) places the domain in a group, today's and this hour's sends
-- to it, counted in no group when they were made, are added to the counters of the
-- clients that limit that group, so a limit set mid-day still holds for the rest of it
-- (tests/mailbox_groups.rs, a_limit_holds_for_sends_made_before_their_domain_was_known).
-- A counter never moves backwards: sends of a day or hour it has left are not added.
--
-- Locks: the mailbox_group_usage rows it adds to (waiting for a claim holding one,
-- which commits in milliseconds).
CREATE OR REPLACE FUNCTION postrunner.count_sends_of_classified_domains() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $fn$
DECLARE
    domains text[];
    groups text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- Only the domains whose group changed (a lookup that found none changes nothing).
        SELECT array_agg(n.domain), array_agg(n.mailbox_group) INTO domains, groups
          FROM classified_domains n
          JOIN previous_domains o ON o.domain = n.domain
         WHERE n.mailbox_group IS NOT NULL AND n.mailbox_group IS DISTINCT FROM o.mailbox_group;
    ELSE
        SELECT array_agg(n.domain), array_agg(n.mailbox_group) INTO domains, groups
          FROM classified_domains n
         WHERE n.mailbox_group IS NOT NULL;
    END IF;
    IF domains IS NULL THEN
        RETURN NULL;
    END IF;
    WITH classified AS (
        SELECT d.domain, d.mailbox_group FROM unnest(domains, groups) AS d(domain, mailbox_group)
    ),
    sends AS (
        SELECT g.client, g.mailbox_group, c.time_zone,
               count(*) AS day_sends,
               count(*) FILTER (WHERE date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone)
                                      = date_trunc('hour', now() AT TIME ZONE c.time_zone)) AS hour_sends
          FROM postrunner.mailbox_group_limits g
          JOIN postrunner.clients c ON c.name = g.client
          JOIN postrunner.send_attempts a
            ON a.client = g.client AND a.day = postrunner.local_day(now(), c.time_zone)
           AND a.mailbox_group IS NULL AND postrunner.counts_as_sent(a.outcome)
          JOIN postrunner.outbox o ON o.id = a.message_id
          JOIN classified d ON d.domain = postrunner.recipient_domain(o.to_address) AND d.mailbox_group = g.mailbox_group
         WHERE g.mailbox_group = ANY (groups)
         GROUP BY g.client, g.mailbox_group, c.time_zone
    )
    UPDATE postrunner.mailbox_group_usage u
       SET sent_on_day = CASE WHEN u.day = postrunner.local_day(now(), x.time_zone) THEN u.sent_on_day + x.day_sends
                              WHEN u.day < postrunner.local_day(now(), x.time_zone) THEN x.day_sends
                              ELSE u.sent_on_day END,
           day = greatest(u.day, postrunner.local_day(now(), x.time_zone)),
           sent_in_hour = CASE WHEN u.hour = date_trunc('hour', now() AT TIME ZONE x.time_zone)
                               THEN u.sent_in_hour + x.hour_sends
                               WHEN u.hour < date_trunc('hour', now() AT TIME ZONE x.time_zone) THEN x.hour_sends
                               ELSE u.sent_in_hour END,
           hour = greatest(u.hour, date_trunc('hour', now() AT TIME ZONE x.time_zone))
      FROM sends x
     WHERE (u.client, u.mailbox_group) = (x.client, x.mailbox_group);
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE TRIGGER recipient_domains_classified
    AFTER INSERT ON postrunner.recipient_domains
    REFERENCING NEW TABLE AS classified_domains
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.count_sends_of_classified_domains();
CREATE OR REPLACE TRIGGER recipient_domains_reclassified
    AFTER UPDATE ON postrunner.recipient_domains
    REFERENCING OLD TABLE AS previous_domains NEW TABLE AS classified_domains
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.count_sends_of_classified_domains();
