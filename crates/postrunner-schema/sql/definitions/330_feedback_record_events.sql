-- Provider events in: the web role verifies a webhook request, turns its payload into
-- normalised events and hands them all to postrunner.record_events in one transaction,
-- which it commits before it answers 2xx (so a crash loses nothing: the provider
-- retries, and the retry is stored once).
--
-- What one call does, for the events not seen before ((provider, dedupe_key) is
-- unique: a provider's retry, or the same event reaching two web replicas at once,
-- is stored once, the second waiting on the first's index entry, tests/webhooks.rs):
--   1. finds each event's message: by postrunner's id echoed in the event, among the
--      messages with an attempt at this provider (a message re-routed to another
--      provider keeps its attempt here; one never sent through this provider is not
--      matched: tests/webhooks.rs,
--      an_event_for_a_message_never_sent_through_that_provider_is_not_applied), else by
--      the provider's id; an event for no known message is kept, with message_id NULL,
--      and counted;
--   1b. an event is about its message's recipient: the provider's own `recipient` is
--      kept in reported_recipient when it names someone else, and never acted upon (a
--      signed event cannot suppress an address of its choosing); for a message whose
--      recipient was erased (GDPR), nothing about the person is stored: no address,
--      diagnostic or payload (sql/definitions/100_gdpr_erasure.sql);
--   2. moves the message's status forward only: sent -> delivered -> bounced ->
--      complained (a late 'delivered' after 'bounced' changes nothing);
--   2b. a message whose send at this provider was uncertain is settled as sent, if it
--      has not been sent again yet: held, or waiting for its resend after the wait, or
--      failed under never-duplicate (postrunner.resolve_uncertain, sql/definitions/340_outbox_uncertain.sql:
--      the job is locked before the outbox row, the queue's order);
--   3. applies the client's policies (postrunner.apply_event_policies) and pauses the
--      addresses, directions and clients over their bounce or complaint thresholds
--      (postrunner.evaluate_pauses, sql/definitions/360_feedback_pauses.sql).
-- With p_nonce (Mailgun's token, which its signature covers instead of the body), the
-- nonce is recorded in the same transaction under p_nonce_scope (a digest of the
-- signing key: crates/postrunner-feedback/src/lib.rs): a second request with it is refused (replayed =
-- true, nothing else done), whichever provider row it is sent to.
--
-- Locks: the nonce's and the new events' index entries; the jobs of the uncertain
-- messages the events are about (FOR UPDATE in id order, before their outbox rows, the
-- queue's order: sql/definitions/340_outbox_uncertain.sql); the messages' outbox rows
-- (FOR NO KEY UPDATE, in id order, so two batches touching the same messages queue up
-- instead of deadlocking); suppression rows through their unique index. A message
-- still 'sending' is locked too: its completion then either waits for this commit and
-- reads the event (sql/statements/outbox/record_sent.sql takes the furthest status the message's
-- events give), or has committed first, and this update sees its 'sent' (READ
-- COMMITTED re-checks a row it waited for) and moves it on. Either order ends with the
-- event's status (tests/webhooks.rs).

-- How far along a message is, for moving only forward; NULL for statuses events do
-- not move (the queue's own).
CREATE OR REPLACE FUNCTION postrunner.feedback_rank(s postrunner.message_status) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE s WHEN 'sent' THEN 0 WHEN 'delivered' THEN 1 WHEN 'bounced' THEN 2 WHEN 'complained' THEN 3 END
$$;

-- The status an event moves its message to, if any. Every literal is typed, so the
-- body is immutable as declared and the planner inlines it (an enum cast from text
-- is only stable, which would make every row pay a function call).
CREATE OR REPLACE FUNCTION postrunner.event_status(kind postrunner.event_kind, class postrunner.bounce_class)
RETURNS postrunner.message_status
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind = 'delivered'::postrunner.event_kind THEN 'delivered'::postrunner.message_status
        WHEN kind = 'bounced'::postrunner.event_kind AND class = 'hard'::postrunner.bounce_class
            THEN 'bounced'::postrunner.message_status
        WHEN kind = 'complained'::postrunner.event_kind THEN 'complained'::postrunner.message_status
    END
$$;

-- The furthest status the events of message p_message move it to (NULL: none).
CREATE OR REPLACE FUNCTION postrunner.status_from_events(p_message uuid) RETURNS postrunner.message_status
LANGUAGE sql STABLE AS $$
    SELECT s
      FROM (SELECT postrunner.event_status(e.kind, e.bounce_class) AS s
              FROM postrunner.events e
             WHERE e.message_id = p_message) x
     WHERE s IS NOT NULL
     ORDER BY postrunner.feedback_rank(s) DESC
     LIMIT 1
$$;

DROP FUNCTION IF EXISTS postrunner.record_events(text, jsonb, text);
CREATE OR REPLACE FUNCTION postrunner.record_events(
    p_provider text,
    p_events jsonb,
    p_nonce text DEFAULT NULL,
    p_nonce_scope text DEFAULT NULL,
    OUT replayed boolean,
    OUT stored integer,
    OUT duplicates integer,
    OUT unmatched integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    new_ids bigint[];
    open_ids uuid[];
    open_provider_ids text[];
    any_open boolean;
BEGIN
    replayed := false;
    stored := 0;
    duplicates := 0;
    unmatched := 0;
    IF p_nonce IS NOT NULL THEN
        INSERT INTO postrunner.webhook_nonces (scope, nonce) VALUES (coalesce(p_nonce_scope, p_provider), p_nonce)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            replayed := true;
            RETURN;
        END IF;
    END IF;

    WITH given AS (
        SELECT e.*
          FROM jsonb_to_recordset(p_events) AS e(
                   dedupe_key text, kind postrunner.event_kind, bounce_class postrunner.bounce_class,
                   diagnostic text, recipient text, our_id uuid, provider_message_id text,
                   occurred_at timestamptz, payload jsonb)
    ),
    matched AS (
        SELECT g.*, m.id AS message_id, m.client, m.to_address, m.status,
               coalesce(postrunner.is_erased_address(m.to_address), false) AS erased
          FROM given g
          LEFT JOIN LATERAL (
                SELECT o.id, o.client, o.to_address, o.status FROM postrunner.outbox o
                 WHERE o.id = g.our_id
                   AND EXISTS (SELECT 1 FROM postrunner.send_attempts a
                                WHERE a.message_id = o.id AND a.provider = p_provider)
                UNION ALL
                SELECT o.id, o.client, o.to_address, o.status FROM postrunner.outbox o
                 WHERE g.provider_message_id IS NOT NULL
                   AND o.provider = p_provider AND o.provider_message_id = g.provider_message_id
                 LIMIT 1) m ON true
    ),
    inserted AS (
        INSERT INTO postrunner.events (provider, dedupe_key, kind, bounce_class, diagnostic, recipient,
                                       reported_recipient, message_id, client, provider_message_id, occurred_at,
                                       payload)
        SELECT DISTINCT ON (dedupe_key)
               p_provider, dedupe_key, kind, bounce_class,
               CASE WHEN NOT erased THEN left(diagnostic, 1000) END,
               -- Who the event is about: its message's recipient (a bounce mail that
               -- names no one is about it too); for no message, whom it names.
               left(CASE WHEN message_id IS NOT NULL THEN to_address ELSE recipient END, 320),
               CASE WHEN message_id IS NOT NULL AND NOT erased AND lower(btrim(recipient)) <> lower(to_address)
                    THEN left(recipient, 320) END,
               message_id, client, left(provider_message_id, 300), occurred_at,
               CASE WHEN NOT erased THEN payload END
          FROM matched
         -- Key order: two batches sharing events insert them in the same order, so
         -- one waits for the other instead of deadlocking.
         ORDER BY dedupe_key
        ON CONFLICT ON CONSTRAINT events_once DO NOTHING
        RETURNING id, message_id
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}'), count(*) FILTER (WHERE message_id IS NULL),
           (SELECT bool_or(m.status IN ('uncertain', 'queued', 'retrying', 'failed', 'cancelled')) FROM matched m)
      INTO new_ids, unmatched, any_open
      FROM inserted;
    stored := cardinality(new_ids);
    duplicates := jsonb_array_length(p_events) - stored;
    IF stored = 0 THEN
        RETURN;
    END IF;

    -- Messages whose send at this provider was uncertain (held, or given up or waiting
    -- to be sent again after the wait): the provider has them, so they are sent, not
    -- sent again (sql/definitions/340_outbox_uncertain.sql). Rare: the statement runs only when a
    -- matched message was not known to be sent.
    IF any_open THEN
        SELECT array_agg(e.message_id), array_agg(e.provider_message_id)
          INTO open_ids, open_provider_ids
          FROM postrunner.events e
          JOIN postrunner.outbox o ON o.id = e.message_id
         WHERE e.id = ANY (new_ids) AND o.status IN ('uncertain', 'queued', 'retrying', 'failed', 'cancelled');
        PERFORM postrunner.resolve_uncertain(p_provider, open_ids, open_provider_ids, 'event');
    END IF;
    -- Statuses, forward only, each message once (its furthest new status).
    PERFORM 1
       FROM postrunner.outbox o
      WHERE o.id IN (SELECT e.message_id FROM postrunner.events e WHERE e.id = ANY (new_ids))
        AND (o.status = 'sending' OR postrunner.feedback_rank(o.status) IS NOT NULL)
      ORDER BY o.id
        FOR NO KEY UPDATE OF o;
    UPDATE postrunner.outbox o
       SET status = n.status
      FROM (SELECT DISTINCT ON (e.message_id) e.message_id, postrunner.event_status(e.kind, e.bounce_class) AS status
              FROM postrunner.events e
             WHERE e.id = ANY (new_ids) AND postrunner.event_status(e.kind, e.bounce_class) IS NOT NULL
             ORDER BY e.message_id, postrunner.feedback_rank(postrunner.event_status(e.kind, e.bounce_class)) DESC) n
     WHERE o.id = n.message_id
       AND postrunner.feedback_rank(o.status) < postrunner.feedback_rank(n.status);

    -- Deliveries, deferrals, opens and clicks touch no policy: a batch of them (the
    -- common case) skips the policy statements.
    IF EXISTS (SELECT 1 FROM postrunner.events e
                WHERE e.id = ANY (new_ids) AND e.client IS NOT NULL
                  AND e.kind IN ('bounced', 'complained', 'unsubscribed')) THEN
        PERFORM postrunner.apply_event_policies(new_ids);
        PERFORM postrunner.evaluate_pauses(new_ids);
    END IF;
END
$fn$;
