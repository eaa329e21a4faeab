-- Reporting views over the queue, the outbox and the processes, for psql and the
-- read-only role (sql/definitions/010_roles.sql). Part of the public interface (sql/README.md).
--
-- A login bound to some clients (sql/definitions/470_security_tenancy.sql) sees their messages only;
-- the queue as a whole and the processes need access to every client.
--
-- Locks: none (plain reads).
--
-- Every view here is a security barrier: a login's own WHERE clause (a cast that fails
-- on a value, a function of its own that prints its arguments) runs only on the rows
-- the view's filter lets through, never before it (tests/tenancy.rs,
-- no_view_a_bound_login_reads_leaks_another_clients_rows).

-- Live postrunner processes: each row is refreshed by its process's heartbeat.
CREATE OR REPLACE VIEW postrunner.workers WITH (security_barrier) AS
SELECT p.id, p.role, p.host, p.pid, p.version, p.concurrency, p.started_at, p.heartbeat_at,
       (SELECT count(*) FROM postrunner.jobs j WHERE j.state = 'running' AND j.leased_by = p.id) AS running_jobs,
       p.signs_unsubscribe
  FROM postrunner.processes p
 WHERE p.heartbeat_at > now() - 3 * p.heartbeat_interval
   AND (SELECT postrunner.may_act_for(NULL));

-- Depth of the job queue by kind and state, with the age of the oldest job that could
-- run now but has not been claimed (the number to alert on).
CREATE OR REPLACE VIEW postrunner.report_queue WITH (security_barrier) AS
SELECT kind,
       state,
       count(*)                                                        AS jobs,
       now() - min(run_at) FILTER (WHERE state = 'available')          AS oldest_waiting,
       min(run_at) FILTER (WHERE state IN ('scheduled', 'retryable'))  AS next_run_at
  FROM postrunner.jobs
 WHERE (SELECT postrunner.may_act_for(NULL))
 GROUP BY kind, state;

-- Messages by client, direction and status.
CREATE OR REPLACE VIEW postrunner.report_outbox WITH (security_barrier) AS
SELECT client, direction, status, count(*) AS messages,
       min(created_at) AS oldest, max(created_at) AS newest
  FROM postrunner.outbox
 WHERE (SELECT postrunner.may_act_for(NULL)) OR client = ANY ((SELECT postrunner.bound_clients())::text[])
 GROUP BY client, direction, status;
