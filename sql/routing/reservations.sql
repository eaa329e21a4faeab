-- Closing reservations in the ledger, and giving their capacity back when the provider
-- surely did not take the message.

-- A send that failed: close its ledger row. When the provider did not take the message
-- (p_release), its capacity is given back: the address's count for that day and the
-- provider's minute and month counters. Idempotent (only a 'reserved' row changes).
-- Locks provider_usage before address_usage, the one order every waiting writer uses.
CREATE OR REPLACE FUNCTION postrunner.close_attempt(p_attempt_id bigint, p_release boolean, p_error text)
RETURNS postrunner.attempt_outcome
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a record;
BEGIN
    UPDATE postrunner.send_attempts
       SET outcome = CASE WHEN p_release THEN 'released' ELSE 'failed' END::postrunner.attempt_outcome,
           finished_at = now(),
           error = p_error
     WHERE id = p_attempt_id AND outcome = 'reserved'
    RETURNING provider, from_address, day, reserved_at, client, direction INTO a;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_release THEN
        UPDATE postrunner.provider_usage
           SET sent_in_minute = CASE WHEN minute = date_trunc('minute', a.reserved_at)
                                     THEN greatest(sent_in_minute - 1, 0) ELSE sent_in_minute END,
               sent_in_month = CASE WHEN month = date_trunc('month', a.reserved_at AT TIME ZONE 'UTC')::date
                                    THEN greatest(sent_in_month - 1, 0) ELSE sent_in_month END
         WHERE provider = a.provider;
        -- An address this reservation had parked until its next day is ready again.
        UPDATE postrunner.address_usage u
           SET sent_on_day = greatest(u.sent_on_day - 1, 0),
               next_slot_at = CASE WHEN u.next_slot_at >= postrunner.next_day_start(a.reserved_at, c.time_zone)
                                   THEN a.reserved_at ELSE u.next_slot_at END
          FROM postrunner.clients c
         WHERE u.address = a.from_address AND u.day = a.day AND c.name = a.client;
        UPDATE postrunner.lanes SET ready_at = '-infinity', waiting_for = NULL, waiting_detail = NULL
         WHERE (client, direction) = (a.client, a.direction) AND ready_at > '-infinity';
    END IF;
    RETURN CASE WHEN p_release THEN 'released' ELSE 'failed' END::postrunner.attempt_outcome;
END
$fn$;
