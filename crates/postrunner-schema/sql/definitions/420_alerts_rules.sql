-- Alert rules evaluated by the scheduler (system.evaluate_alerts every 15 s).
--
-- Locks: the alerts rows it writes; the unique index on firing alerts serialises
-- concurrent evaluations.

-- Fires `provider_down` for providers down longer than alert_provider_down_secs, and
-- resolves the firing ones whose provider is no longer down; fires `budget_80` when a
-- provider has spent 80 % of this month's budget and `budget_reached` at the hard stop
-- (report_cost), each resolved when no longer so (a new month, a raised budget); fires
-- `backup_stale` when backups are on and none was verified for 26 hours. Safe to run from several
-- schedulers at once (the unique index makes a second firing a no-op). Returns how
-- many alerts fired and resolved.
CREATE OR REPLACE FUNCTION postrunner.evaluate_alerts(OUT fired integer, OUT resolved integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    after interval := make_interval(secs => coalesce(
        (SELECT value::float8 FROM postrunner.settings WHERE name = 'alert_provider_down_secs'), 300));
BEGIN
    INSERT INTO postrunner.alerts (kind, subject, detail)
    SELECT 'provider_down', h.provider,
           format('%s down since %s: %s', h.provider, h.since, coalesce(h.last_error, 'no error recorded'))
      FROM postrunner.provider_health h
      JOIN postrunner.providers p ON p.name = h.provider AND p.enabled
     WHERE h.state = 'down' AND h.since <= now() - after
    ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    GET DIAGNOSTICS fired = ROW_COUNT;

    UPDATE postrunner.alerts a
       SET state = 'resolved', resolved_at = now()
     WHERE a.kind = 'provider_down' AND a.state = 'firing'
       AND NOT EXISTS (SELECT 1 FROM postrunner.provider_health h JOIN postrunner.providers p ON p.name = h.provider
                        WHERE h.provider = a.subject AND h.state = 'down' AND p.enabled);
    GET DIAGNOSTICS resolved = ROW_COUNT;

    WITH budgets AS (
        SELECT c.provider, c.spend, c.budget, c.budget_used, c.budget_reached
          FROM postrunner.report_cost c
         WHERE c.level = 'provider' AND c.month = postrunner.utc_month(now()) AND c.budget IS NOT NULL
    ),
    state AS (
        SELECT b.provider, k.kind, b.spend, b.budget,
               CASE k.kind WHEN 'budget_80' THEN b.budget_used >= 0.8 ELSE b.budget_reached END AS on
          FROM budgets b CROSS JOIN (VALUES ('budget_80'), ('budget_reached')) AS k(kind)
    ),
    new_alerts AS (
        INSERT INTO postrunner.alerts (kind, subject, detail)
        SELECT s.kind, s.provider,
               format('%s has spent %s of its %s budget this month%s', s.provider, s.spend, s.budget,
                      CASE WHEN s.kind = 'budget_reached' THEN ': it gets no more messages until the month ends or the budget is raised' ELSE '' END)
          FROM state s WHERE s.on
        ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING
        RETURNING 1
    ),
    cleared_alerts AS (
        UPDATE postrunner.alerts a
           SET state = 'resolved', resolved_at = now()
         WHERE a.kind IN ('budget_80', 'budget_reached') AND a.state = 'firing'
           AND NOT EXISTS (SELECT 1 FROM state s WHERE s.provider = a.subject AND s.kind = a.kind AND s.on)
        RETURNING 1
    )
    SELECT fired + (SELECT count(*) FROM new_alerts), resolved + (SELECT count(*) FROM cleared_alerts) INTO fired, resolved;

    -- backup_stale: the daily backup is on, and no backup has been verified for 26 hours
    -- (counted from the first attempt when none ever was), as Prometheus's
    -- PostrunnerBackupStale does for deployments without it.
    WITH stale AS (
        SELECT format('the last verified backup is from %s; the backup schedule runs at "%s"',
                      coalesce(v.last::text, 'never'), s.cron) AS detail
          FROM postrunner.schedules s
         CROSS JOIN LATERAL (SELECT max(b.verified_at) AS last, min(b.started_at) AS first FROM postrunner.backups b) v
         WHERE s.name = 'backup' AND s.enabled
           AND coalesce(v.last, v.first, now()) < now() - interval '26 hours'
    ),
    new_alerts AS (
        INSERT INTO postrunner.alerts (kind, subject, detail)
        SELECT 'backup_stale', 'database', st.detail FROM stale st
        ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING
        RETURNING 1
    ),
    cleared_alerts AS (
        UPDATE postrunner.alerts a
           SET state = 'resolved', resolved_at = now()
         WHERE a.kind = 'backup_stale' AND a.state = 'firing' AND NOT EXISTS (SELECT 1 FROM stale)
        RETURNING 1
    )
    SELECT fired + (SELECT count(*) FROM new_alerts), resolved + (SELECT count(*) FROM cleared_alerts) INTO fired, resolved;
END
$fn$;
