-- Suppressions read from a provider's own lists (bounces, complaints, unsubscribes the
-- provider keeps for the account): after restoring a backup, they bring back what
-- happened since it, as far as the provider knows (crates/postrunner-feedback/src/provider_suppressions.rs).
--
-- Each address is suppressed for every client that sends through that provider (the
-- list belongs to the account, which they share), except for a client that erased
-- that person: there the hashed suppression stands, and nothing is stored in clear.
--
-- Locks: the suppressions rows it inserts.
CREATE OR REPLACE FUNCTION postrunner.apply_provider_suppressions(p_provider text, p_items jsonb) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH items AS (
        SELECT DISTINCT ON (lower(i.address)) i.address, i.reason
          FROM jsonb_to_recordset(p_items) AS i(address text, reason text)
         WHERE postrunner.is_email_address(i.address)
           AND i.reason IN ('hard_bounce', 'complaint', 'unsubscribe')
         ORDER BY lower(i.address), i.reason
    ),
    senders AS (
        SELECT DISTINCT s.client FROM postrunner.sender_addresses s WHERE s.provider = p_provider
    ),
    added AS (
        INSERT INTO postrunner.suppressions (client, address, reason, detail)
        SELECT c.client, i.address, i.reason::postrunner.suppression_reason, format('%s''s suppression list', p_provider)
          FROM items i CROSS JOIN senders c
         WHERE NOT postrunner.is_erased(c.client, i.address)
        ON CONFLICT (client, lower(address)) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM added
$$;
