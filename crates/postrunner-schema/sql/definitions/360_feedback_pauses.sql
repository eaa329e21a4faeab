-- Automatic pauses: after a request's hard bounces and complaints are stored,
-- postrunner.evaluate_pauses checks the sender addresses, directions and clients they
-- concern, and pauses those over their thresholds, each with its reason and one
-- alert (kind address_paused, direction_paused or client_paused; fired once, and
-- resolved once when an operator resumes it):
--
--   address:   hard bounces or complaints among its last pause_address_window (100)
--              sends since it was last resumed, at least pause_address_min_sends (20),
--              over pause_address_bounce_rate (5 %) or pause_address_complaint_rate
--              (0.3 %): status 'paused' (the claim skips it at once);
--   direction, client: hard bounces over the last pause_group_days (7) against their
--              sends then (at least pause_group_min_sends, 100), over
--              pause_bounce_rate (10 %): paused_at set (the claim gates the lane).
-- Thresholds: the direction's column, else the client's, else the setting.
--
-- Resuming is one UPDATE (sql/README.md): `SET status = 'active'` for an address,
-- `SET paused_at = NULL` for a direction or client; the trigger below stamps
-- resumed_at (rates restart from there) and resolves the alert.
--
-- Locks: the paused rows (sender_addresses, directions, clients) and their alerts;
-- reads the ledger and events without locking. Called in record_events' transaction.

CREATE OR REPLACE FUNCTION postrunner.pause_threshold(p_client text, p_direction text, p_name text, p_default float8)
RETURNS float8
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE p_name WHEN 'pause_address_bounce_rate' THEN d.pause_address_bounce_rate
                            WHEN 'pause_address_complaint_rate' THEN d.pause_address_complaint_rate
                            WHEN 'pause_bounce_rate' THEN d.pause_bounce_rate END
           FROM postrunner.directions d WHERE d.client = p_client AND d.name = p_direction),
        (SELECT CASE p_name WHEN 'pause_address_bounce_rate' THEN c.pause_address_bounce_rate
                            WHEN 'pause_address_complaint_rate' THEN c.pause_address_complaint_rate
                            WHEN 'pause_bounce_rate' THEN c.pause_bounce_rate END
           FROM postrunner.clients c WHERE c.name = p_client),
        postrunner.setting_number(p_name, p_default))::float8
$$;

