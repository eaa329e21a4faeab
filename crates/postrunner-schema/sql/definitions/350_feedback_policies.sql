-- What an event does to a recipient, per client (the client's columns, else the
-- settings of the same name):
--   hard bounce   -> suppressed ('hard_bounce');
--   complaint     -> suppressed ('complaint') at once;
--   unsubscribe   -> suppressed ('unsubscribe');
--   soft bounces  -> quarantined ('soft_bounce', expiring after quarantine_days) once
--                    soft_bounce_limit of them fall within soft_bounce_days.
-- A permanent reason replaces a quarantine; an existing permanent suppression stays as
-- it was. Each suppression names the event that caused it (event_id). Messages still
-- queued to a suppressed recipient end 'suppressed' when the claim reaches them
-- (sql/definitions/270_routing_take_messages.sql), using no capacity.
--
-- Locks: the suppression rows it writes (through their unique index). Called by
-- record_events in its transaction.
CREATE OR REPLACE FUNCTION postrunner.apply_event_policies(p_event_ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
BEGIN
    -- Permanent suppressions, one per (client, recipient): the most serious reason.
    INSERT INTO postrunner.suppressions AS s (client, address, reason, detail, event_id)
    SELECT DISTINCT ON (e.client, lower(e.recipient))
           e.client, e.recipient,
           CASE e.kind WHEN 'complained' THEN 'complaint' WHEN 'unsubscribed' THEN 'unsubscribe' ELSE 'hard_bounce' END::postrunner.suppression_reason,
           left(coalesce(e.diagnostic, e.kind::text), 500), e.id
      FROM postrunner.events e
     WHERE e.id = ANY (p_event_ids)
       AND e.client IS NOT NULL AND postrunner.is_email_address(e.recipient)
       -- An erased person is kept from mail by the erasure itself, never in clear.
       AND NOT postrunner.is_erased_address(e.recipient)
       AND (e.kind IN ('complained', 'unsubscribed') OR (e.kind = 'bounced' AND e.bounce_class = 'hard'))
     ORDER BY e.client, lower(e.recipient), CASE e.kind WHEN 'complained' THEN 0 WHEN 'bounced' THEN 1 ELSE 2 END, e.id
    ON CONFLICT (client, lower(address)) DO UPDATE
       SET reason = excluded.reason, detail = excluded.detail, event_id = excluded.event_id, expires_at = NULL
     WHERE s.expires_at IS NOT NULL;

    -- Quarantine after repeated soft bounces (an expired quarantine starts again).
    INSERT INTO postrunner.suppressions AS s (client, address, reason, detail, event_id, expires_at)
    SELECT DISTINCT ON (e.client, lower(e.recipient))
           e.client, e.recipient, 'soft_bounce', left(coalesce(e.diagnostic, 'soft bounces'), 500), e.id,
           e.occurred_at + make_interval(days => coalesce(c.quarantine_days, postrunner.setting_number('quarantine_days', 30)::integer))
      FROM postrunner.events e
      JOIN postrunner.clients c ON c.name = e.client
     WHERE e.id = ANY (p_event_ids)
       AND e.kind = 'bounced' AND e.bounce_class = 'soft'
       AND postrunner.is_email_address(e.recipient) AND NOT postrunner.is_erased_address(e.recipient)
       AND (SELECT count(*)
              FROM postrunner.events b
             WHERE b.client = e.client AND lower(b.recipient) = lower(e.recipient)
               AND b.kind = 'bounced' AND b.bounce_class = 'soft'
               AND b.occurred_at > e.occurred_at - make_interval(days => coalesce(c.soft_bounce_days, postrunner.setting_number('soft_bounce_days', 7)::integer))
               AND b.occurred_at <= e.occurred_at)
           >= coalesce(c.soft_bounce_limit, postrunner.setting_number('soft_bounce_limit', 3)::integer)
     ORDER BY e.client, lower(e.recipient), e.occurred_at DESC
    ON CONFLICT (client, lower(address)) DO UPDATE
       SET reason = excluded.reason, detail = excluded.detail, event_id = excluded.event_id, expires_at = excluded.expires_at
     WHERE s.expires_at IS NOT NULL AND s.expires_at <= now();
END
$fn$;
