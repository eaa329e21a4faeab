-- Each outbox row is carried by exactly one job of kind 'email.send' in its direction's
-- lane (except one born suppressed: its recipient was erased). One set-based INSERT of the carrying jobs per statement (and so one NOTIFY),
-- using the rows that were really inserted: ON CONFLICT DO NOTHING skips create no job.
--
-- SECURITY DEFINER: the enqueueing role has no privilege on the queue.
-- Locks: none beyond the new rows.
CREATE OR REPLACE FUNCTION postrunner.outbox_enqueue_jobs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.jobs (id, kind, priority, run_at, state, lane)
    SELECT n.job_id, 'email.send', n.priority, coalesce(n.send_after, now()),
           CASE WHEN n.send_after > now() THEN 'scheduled' ELSE 'available' END::postrunner.job_state,
           l.id
      FROM new_messages n
      JOIN postrunner.lanes l ON (l.client, l.direction) = (n.client, n.direction)
     -- A message to an erased person is born suppressed: nothing to send.
     WHERE n.status <> 'suppressed';
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_enqueue_jobs
    AFTER INSERT ON postrunner.outbox
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.outbox_enqueue_jobs();
