-- GDPR: erase a person's data for a client, export what is held about them, and keep
-- an erased person from being mailed again (`postrunner erase`, `postrunner export`).
--
-- Locks: the person's outbox rows (FOR UPDATE, in id order), then their held jobs
-- (deleted, SKIP LOCKED) and waiting jobs (cancelled by outbox_cancel_job, which refuses
-- a job a worker is claiming at that instant: the erasure then fails and can be run
-- again), events and suppression rows. An application's INSERT to an erased person reads
-- postrunner.erasures without locking.

-- The salted hash a person's address is kept as, per client.
CREATE OR REPLACE FUNCTION postrunner.address_hash(p_client text, p_address text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
    SELECT encode(sha256(s.salt || convert_to(p_client || E'\n' || lower(btrim(p_address)), 'UTF8')), 'hex')
      FROM postrunner.erasure_salt s
$$;

-- What an erased person's address becomes where a row must keep one.
CREATE OR REPLACE FUNCTION postrunner.erased_address(p_hash text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'erased-' || left(p_hash, 16) || '@erased.invalid'
$$;

-- Whether p_address is what erasure left in place of an address (no person's address
-- can have this form: .invalid is reserved, RFC 2606).
CREATE OR REPLACE FUNCTION postrunner.is_erased_address(p_address text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_address ~ '^erased-[0-9a-f]{16}@erased\.invalid$'
$$;

-- Whether p_address has been erased for p_client.
CREATE OR REPLACE FUNCTION postrunner.is_erased(p_client text, p_address text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM postrunner.erasures e
                    WHERE e.client = p_client AND e.address_hash = postrunner.address_hash(p_client, p_address))
$$;

-- Erases p_address's data for p_client: their messages keep only what the queue and
-- the reports count (ids, statuses, times, provider, sender address), the address
-- replaced by erased_address(hash) and subject, bodies, headers, metadata and keys
-- cleared; messages not yet sent are cancelled, held ones failed; their events lose
-- recipient, diagnostic and payload; their suppression in clear is replaced by the
-- hashed one in postrunner.erasures, which also logs the erasure. Idempotent. Returns
-- what was erased, per kind of row.
CREATE OR REPLACE FUNCTION postrunner.erase_recipient(p_client text, p_address text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    hash text := postrunner.address_hash(p_client, p_address);
    erased_to text := postrunner.erased_address(hash);
    message_ids uuid[];
    messages integer;
    jobs integer;
    events integer;
    suppressions integer;
    summary jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM postrunner.clients WHERE name = p_client) THEN
        PERFORM postrunner.reject(format('no client %L', p_client));
    END IF;
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO message_ids
      FROM (SELECT o.id FROM postrunner.outbox o
             WHERE o.client = p_client AND lower(o.to_address) = lower(btrim(p_address))
             ORDER BY o.id FOR UPDATE) m;
    -- A held (uncertain) send must not be sent again to the erased address: its job goes.
    WITH gone AS (
        DELETE FROM postrunner.jobs j
         WHERE j.id IN (SELECT h.id FROM postrunner.jobs h
                         WHERE h.id IN (SELECT o.job_id FROM postrunner.outbox o WHERE o.id = ANY (message_ids))
                           AND h.state = 'held'
                           FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*) INTO jobs FROM gone;
    -- Not yet sent: cancelled (outbox_cancel_job cancels their jobs). Being sent right
    -- now: the worker finishes with what it holds, and records it on the erased row.
    UPDATE postrunner.outbox o
       SET to_address = erased_to,
           subject = '[erased]',
           text_body = NULL,
           html_body = NULL,
           headers = NULL,
           metadata = NULL,
           recipient_time_zone = NULL,
           idempotency_key = NULL,
           last_error = NULL,
           status = CASE WHEN o.status IN ('queued', 'retrying') THEN 'cancelled'
                         WHEN o.status = 'uncertain' THEN 'failed' ELSE o.status END
     WHERE o.id = ANY (message_ids);
    GET DIAGNOSTICS messages = ROW_COUNT;
    -- The held sends' open questions are closed: nothing will settle them now
    -- (tests/gdpr.rs, erasing_a_person_whose_send_is_held_closes_its_uncertain_attempt).
    UPDATE postrunner.send_attempts a
       SET outcome = 'failed', resolution = 'erased', resolved_at = now()
     WHERE a.message_id = ANY (message_ids) AND a.outcome = 'uncertain';
    UPDATE postrunner.events e
       SET recipient = erased_to, reported_recipient = NULL, diagnostic = NULL, payload = NULL
     WHERE e.message_id = ANY (message_ids)
        OR (e.client = p_client AND lower(e.recipient) = lower(btrim(p_address)))
        OR (e.client = p_client AND lower(e.reported_recipient) = lower(btrim(p_address)));
    GET DIAGNOSTICS events = ROW_COUNT;
    DELETE FROM postrunner.suppressions s
     WHERE s.client = p_client AND lower(s.address) = lower(btrim(p_address));
    GET DIAGNOSTICS suppressions = ROW_COUNT;
    summary := jsonb_build_object('messages', messages, 'jobs', jobs, 'events', events,
                                  'suppressions', suppressions);
    INSERT INTO postrunner.erasures (client, address_hash, erased)
    VALUES (p_client, hash, summary)
    ON CONFLICT (client, address_hash) DO UPDATE SET erased_at = now(), erased = excluded.erased;
    RETURN summary || jsonb_build_object('address_hash', hash);
END
$fn$;

-- Everything held about p_address for p_client (a subject access request), as JSON:
-- their messages, events, suppression, and the erasure if they were erased.
CREATE OR REPLACE FUNCTION postrunner.export_recipient(p_client text, p_address text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
    WITH m AS (
        SELECT o.* FROM postrunner.outbox o
         WHERE o.client = p_client AND lower(o.to_address) = lower(btrim(p_address))
    )
    SELECT jsonb_build_object(
        'client', p_client,
        'address', p_address,
        'messages', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', m.id, 'direction', m.direction, 'to', m.to_address, 'subject', m.subject,
                'text_body', m.text_body, 'html_body', m.html_body, 'headers', m.headers,
                'metadata', m.metadata, 'recipient_time_zone', m.recipient_time_zone,
                'status', m.status, 'provider', m.provider,
                'from_address', m.from_address, 'created_at', m.created_at, 'sent_at', m.sent_at,
                'attempts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'attempt', a.attempt, 'provider', a.provider, 'from_address', a.from_address,
                                 'outcome', a.outcome, 'reserved_at', a.reserved_at, 'finished_at', a.finished_at)
                                 ORDER BY a.id), '[]')
                               FROM postrunner.send_attempts a WHERE a.message_id = m.id))
                ORDER BY m.created_at) FROM m), '[]'),
        'events', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'provider', e.provider, 'kind', e.kind, 'bounce_class', e.bounce_class,
                'diagnostic', e.diagnostic, 'message_id', e.message_id, 'occurred_at', e.occurred_at,
                'payload', e.payload) ORDER BY e.id)
              FROM postrunner.events e
             WHERE e.message_id IN (SELECT id FROM m)
                OR (e.client = p_client AND lower(e.recipient) = lower(btrim(p_address)))), '[]'),
        'suppression', (SELECT jsonb_build_object('reason', s.reason, 'detail', s.detail,
                                                  'created_at', s.created_at, 'expires_at', s.expires_at)
                          FROM postrunner.suppressions s
                         WHERE s.client = p_client AND lower(s.address) = lower(btrim(p_address))),
        'erasure', (SELECT jsonb_build_object('address_hash', x.address_hash, 'erased_at', x.erased_at)
                      FROM postrunner.erasures x
                     WHERE x.client = p_client AND x.address_hash = postrunner.address_hash(p_client, p_address)))
