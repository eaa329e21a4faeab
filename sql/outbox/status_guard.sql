-- `status` is postrunner's to write. A change of status is accepted when it is:
-- - a mirror of the carrying job's state (what jobs_sync_outbox writes), or
-- - the final 'sent' (or 'queued' after a re-drive) written by postrunner once the job is
--   gone, which it announces with SET LOCAL postrunner.internal = 'on', or
-- - an application's cancel of a message that has not started (queued or retrying).
-- Anything else is refused, whoever writes it, so a forged 'sent' or 'sending' cannot
-- hide a message from the queue.
--
-- Locks: reads the carrying job without locking it.
CREATE OR REPLACE FUNCTION postrunner.outbox_guard_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job record;
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status IN ('queued', 'retrying') THEN
        RETURN NEW;
    END IF;
    SELECT state, attempts INTO job FROM postrunner.jobs WHERE id = NEW.job_id;
    IF FOUND AND NEW.status = postrunner.message_status_for(job.state, job.attempts) THEN
        RETURN NEW;
    END IF;
    IF NOT FOUND AND current_setting('postrunner.internal', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'cancelled' THEN
        PERFORM postrunner.reject(format('message %s is %s and can no longer be cancelled', OLD.id, OLD.status),
                                  'only queued or retrying messages can be cancelled', 'object_not_in_prerequisite_state');
    END IF;
    PERFORM postrunner.reject(format('status is managed by postrunner; an application may only set it to ''cancelled'' (got %L)', NEW.status),
                              NULL, 'insufficient_privilege');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_guard_status
    BEFORE UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION postrunner.outbox_guard_status();
