-- One-click unsubscribe (RFC 8058): `postrunner web` checks a message's signed link
-- (src/unsubscribe.rs), then calls these.
--
-- Locks: the suppression row (through its unique index). Nothing else: the page and the
-- POST read the message without locking it.

-- What the unsubscribe page shows and the link's signature covers: the message's
-- client, the name to show for it, and the recipient; `erased` when the recipient was
-- erased (GDPR) since: the address the link was signed for is gone, and the person is
-- kept from mail for good, so their old links say they are unsubscribed
-- (src/web/unsubscribe.rs). No row: no such message.
DROP FUNCTION IF EXISTS postrunner.unsubscribe_target(uuid);
CREATE OR REPLACE FUNCTION postrunner.unsubscribe_target(p_message uuid)
RETURNS TABLE (client text, display_name text, recipient text, erased boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
    SELECT o.client, coalesce(c.display_name, c.name), o.to_address, postrunner.is_erased_address(o.to_address)
      FROM postrunner.outbox o
      JOIN postrunner.clients c ON c.name = o.client
     WHERE o.id = p_message
$$;

-- The recipient of message p_message unsubscribes from its client: suppressed as
-- 'unsubscribe', naming the message; a quarantine (soft bounces) becomes this permanent
-- suppression; an existing permanent one is kept as it is (idempotent: a second POST
-- changes nothing). Messages still queued to the recipient end 'suppressed' at the claim.
-- Returns whether the suppression is new (or replaced a quarantine).
CREATE OR REPLACE FUNCTION postrunner.unsubscribe(p_message uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    changed integer;
BEGIN
    INSERT INTO postrunner.suppressions AS s (client, address, reason, detail, message_id)
    SELECT o.client, o.to_address, 'unsubscribe', 'one-click unsubscribe link', o.id
      FROM postrunner.outbox o
     WHERE o.id = p_message
    ON CONFLICT (client, lower(address)) DO UPDATE
       SET reason = excluded.reason, detail = excluded.detail, message_id = excluded.message_id,
           event_id = NULL, expires_at = NULL
     WHERE s.expires_at IS NOT NULL;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed > 0;
END
$fn$;
