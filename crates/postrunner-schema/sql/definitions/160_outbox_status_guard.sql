-- `status` is postrunner's to write. A change of status is accepted when it is:
-- - an application's cancel of a message that has not started (queued or retrying);
-- - an application's re-drive of a failed or cancelled message (back to queued:
--   postrunner.retry_message does it, sql/definitions/180_outbox_retry_message.sql);
-- - a mirror of the carrying job's state (what jobs_sync_outbox writes); or
-- - written by postrunner itself (a member of postrunner_service, or the schema's
--   owner): the claim's 'sending', the final 'sent' or 'suppressed' once the job is gone.
--   Those writes do not even fire the trigger (its WHEN clause).
-- Anything else is refused: an application cannot forge 'sent' to hide a message from
-- the queue, nor turn a sent message into 'failed' to have it re-driven and sent twice
-- (tests/tenancy.rs).
--
-- Who makes the change is decided by the trigger's WHEN clause, evaluated as the caller
-- (current_user): postrunner's own writes skip the guard. The function itself runs as
-- the schema's owner (SECURITY DEFINER) to read the carrying job, which an application
-- may not read: no function exposes a job's state to an application login (there was
-- one, and job ids are sequential: tests/tenancy.rs,
-- an_application_cannot_read_another_clients_jobs_through_a_function). Which rows a
-- role may touch at all is the row-level policy's business (sql/definitions/470_security_tenancy.sql).
-- Locks: reads the carrying job without locking it.

DROP FUNCTION IF EXISTS postrunner.carrying_job(bigint);

CREATE OR REPLACE FUNCTION postrunner.outbox_guard_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job_state postrunner.job_state;
    job_attempts integer;
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status IN ('queued', 'retrying') THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'queued' AND OLD.status IN ('failed', 'cancelled') THEN
        RETURN NEW;
    END IF;
    SELECT j.state, j.attempts INTO job_state, job_attempts FROM postrunner.jobs j WHERE j.id = NEW.job_id;
    IF job_state IS NOT NULL AND NEW.status = postrunner.message_status_for(job_state, job_attempts) THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'cancelled' THEN
        PERFORM postrunner.reject(format('message %s is %s and can no longer be cancelled', OLD.id, OLD.status),
                                  'only queued or retrying messages can be cancelled', 'object_not_in_prerequisite_state');
    END IF;
    PERFORM postrunner.reject(
        format('status is managed by postrunner; an application may only cancel a queued or retrying message, or re-drive a failed or cancelled one (got %L for a message that is %s)',
               NEW.status, OLD.status),
        NULL, 'insufficient_privilege');
    RETURN NULL;
END
$$;

-- Postrunner's own writes (a claim's batch of 'sending', a completion's 'sent') skip the
-- trigger in its WHEN clause: a function call per row of a batch is what a busy worker
-- would otherwise pay.
CREATE OR REPLACE TRIGGER outbox_guard_status
    BEFORE UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND NOT postrunner.acts_as_service())
    EXECUTE FUNCTION postrunner.outbox_guard_status();
