-- The outbox status follows the carrying job's state (docs/state_machine.md).
--
-- jobs_sync_outbox mirrors job transitions of email jobs into the outbox, and closes a
-- reservation still 'reserved' in the ledger when its attempt leaves `running` (its
-- worker was rescued after its lease expired, or released it at shutdown; a send that
-- failed was already closed by the worker, as 'uncertain' or 'released'), keeping its
-- capacity: 'uncertain' when the job is held (the send may have reached the provider:
-- sql/definitions/340_outbox_uncertain.sql decides it), else 'lost' (the attempt never got that far).
--
-- A row trigger whose WHEN clause filters on the kind: other kinds of job pay only for
-- evaluating the WHEN. The claim's own transition (available -> running) is not
-- mirrored row by row: the routed claim writes 'sending' for its whole batch at once.
--
-- Locks: the job's outbox row, after the job's row (the queue's lock order: jobs, then
-- outbox rows).

-- The outbox status a job state stands for.
CREATE OR REPLACE FUNCTION postrunner.message_status_for(state postrunner.job_state, attempts integer)
RETURNS postrunner.message_status
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE state
        WHEN 'running'   THEN 'sending'
        WHEN 'retryable' THEN 'retrying'
        WHEN 'held'      THEN 'uncertain'
        WHEN 'discarded' THEN 'failed'
        WHEN 'cancelled' THEN 'cancelled'
        ELSE CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END
    END::postrunner.message_status
$$;

CREATE OR REPLACE FUNCTION postrunner.jobs_sync_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    mirrored postrunner.message_status := postrunner.message_status_for(NEW.state, NEW.attempts);
BEGIN
    UPDATE postrunner.outbox
       SET status = mirrored,
           attempts = NEW.attempts,
           last_error = NEW.last_error
     WHERE job_id = NEW.id
       AND (status, attempts, last_error) IS DISTINCT FROM (mirrored, NEW.attempts, NEW.last_error);
    IF OLD.state = 'running' AND NEW.state <> 'running' THEN
        UPDATE postrunner.send_attempts
           SET outcome = CASE WHEN NEW.state = 'held' THEN 'uncertain' ELSE 'lost' END::postrunner.attempt_outcome,
               finished_at = now(),
               error = coalesce(NEW.last_error, 'released before the attempt started')
         WHERE job_id = NEW.id AND outcome = 'reserved';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER jobs_sync_outbox
    AFTER UPDATE OF state, attempts ON postrunner.jobs
    FOR EACH ROW WHEN (NEW.kind = 'email.send'
                       AND (OLD.state, OLD.attempts) IS DISTINCT FROM (NEW.state, NEW.attempts)
                       AND NOT (OLD.state = 'available' AND NEW.state = 'running'))
    EXECUTE FUNCTION postrunner.jobs_sync_outbox();
