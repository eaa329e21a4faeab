-- Cancelling a message: an application's `UPDATE outbox SET status = 'cancelled'`
-- cancels the carrying job.
--
-- Locks: the outbox row is locked first (by the application's UPDATE), so, against the
-- queue's order (jobs, then outbox rows), the job is taken with SKIP LOCKED: a job
-- locked at this instant by a worker's claim or completion is being sent, and the
-- cancel fails rather than wait. When the change is the mirror of a job that is already
-- cancelled (postrunner.cancel_job), there is nothing to do.
CREATE OR REPLACE FUNCTION postrunner.outbox_cancel_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job_state postrunner.job_state;
BEGIN
    UPDATE postrunner.jobs
       SET state = 'cancelled', finalized_at = now()
     WHERE id = (SELECT id FROM postrunner.jobs
                  WHERE id = NEW.job_id AND state IN ('scheduled', 'available', 'retryable')
                  FOR UPDATE SKIP LOCKED);
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT state INTO job_state FROM postrunner.jobs WHERE id = NEW.job_id;
    IF job_state = 'cancelled' THEN
        RETURN NULL;
    END IF;
    PERFORM postrunner.reject(format('message %s is being sent and can no longer be cancelled', NEW.id),
                              NULL, 'object_not_in_prerequisite_state');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_cancel_job
    AFTER UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status = 'cancelled' AND OLD.status <> 'cancelled')
    EXECUTE FUNCTION postrunner.outbox_cancel_job();