CREATE OR REPLACE FUNCTION postrunner.evaluate_pauses(p_event_ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    window_sends integer := postrunner.setting_number('pause_address_window', 100)::integer;
    min_sends integer := postrunner.setting_number('pause_address_min_sends', 20)::integer;
    group_days integer := postrunner.setting_number('pause_group_days', 7)::integer;
    group_min integer := postrunner.setting_number('pause_group_min_sends', 100)::integer;
    r record;
BEGIN
    -- Sender addresses.
    FOR r IN
        SELECT DISTINCT o.from_address AS address, o.client, o.direction
          FROM postrunner.events e
          JOIN postrunner.outbox o ON o.id = e.message_id
         WHERE e.id = ANY (p_event_ids) AND o.from_address IS NOT NULL
           AND (e.kind = 'complained' OR (e.kind = 'bounced' AND e.bounce_class = 'hard'))
         ORDER BY 1
    LOOP
        WITH recent AS (
            SELECT a.message_id
              FROM postrunner.send_attempts a
              JOIN postrunner.sender_addresses s ON s.address = a.from_address
             WHERE a.from_address = r.address AND a.outcome = 'sent'
               AND a.reserved_at > coalesce(s.resumed_at, '-infinity')
             ORDER BY a.id DESC
             LIMIT window_sends
        ), rates AS (
            SELECT count(*) AS sends,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM postrunner.events b
                                                   WHERE b.message_id = recent.message_id
                                                     AND b.kind = 'bounced' AND b.bounce_class = 'hard')) AS bounces,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM postrunner.events b
                                                   WHERE b.message_id = recent.message_id
                                                     AND b.kind = 'complained')) AS complaints
              FROM recent
        ), over AS (
            SELECT sends, bounces, complaints,
                   CASE WHEN bounces::float8 / sends > postrunner.pause_threshold(r.client, r.direction, 'pause_address_bounce_rate', 0.05)
                        THEN format('%s hard bounces in its last %s sends', bounces, sends)
                        WHEN complaints::float8 / sends > postrunner.pause_threshold(r.client, r.direction, 'pause_address_complaint_rate', 0.003)
                        THEN format('%s complaints in its last %s sends', complaints, sends)
                   END AS reason
              FROM rates
             WHERE sends >= min_sends
        ), paused AS (
            UPDATE postrunner.sender_addresses s
               SET status = 'paused', paused_at = now(),
                   status_reason = 'paused automatically: ' || over.reason
              FROM over
             WHERE s.address = r.address AND s.status = 'active' AND over.reason IS NOT NULL
            RETURNING s.address, s.status_reason
        )
        INSERT INTO postrunner.alerts (kind, subject, detail)
        SELECT 'address_paused', p.address, p.status_reason FROM paused p
        ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    END LOOP;

    -- Directions and clients: hard bounces over days against sends over the same days.
    FOR r IN
        SELECT DISTINCT o.client, o.direction
          FROM postrunner.events e
          JOIN postrunner.outbox o ON o.id = e.message_id
         WHERE e.id = ANY (p_event_ids) AND e.kind = 'bounced' AND e.bounce_class = 'hard'
         ORDER BY 1, 2
    LOOP
        WITH d AS (
            SELECT greatest(now() - make_interval(days => group_days), coalesce(d.resumed_at, '-infinity')) AS since
              FROM postrunner.directions d WHERE d.client = r.client AND d.name = r.direction
        ), rates AS (
            SELECT (SELECT count(*) FROM postrunner.send_attempts a, d
                     WHERE a.day >= (now() - make_interval(days => group_days + 1))::date AND a.client = r.client
                       AND a.direction = r.direction AND a.outcome = 'sent' AND a.reserved_at > d.since) AS sends,
                   (SELECT count(*) FROM postrunner.events b JOIN postrunner.outbox o ON o.id = b.message_id, d
                     WHERE b.client = r.client AND b.occurred_at > d.since AND o.direction = r.direction
                       AND b.kind = 'bounced' AND b.bounce_class = 'hard') AS bounces
        ), paused AS (
            UPDATE postrunner.directions x
               SET paused_at = now(),
                   paused_reason = format('paused automatically: %s hard bounces in %s sends since %s',
                                          rates.bounces, rates.sends, (SELECT since FROM d))
              FROM rates
             WHERE x.client = r.client AND x.name = r.direction AND x.paused_at IS NULL
               AND rates.sends >= group_min
               AND rates.bounces::float8 / rates.sends > postrunner.pause_threshold(r.client, r.direction, 'pause_bounce_rate', 0.10)
            RETURNING x.client, x.name, x.paused_reason
        )
        INSERT INTO postrunner.alerts (kind, subject, detail)
        SELECT 'direction_paused', p.client || '/' || p.name, p.paused_reason FROM paused p
        ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    END LOOP;

    FOR r IN
        SELECT DISTINCT e.client
          FROM postrunner.events e
         WHERE e.id = ANY (p_event_ids) AND e.client IS NOT NULL AND e.kind = 'bounced' AND e.bounce_class = 'hard'
         ORDER BY 1
    LOOP
        WITH c AS (
            SELECT greatest(now() - make_interval(days => group_days), coalesce(c.resumed_at, '-infinity')) AS since
              FROM postrunner.clients c WHERE c.name = r.client
        ), rates AS (
            SELECT (SELECT count(*) FROM postrunner.send_attempts a, c
                     WHERE a.day >= (now() - make_interval(days => group_days + 1))::date AND a.client = r.client
                       AND a.outcome = 'sent' AND a.reserved_at > c.since) AS sends,
                   (SELECT count(*) FROM postrunner.events b, c
                     WHERE b.client = r.client AND b.occurred_at > c.since
                       AND b.kind = 'bounced' AND b.bounce_class = 'hard') AS bounces
        ), paused AS (
            UPDATE postrunner.clients x
               SET paused_at = now(),
                   paused_reason = format('paused automatically: %s hard bounces in %s sends since %s',
                                          rates.bounces, rates.sends, (SELECT since FROM c))
              FROM rates
             WHERE x.name = r.client AND x.paused_at IS NULL
               AND rates.sends >= group_min
               AND rates.bounces::float8 / rates.sends > postrunner.pause_threshold(r.client, NULL, 'pause_bounce_rate', 0.10)
            RETURNING x.name, x.paused_reason
        )
        INSERT INTO postrunner.alerts (kind, subject, detail)
        SELECT 'client_paused', p.name, p.paused_reason FROM paused p
        ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    END LOOP;
