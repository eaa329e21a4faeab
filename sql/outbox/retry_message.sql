-- Re-drive a failed (or cancelled) message: its job becomes available with a fresh
-- attempt budget. SECURITY DEFINER so that postrunner_app may call it without any
-- privilege on the queue.
--
-- Locks: the message row (FOR UPDATE), so concurrent re-drives serialise, then its job.
CREATE OR REPLACE FUNCTION postrunner.retry_message(message_id uuid) RETURNS postrunner.message_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    msg record;
BEGIN
    SELECT o.job_id, o.status, l.id AS lane INTO msg
      FROM postrunner.outbox o JOIN postrunner.lanes l ON (l.client, l.direction) = (o.client, o.direction)
     WHERE o.id = message_id FOR UPDATE OF o;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id USING ERRCODE = 'no_data_found';
    END IF;
    IF msg.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'message % is % and needs no retry', message_id, msg.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postrunner.jobs WHERE id = msg.job_id) THEN
        -- The cleanup task deleted the finished job: carry the message with a new one,
        -- created cancelled so that retry_job below makes the transition the mirror sees.
        INSERT INTO postrunner.jobs (id, kind, state, finalized_at, lane)
        VALUES (msg.job_id, 'email.send', 'cancelled', now(), msg.lane);
    END IF;
    PERFORM postrunner.retry_job(msg.job_id);
    RETURN msg.status;
END
$$;
