-- Operator controls over single jobs: re-drive and cancel.
--
-- Locks: the job's row (FOR UPDATE in retry_job, the UPDATE in cancel_job); both wait
-- for a claim or completion holding it, which commit in milliseconds.

-- Re-drive a discarded or cancelled job (or hurry a waiting one): it becomes available
-- now with a fresh attempt budget; its error history is kept.
CREATE OR REPLACE FUNCTION postrunner.retry_job(job_id bigint) RETURNS postrunner.job_state
LANGUAGE plpgsql AS $$
DECLARE
    old_state postrunner.job_state;
BEGIN
    SELECT state INTO old_state FROM postrunner.jobs WHERE id = job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist (completed jobs are deleted)', job_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF old_state = 'running' THEN
        RAISE EXCEPTION 'job % is running and cannot be retried now', job_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE postrunner.jobs
       SET state = 'available', attempts = 0, run_at = now(), finalized_at = NULL
     WHERE id = job_id;
    PERFORM postrunner.notify_workers();
    RETURN old_state;
END
$$;

-- Cancel a job that has not started. Returns false when it is running or finished.
CREATE OR REPLACE FUNCTION postrunner.cancel_job(job_id bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH cancelled AS (
        UPDATE postrunner.jobs
           SET state = 'cancelled', finalized_at = now()
         WHERE id = job_id AND state IN ('scheduled', 'available', 'retryable')
        RETURNING 1
    )
    SELECT count(*) = 1 FROM cancelled
$$;
