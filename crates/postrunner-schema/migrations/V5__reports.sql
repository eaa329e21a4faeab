-- Reporting views for psql and for the read-only role (sql/roles.sql). Part of the
-- public interface: later migrations change them with CREATE OR REPLACE VIEW only.

-- Depth of the job queue by kind and state, with the age of the oldest job that could
-- run now but has not been claimed (the number to alert on).
CREATE VIEW postrunner.report_queue AS
SELECT kind,
       state,
       count(*)                                                        AS jobs,
       now() - min(run_at) FILTER (WHERE state = 'available')          AS oldest_waiting,
       min(run_at) FILTER (WHERE state IN ('scheduled', 'retryable'))  AS next_run_at
  FROM postrunner.jobs
 GROUP BY kind, state;

-- Messages by client, direction and status.
CREATE VIEW postrunner.report_outbox AS
SELECT client, direction, status, count(*) AS messages,
       min(created_at) AS oldest, max(created_at) AS newest
  FROM postrunner.outbox
 GROUP BY client, direction, status;
