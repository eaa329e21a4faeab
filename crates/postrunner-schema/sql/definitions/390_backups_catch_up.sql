-- A restore's catch-up (src/backup/restore.rs, `backup restore --catch-up-from`): the
-- erasures and suppressions of the database the backup was taken from, made since the
-- backup, copied into the restored one before any worker runs.
--
-- A suppression merges by how lasting its reason is: a permanent one (unsubscribe,
-- complaint, hard bounce, manual, ...: no expires_at) always replaces a quarantine (soft
-- bounces), whichever database holds which: a person quarantined in the backup who
-- unsubscribed after it stays unsubscribed, not mailed again once the quarantine ends
-- (tests/backups.rs, a_restore_keeps_an_unsubscribe_made_after_a_quarantine_in_the_backup);
-- of two quarantines the later end stands; a permanent one already there stays as it
-- is. Rows of clients the restored database does not have are skipped; an erased
-- person's row is never written in clear (sql/definitions/100_gdpr_erasure.sql).
--
-- Locks: the suppression rows it writes (through their unique index) and the erasure
-- rows it inserts; run before any worker starts.
CREATE OR REPLACE FUNCTION postrunner.catch_up_restore(
    p_erasures jsonb, p_suppressions jsonb,
    OUT erasures_copied bigint, OUT suppressions_copied bigint, OUT suppressions_upgraded bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
BEGIN
    INSERT INTO postrunner.erasures (client, address_hash, erased_at, erased)
    SELECT x.client, x.address_hash, x.erased_at, x.erased
      FROM jsonb_to_recordset(p_erasures) AS x(client text, address_hash text, erased_at timestamptz, erased jsonb)
     WHERE EXISTS (SELECT 1 FROM postrunner.clients c WHERE c.name = x.client)
    ON CONFLICT (client, address_hash) DO NOTHING;
    GET DIAGNOSTICS erasures_copied = ROW_COUNT;

    WITH given AS (
        SELECT DISTINCT ON (x.client, lower(x.address))
               x.client, x.address, x.reason::postrunner.suppression_reason AS reason, x.detail, x.created_at,
               x.expires_at
          FROM jsonb_to_recordset(p_suppressions)
               AS x(client text, address text, reason text, detail text, created_at timestamptz, expires_at timestamptz)
         WHERE EXISTS (SELECT 1 FROM postrunner.clients c WHERE c.name = x.client)
         -- One row per person: the most lasting (permanent first, then the latest end).
         ORDER BY x.client, lower(x.address), x.expires_at DESC NULLS FIRST
    ),
    merged AS (
        INSERT INTO postrunner.suppressions AS s (client, address, reason, detail, created_at, expires_at)
        SELECT g.client, g.address, g.reason, g.detail, g.created_at, g.expires_at FROM given g
        ON CONFLICT (client, lower(address)) DO UPDATE
           SET reason = excluded.reason, detail = excluded.detail, created_at = excluded.created_at,
               expires_at = excluded.expires_at, event_id = NULL, message_id = NULL
         WHERE s.expires_at IS NOT NULL
           AND (excluded.expires_at IS NULL OR excluded.expires_at > s.expires_at)
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
      INTO suppressions_copied, suppressions_upgraded
      FROM merged;
END
$fn$;