$$;

-- After restoring a backup older than some erasures: applies every logged erasure
-- again, to each logged person found in clear anywhere: their messages, their
-- suppressions (a person who was only on a suppression list, imported or pulled from
-- a provider) and events about them (each logged person is found by their hash).
-- Returns how many rows of messages were erased again (tests/backups.rs,
-- gdpr.rs: a_person_only_on_a_suppression_list_is_erased_again_after_a_restore).
CREATE OR REPLACE FUNCTION postrunner.replay_erasures() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    person record;
    total integer := 0;
BEGIN
    FOR person IN
        WITH in_clear AS (
            SELECT o.client, lower(o.to_address) AS address FROM postrunner.outbox o
             WHERE o.client IN (SELECT x.client FROM postrunner.erasures x)
            UNION
            SELECT s.client, lower(s.address) FROM postrunner.suppressions s
             WHERE s.client IN (SELECT x.client FROM postrunner.erasures x)
            UNION
            SELECT e.client, lower(e.recipient) FROM postrunner.events e
             WHERE e.client IN (SELECT x.client FROM postrunner.erasures x) AND e.recipient IS NOT NULL
            UNION
            SELECT e.client, lower(e.reported_recipient) FROM postrunner.events e
             WHERE e.client IN (SELECT x.client FROM postrunner.erasures x) AND e.reported_recipient IS NOT NULL
        )
        SELECT c.client, c.address
          FROM in_clear c
          JOIN postrunner.erasures x ON x.client = c.client
                                    AND x.address_hash = postrunner.address_hash(c.client, c.address)
         WHERE NOT postrunner.is_erased_address(c.address)
    LOOP
        total := total + (postrunner.erase_recipient(person.client, person.address) ->> 'messages')::integer;
    END LOOP;
    RETURN total;
END
$fn$;

-- A suppression for an erased person is never stored (in clear): the erasure itself
-- keeps them from mail. Every path that writes suppressions goes through here: the
-- feedback loop's policies, one-click unsubscribes, imports, the providers' own lists
-- pulled after a restore, a restore's catch-up (tests/gdpr.rs,
-- no_path_stores_an_erased_address_in_clear_again).
CREATE OR REPLACE FUNCTION postrunner.suppressions_skip_erased() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    IF postrunner.is_erased_address(NEW.address)
       OR (EXISTS (SELECT 1 FROM postrunner.erasures x WHERE x.client = NEW.client)  -- most clients: none
           AND postrunner.is_erased(NEW.client, NEW.address)) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER suppressions_skip_erased
    BEFORE INSERT ON postrunner.suppressions
    FOR EACH ROW EXECUTE FUNCTION postrunner.suppressions_skip_erased();
