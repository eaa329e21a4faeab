-- Which lane a message waits in. A lane is a direction's messages to one recipient
-- time zone and one mailbox group, so that a closed recipient window or a spent group
-- limit gates all of them with one row (route_lane.sql):
--   recipient_zone  the message's recipient_time_zone when its direction's window
--                   follows the recipient (window_basis = 'recipient'), else '';
--   mailbox_group   for a client with mailbox group limits, the group of the
--                   recipient's domain ('' when it belongs to none, '?' while the
--                   domain waits for its MX lookup); '' for every other client.
-- Lanes are created when a message first needs one (outbox/enqueue_jobs.sql).
--
-- Locks: none; lane_for inserts a lane row (waiting only for a concurrent insert of
-- the same new lane).

-- The domain part of an address, lower-cased.
CREATE OR REPLACE FUNCTION postrunner.recipient_domain(p_address text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT lower(split_part(p_address, '@', 2)) $$;

-- Does the client throttle any mailbox group?
CREATE OR REPLACE FUNCTION postrunner.client_has_group_limits(p_client text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM postrunner.mailbox_group_limits g WHERE g.client = p_client)
$$;

-- The mailbox group lane key of a message of p_client to p_address (see above).
CREATE OR REPLACE FUNCTION postrunner.message_group(p_client text, p_address text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT postrunner.client_has_group_limits(p_client) THEN ''
        ELSE coalesce((SELECT CASE WHEN r.source = 'pending' THEN '?' ELSE coalesce(r.mailbox_group, '') END
                         FROM postrunner.recipient_domains r
                        WHERE r.domain = postrunner.recipient_domain(p_address)), '?')
    END
$$;

-- The recipient zone lane key of a message (see above).
CREATE OR REPLACE FUNCTION postrunner.message_zone(p_window_basis text, p_recipient_time_zone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_window_basis = 'recipient' THEN coalesce(p_recipient_time_zone, '') ELSE '' END
$$;

-- The id of the lane (p_client, p_direction, p_zone, p_group), created if missing.
CREATE OR REPLACE FUNCTION postrunner.lane_for(p_client text, p_direction text, p_zone text, p_group text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    lane_id integer;
BEGIN
    SELECT l.id INTO lane_id FROM postrunner.lanes l
     WHERE (l.client, l.direction, l.recipient_zone, l.mailbox_group) = (p_client, p_direction, p_zone, p_group);
    IF NOT FOUND THEN
        INSERT INTO postrunner.lanes (client, direction, recipient_zone, mailbox_group)
        VALUES (p_client, p_direction, p_zone, p_group)
        ON CONFLICT DO NOTHING;
        SELECT l.id INTO STRICT lane_id FROM postrunner.lanes l
         WHERE (l.client, l.direction, l.recipient_zone, l.mailbox_group) = (p_client, p_direction, p_zone, p_group);
    END IF;
    RETURN lane_id;
END
$fn$;

-- The lane of one outbox message (re-drives, re-laning).
CREATE OR REPLACE FUNCTION postrunner.message_lane(p_client text, p_direction text, p_to text, p_recipient_time_zone text)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    SELECT postrunner.lane_for(p_client, p_direction, postrunner.message_zone(d.window_basis, p_recipient_time_zone),
                               postrunner.message_group(p_client, p_to))
      FROM postrunner.directions d
     WHERE (d.client, d.name) = (p_client, p_direction)
$$;