END
$fn$;

-- The firing alert of a pause (address_paused, direction_paused, client_paused) of
-- p_subject, resolved.
CREATE OR REPLACE FUNCTION postrunner.resolve_pause_alert(p_kind text, p_subject text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE postrunner.alerts SET state = 'resolved', resolved_at = now()
     WHERE kind = p_kind AND subject = p_subject AND state = 'firing'
$$;

-- Resuming: stamp resumed_at (rates restart from it) and resolve the pause's alert.
CREATE OR REPLACE FUNCTION postrunner.resume_paused() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    alert_kind text;
    alert_subject text;
BEGIN
    IF TG_TABLE_NAME = 'sender_addresses' THEN
        IF NOT (OLD.status = 'paused' AND NEW.status = 'active') THEN
            RETURN NEW;
        END IF;
        NEW.paused_at := NULL;
        alert_kind := 'address_paused';
        alert_subject := NEW.address;
    ELSIF TG_TABLE_NAME = 'directions' THEN
        alert_kind := 'direction_paused';
        alert_subject := NEW.client || '/' || NEW.name;
    ELSE
        alert_kind := 'client_paused';
        alert_subject := NEW.name;
    END IF;
    NEW.resumed_at := now();
    PERFORM postrunner.resolve_pause_alert(alert_kind, alert_subject);
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER sender_addresses_resume BEFORE UPDATE OF status ON postrunner.sender_addresses
    FOR EACH ROW WHEN (OLD.status = 'paused' AND NEW.status = 'active')
    EXECUTE FUNCTION postrunner.resume_paused();
CREATE OR REPLACE TRIGGER directions_resume BEFORE UPDATE OF paused_at ON postrunner.directions
    FOR EACH ROW WHEN (OLD.paused_at IS NOT NULL AND NEW.paused_at IS NULL)
    EXECUTE FUNCTION postrunner.resume_paused();
CREATE OR REPLACE TRIGGER clients_resume BEFORE UPDATE OF paused_at ON postrunner.clients
    FOR EACH ROW WHEN (OLD.paused_at IS NOT NULL AND NEW.paused_at IS NULL)
    EXECUTE FUNCTION postrunner.resume_paused();

-- A paused address retired or deleted, or a paused direction or client deleted: nothing
-- will resume it, so its pause's alert is resolved now instead of firing forever
-- (tests/pauses.rs, a_paused_address_retired_or_deleted_resolves_its_alert).
CREATE OR REPLACE FUNCTION postrunner.resolve_removed_pause() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    -- (One branch per table: a record has only its own table's fields.)
    IF TG_TABLE_NAME = 'sender_addresses' THEN
        PERFORM postrunner.resolve_pause_alert('address_paused', OLD.address);
    ELSIF TG_TABLE_NAME = 'directions' THEN
        PERFORM postrunner.resolve_pause_alert('direction_paused', OLD.client || '/' || OLD.name);
    ELSE
        PERFORM postrunner.resolve_pause_alert('client_paused', OLD.name);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER sender_addresses_retired_while_paused AFTER UPDATE OF status ON postrunner.sender_addresses
    FOR EACH ROW WHEN (OLD.status = 'paused' AND NEW.status = 'retired')
    EXECUTE FUNCTION postrunner.resolve_removed_pause();
CREATE OR REPLACE TRIGGER sender_addresses_deleted_while_paused AFTER DELETE ON postrunner.sender_addresses
    FOR EACH ROW WHEN (OLD.status = 'paused')
    EXECUTE FUNCTION postrunner.resolve_removed_pause();
CREATE OR REPLACE TRIGGER directions_deleted_while_paused AFTER DELETE ON postrunner.directions
    FOR EACH ROW WHEN (OLD.paused_at IS NOT NULL)
    EXECUTE FUNCTION postrunner.resolve_removed_pause();
CREATE OR REPLACE TRIGGER clients_deleted_while_paused AFTER DELETE ON postrunner.clients
    FOR EACH ROW WHEN (OLD.paused_at IS NOT NULL)
    EXECUTE FUNCTION postrunner.resolve_removed_pause();
