-- Re-driving a failed (or cancelled) message: its job becomes available with a fresh
-- attempt budget.
--
-- postrunner.retry_message(id) runs as the caller (SECURITY INVOKER), so an
-- application re-drives only messages its row-level policy lets it update: the
-- re-drive is its own UPDATE of the status back to 'queued' (which the status guard
-- allows from 'failed' or 'cancelled'), and the trigger below, which acts for
-- postrunner, re-drives the carrying job.
--
-- Locks: the message row (the UPDATE), then its job (retry_job).
CREATE OR REPLACE FUNCTION postrunner.retry_message(message_id uuid) RETURNS postrunner.message_status
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    old_status postrunner.message_status;
BEGIN
    SELECT status INTO old_status FROM postrunner.outbox WHERE id = message_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id USING ERRCODE = 'no_data_found';
    END IF;
    IF old_status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'message % is % and needs no retry', message_id, old_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE postrunner.outbox SET status = 'queued' WHERE id = message_id;
    RETURN old_status;
END
$$;

-- A message set back to 'queued' from 'failed' or 'cancelled' is re-driven: its job, or
-- a new one carrying it when the cleanup task already deleted the finished job
-- (created cancelled, so that retry_job makes the transition the mirror sees), in the
-- message's lane (routing/lane_key.sql).
-- SECURITY DEFINER: the application has no privilege on the queue.
--
-- A message a provider reported on (delivered, deferred, opened, bounced, ...: anything
-- but a rejection) was taken by that provider, whatever its status says: a re-drive
-- would send it twice, and is refused (tests/uncertain.rs,
-- a_redrive_of_a_message_a_provider_reported_delivered_is_refused). So is one whose body
-- the retention cleared (tests/retention.rs,
-- bodies_past_retention_are_cleared_and_such_a_message_is_not_redriven): there is
-- nothing left to send.
CREATE OR REPLACE FUNCTION postrunner.outbox_redrive_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    evidence record;
BEGIN
    IF NEW.body_cleared_at IS NOT NULL THEN
        RAISE EXCEPTION 'message % is past the body retention (its body was cleared at %): it cannot be sent again',
                        NEW.id, NEW.body_cleared_at
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'insert it anew; message_body_retention_days sets how long bodies are kept';
    END IF;
    SELECT e.kind, e.provider, e.occurred_at INTO evidence
      FROM postrunner.events e
     WHERE e.message_id = NEW.id AND e.kind <> 'rejected'
     ORDER BY e.occurred_at
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'message % was reported % by provider % at %: it is not sent again',
                        NEW.id, evidence.kind, evidence.provider, evidence.occurred_at
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'the provider took it; a second send would reach the recipient twice';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postrunner.jobs WHERE id = NEW.job_id) THEN
        INSERT INTO postrunner.jobs (id, kind, state, finalized_at, lane)
        VALUES (NEW.job_id, 'email.send', 'cancelled', now(),
                postrunner.message_lane(NEW.client, NEW.direction, NEW.to_address, NEW.recipient_time_zone));
    END IF;
    PERFORM postrunner.retry_job(NEW.job_id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_redrive_job
    AFTER UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IN ('failed', 'cancelled'))
    EXECUTE FUNCTION postrunner.outbox_redrive_job();
