-- Validation of a new message: the INSERT into postrunner.outbox refuses bad input
-- itself, with a message that names the column and the rule, and fills the columns
-- postrunner owns.
--
-- SECURITY DEFINER (fixed search_path): the enqueueing role needs privileges on the
-- outbox only, never on the settings or queue tables. Locks: none beyond the new row.

-- Headers an application may not set: postrunner writes them itself, and letting a
-- caller override them would allow spoofing or break threading and unsubscribe.
CREATE OR REPLACE FUNCTION postrunner.protected_headers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['from', 'to', 'cc', 'bcc', 'subject', 'message-id', 'date', 'sender',
                 'return-path', 'mime-version', 'content-type', 'content-transfer-encoding',
                 'list-unsubscribe', 'list-unsubscribe-post', 'x-postrunner-id']
$$;

-- The body limit is postrunner.settings 'max_body_bytes' (default 1 MiB).
CREATE OR REPLACE FUNCTION postrunner.outbox_before_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    max_body bigint := coalesce((SELECT value::bigint FROM postrunner.settings WHERE name = 'max_body_bytes'), 1048576);
    body_bytes bigint;
    header record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM postrunner.clients WHERE name = NEW.client) THEN
        PERFORM postrunner.reject(format('unknown client %L', NEW.client),
                                  'add it to postrunner.clients first', 'foreign_key_violation');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postrunner.directions WHERE client = NEW.client AND name = NEW.direction) THEN
        PERFORM postrunner.reject(format('unknown direction %L for client %L', NEW.direction, NEW.client),
                                  'add it to postrunner.directions first', 'foreign_key_violation');
    END IF;

    NEW.to_address := btrim(NEW.to_address);
    IF NOT postrunner.is_email_address(NEW.to_address) THEN
        PERFORM postrunner.reject(format('to_address %L is not a valid email address', left(NEW.to_address, 100)));
    END IF;

    IF NEW.subject IS NULL OR btrim(NEW.subject) = '' THEN
        PERFORM postrunner.reject('subject must not be empty');
    END IF;
    IF NEW.subject ~ '[\r\n]' THEN
        PERFORM postrunner.reject('subject must be a single line (no CR or LF)');
    END IF;
    IF length(NEW.subject) > 998 THEN
        PERFORM postrunner.reject('subject is longer than 998 characters');
    END IF;

    IF coalesce(btrim(NEW.text_body), '') = '' AND coalesce(btrim(NEW.html_body), '') = '' THEN
        PERFORM postrunner.reject('a message needs a text_body or an html_body');
    END IF;
    body_bytes := coalesce(octet_length(NEW.text_body), 0) + coalesce(octet_length(NEW.html_body), 0);
    IF body_bytes > max_body THEN
        PERFORM postrunner.reject(format('body is %s bytes, over the limit of %s bytes', body_bytes, max_body),
                                  'the limit is postrunner.settings max_body_bytes');
    END IF;

    IF NEW.headers IS NOT NULL THEN
        IF jsonb_typeof(NEW.headers) <> 'object' THEN
            PERFORM postrunner.reject('headers must be a JSON object of header name to text value',
                                      'for example {"Reply-To": "owner@example.org"}');
        END IF;
        FOR header IN SELECT key, value FROM jsonb_each(NEW.headers) LOOP
            IF header.key !~ '^[!-9;-~]{1,76}$' THEN
                PERFORM postrunner.reject(format('header name %L is not a valid header field name', left(header.key, 80)));
            END IF;
            IF lower(header.key) = ANY (postrunner.protected_headers()) THEN
                PERFORM postrunner.reject(format('header %L is set by postrunner and cannot be overridden', header.key),
                                          'protected headers: ' || array_to_string(postrunner.protected_headers(), ', '));
            END IF;
            IF jsonb_typeof(header.value) <> 'string' THEN
                PERFORM postrunner.reject(format('header %L must have a text value', header.key));
            END IF;
            IF header.value #>> '{}' ~ '[\r\n]' THEN
                PERFORM postrunner.reject(format('header %L must be a single line (no CR or LF)', header.key));
            END IF;
        END LOOP;
    END IF;
    IF NEW.metadata IS NOT NULL AND jsonb_typeof(NEW.metadata) <> 'object' THEN
        PERFORM postrunner.reject('metadata must be a JSON object');
    END IF;

    -- Columns postrunner owns start from a clean slate whatever the INSERT said.
    NEW.status := 'queued';
    NEW.attempts := 0;
    NEW.provider := NULL;
    NEW.from_address := NULL;
    NEW.provider_message_id := NULL;
    NEW.last_error := NULL;
    NEW.sent_at := NULL;
    NEW.created_at := now();
    NEW.job_id := nextval(pg_get_serial_sequence('postrunner.jobs', 'id'));
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER outbox_before_insert
    BEFORE INSERT ON postrunner.outbox
    FOR EACH ROW EXECUTE FUNCTION postrunner.outbox_before_insert();
