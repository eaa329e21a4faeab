-- Triggers on postrunner.jobs that every kind of job shares: future jobs wait in
-- 'scheduled', and inserts wake idle workers.
--
-- Locks: none beyond the inserted rows.

-- A job inserted with run_at in the future waits in `scheduled`, out of the claim index.
-- The WHEN clause is evaluated without calling the function, so ordinary inserts pay
-- almost nothing for this.
CREATE OR REPLACE FUNCTION postrunner.jobs_schedule_future() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.state := 'scheduled';
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER jobs_schedule_future
    BEFORE INSERT ON postrunner.jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND NEW.run_at > now())
    EXECUTE FUNCTION postrunner.jobs_schedule_future();

-- Idle workers LISTEN on their channel (sql/definitions/060_queue_wake.sql). One NOTIFY per INSERT
-- statement (and PostgreSQL folds identical notifications within a transaction), never
-- one per row.
CREATE OR REPLACE FUNCTION postrunner.jobs_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM postrunner.notify_workers();
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER jobs_notify_insert
    AFTER INSERT ON postrunner.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.jobs_notify_insert();
