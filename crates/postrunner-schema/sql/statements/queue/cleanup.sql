-- Periodic housekeeping: forget processes silent for a day, schedule history older than
-- a week, and discarded or cancelled jobs finalized more than $1 ago (their messages'
-- outcome stays in postrunner.outbox); webhook nonces older than two days (a request
-- that old is refused by its timestamp anyway: the web role's tolerance is minutes);
-- and the raw payloads of events older than the setting event_payload_days (the
-- events themselves stay), at most 10,000 a run so one run stays short.
--
-- Locks: the rows it deletes or updates; none that a claim or a webhook waits on for
-- long (the payload update takes at most 10,000 event rows, oldest first).
WITH processes AS (
    DELETE FROM postrunner.processes WHERE heartbeat_at < now() - interval '1 day' RETURNING 1
), runs AS (
    DELETE FROM postrunner.schedule_runs WHERE recorded_at < now() - interval '7 days' RETURNING 1
), jobs AS (
    DELETE FROM postrunner.jobs
     WHERE state IN ('discarded', 'cancelled') AND finalized_at < now() - $1::interval
    RETURNING 1
), nonces AS (
    DELETE FROM postrunner.webhook_nonces WHERE seen_at < now() - interval '2 days' RETURNING 1
), payloads AS (
    UPDATE postrunner.events SET payload = NULL
     WHERE id IN (SELECT id FROM postrunner.events
                   WHERE received_at < now() - make_interval(days => postrunner.setting_number('event_payload_days', 30)::integer)
                     AND payload IS NOT NULL
                   ORDER BY received_at
                   LIMIT 10000)
    RETURNING 1
)
SELECT (SELECT count(*) FROM processes) AS processes,
       (SELECT count(*) FROM runs) AS schedule_runs,
       (SELECT count(*) FROM jobs) AS jobs,
       (SELECT count(*) FROM nonces) AS webhook_nonces,
       (SELECT count(*) FROM payloads) AS event_payloads
