-- A provider refused recipient $2 of client $1 for good: suppress it (hard_bounce),
-- keeping the provider's answer $3. An existing suppression stays as it was, except a
-- quarantine (soft bounces, which expires), which becomes permanent.
INSERT INTO postrunner.suppressions (client, address, reason, detail)
VALUES ($1, $2, 'hard_bounce', left($3, 500))
ON CONFLICT (client, lower(address)) DO UPDATE
   SET reason = excluded.reason, detail = excluded.detail, expires_at = NULL, event_id = NULL
 WHERE postrunner.suppressions.expires_at IS NOT NULL
