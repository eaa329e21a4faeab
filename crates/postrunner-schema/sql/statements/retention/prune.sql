-- Apply the retention settings (migrations/V30__retention.sql) to the operational tables
-- that grow with time: provider probes (probe_retention_days; report_provider_health's
-- 15 minutes are far inside it; a provider disabled for longer loses its last probe, and
-- with it its latency metric, which no probe would refresh anyway), the provider
-- health history (health_history_retention_days), and alerts resolved longer ago than
-- alert_retention_days, their notifications with them (ON DELETE CASCADE). A firing
-- alert is kept however old. And the bodies and headers of messages final (sent,
-- delivered, bounced, complained, failed, suppressed, cancelled) for longer than
-- message_body_retention_days, counted from when they were sent (or created, for those
-- never sent): the row stays, body_cleared_at says when (migrations/V31). At most 10,000
-- rows per table a run, oldest first, so one run stays short and a backlog goes over a
-- few hourly runs.
--
-- Locks: the rows it deletes, which nothing else writes any more (a resolved alert is
-- never updated again; probes and history rows are written once), and the messages whose
-- bodies it clears, skipping any another transaction holds (a re-drive, an erasure, a
-- late event): they are cleared on a later run.
WITH probes AS (
    DELETE FROM postrunner.provider_probes
     WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM postrunner.provider_probes
            WHERE at < now() - make_interval(days => postrunner.setting_number('probe_retention_days', 14)::integer)
            ORDER BY at
            LIMIT 10000))
    RETURNING 1
), history AS (
    DELETE FROM postrunner.provider_health_history
     WHERE id IN (
           SELECT id FROM postrunner.provider_health_history
            WHERE at < now() - make_interval(days => postrunner.setting_number('health_history_retention_days', 180)::integer)
            ORDER BY at
            LIMIT 10000)
    RETURNING 1
), alerts AS (
    DELETE FROM postrunner.alerts
     WHERE id IN (
           SELECT id FROM postrunner.alerts
            WHERE state = 'resolved'
              AND resolved_at < now() - make_interval(days => postrunner.setting_number('alert_retention_days', 180)::integer)
            ORDER BY resolved_at
            LIMIT 10000)
    RETURNING 1
), bodies AS (
    UPDATE postrunner.outbox AS o
       SET text_body = NULL, html_body = NULL, headers = NULL, body_cleared_at = now()
     WHERE o.id IN (
           SELECT m.id FROM postrunner.outbox m
            WHERE m.body_cleared_at IS NULL
              AND coalesce(m.sent_at, m.created_at)
                  < now() - make_interval(days => postrunner.setting_number('message_body_retention_days', 30)::integer)
              AND m.status IN ('sent', 'delivered', 'bounced', 'complained', 'failed', 'suppressed', 'cancelled')
            ORDER BY coalesce(m.sent_at, m.created_at)
            LIMIT 10000
              FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM probes) AS provider_probes,
       (SELECT count(*) FROM history) AS provider_health_history,
       (SELECT count(*) FROM alerts) AS alerts,
       (SELECT count(*) FROM bodies) AS message_bodies
