-- Alert rules evaluated by the scheduler (system.evaluate_alerts every 15 s).
--
-- Locks: the alerts rows it writes; the unique index on firing alerts serialises
-- concurrent evaluations.

-- Fires `provider_down` for providers down longer than alert_provider_down_secs, and
-- resolves the firing ones whose provider is no longer down. Safe to run from several
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
END
$fn$;
