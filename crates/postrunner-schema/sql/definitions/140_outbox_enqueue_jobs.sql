-- Each outbox row is carried by exactly one job of kind 'email.send' in its lane
-- (routing/lane_key.sql: the direction, and when they apply the recipient's time zone
-- and mailbox group), except one born suppressed: its recipient was erased. One
-- set-based INSERT of the carrying jobs per statement (and so one NOTIFY), using the
-- rows that were really inserted: ON CONFLICT DO NOTHING skips create no job.
--
-- Before it, in their own statements (so that the jobs' statement sees them): the
-- recipient domains a client with mailbox group limits has not seen yet, to be looked
-- up ('pending'), and the lanes that do not exist yet. Every message must get its job:
-- a shortfall (a lane another transaction created that this one cannot see, under
-- REPEATABLE READ) is an error that rolls the INSERT back, never a message without a
-- job (tests/outbox.rs).
--
-- The lanes of the new available jobs get a wakeup row (a claim may have parked them
-- for having nothing waiting: routing/lane_wakeups.sql).
--
-- SECURITY DEFINER: the enqueueing role has no privilege on the queue.
-- Locks: none beyond the new rows (a new domain or lane row waits for a concurrent
-- insert of the same one).
CREATE OR REPLACE FUNCTION postrunner.outbox_enqueue_jobs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    wanted bigint;
    created bigint;
BEGIN
    INSERT INTO postrunner.recipient_domains (domain, source)
    SELECT DISTINCT postrunner.recipient_domain(n.to_address), 'pending'
      FROM new_messages n
     WHERE n.status <> 'suppressed'
       AND postrunner.client_has_group_limits(n.client)
       AND NOT EXISTS (SELECT 1 FROM postrunner.recipient_domains r
                        WHERE r.domain = postrunner.recipient_domain(n.to_address))
    ON CONFLICT DO NOTHING;

    INSERT INTO postrunner.lanes (client, direction, recipient_zone, mailbox_group)
    SELECT DISTINCT k.client, k.direction, k.zone, k.grp
      FROM (SELECT n.client, n.direction, postrunner.message_zone(d.window_basis, n.recipient_time_zone) AS zone,
                   postrunner.message_group(n.client, n.to_address) AS grp
              FROM new_messages n
              JOIN postrunner.directions d ON (d.client, d.name) = (n.client, n.direction)
             WHERE n.status <> 'suppressed') k
     WHERE NOT EXISTS (SELECT 1 FROM postrunner.lanes l
                        WHERE (l.client, l.direction, l.recipient_zone, l.mailbox_group) = (k.client, k.direction, k.zone, k.grp))
    ON CONFLICT DO NOTHING;

    WITH created_jobs AS (
        INSERT INTO postrunner.jobs (id, kind, priority, run_at, state, lane)
        SELECT n.job_id, 'email.send', n.priority, coalesce(n.send_after, now()),
               CASE WHEN n.send_after > now() THEN 'scheduled' ELSE 'available' END::postrunner.job_state,
               l.id
          FROM new_messages n
          JOIN postrunner.directions d ON (d.client, d.name) = (n.client, n.direction)
          JOIN postrunner.lanes l
            ON (l.client, l.direction) = (n.client, n.direction)
           AND l.recipient_zone = postrunner.message_zone(d.window_basis, n.recipient_time_zone)
           AND l.mailbox_group = postrunner.message_group(n.client, n.to_address)
         -- A message to an erased person is born suppressed: nothing to send.
         WHERE n.status <> 'suppressed'
        RETURNING lane, state
    ),
    -- A claim may have parked a lane these jobs wait in (routing/lane_wakeups.sql): one
    -- wakeup per lane, not per message.
    woken AS (
        INSERT INTO postrunner.lane_wakeups (lane)
        SELECT DISTINCT c.lane FROM created_jobs c WHERE c.state = 'available'
    )
    SELECT count(*) INTO created FROM created_jobs;
    SELECT count(*) INTO wanted FROM new_messages n WHERE n.status <> 'suppressed';
    IF created <> wanted THEN
        RAISE EXCEPTION 'postrunner.outbox: % of % messages found no lane (a lane created concurrently); retry the INSERT',
                        wanted - created, wanted
              USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_enqueue_jobs
    AFTER INSERT ON postrunner.outbox
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.outbox_enqueue_jobs();
