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

-- Headers that steer a provider (SendGrid's X-SMTPAPI, SES configuration sets, Mailgun
-- and Postmark options) or that mail servers add along the way (signatures, trace and
-- resent fields): an application setting them could change how or as whom a message
-- is sent, or forge its history. Lower-case names, and prefixes ending in '-'.
CREATE OR REPLACE FUNCTION postrunner.reserved_headers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['x-smtpapi', 'x-ses-', 'x-mailgun-', 'x-pm-', 'x-sg-', 'dkim-signature',
                 'domainkey-signature', 'arc-', 'authentication-results', 'received', 'received-spf',
                 'resent-', 'delivered-to', 'x-original-to']
$$;

-- Is `name` (lower case) one of the reserved headers, or under a reserved prefix?
CREATE OR REPLACE FUNCTION postrunner.is_reserved_header(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(postrunner.reserved_headers()) AS r
                    WHERE name = r OR (r LIKE '%-' AND starts_with(name, r)))
$$;

-- Control characters other than TAB, LF and CR (those have rules of their own): ESC,
-- VT, NUL-like bytes and DEL have no place in a header or a subject.
CREATE OR REPLACE FUNCTION postrunner.has_control_characters(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT value ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'
$$;

-- The limits are postrunner.settings max_body_bytes (1 MiB), max_headers (50),
-- max_header_bytes (998) and max_metadata_bytes (16 KiB): operator settings, which a
-- session cannot raise for itself.
CREATE OR REPLACE FUNCTION postrunner.outbox_before_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    max_body bigint;
    max_headers bigint;
    max_header_bytes bigint;
    max_metadata_bytes bigint;
    body_bytes bigint;
    header record;
    seen text[] := '{}';
BEGIN
    -- One read of the limits (settings are checked when written: the casts hold).
    SELECT coalesce(max(value::bigint) FILTER (WHERE name = 'max_body_bytes'), 1048576),
           coalesce(max(value::bigint) FILTER (WHERE name = 'max_headers'), 50),
           coalesce(max(value::bigint) FILTER (WHERE name = 'max_header_bytes'), 998),
           coalesce(max(value::bigint) FILTER (WHERE name = 'max_metadata_bytes'), 16384)
      INTO max_body, max_headers, max_header_bytes, max_metadata_bytes
      FROM postrunner.settings
     WHERE name IN ('max_body_bytes', 'max_headers', 'max_header_bytes', 'max_metadata_bytes');
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

    IF NEW.subject IS NULL OR NEW.subject ~ '^[[:space:]]*$' THEN
        PERFORM postrunner.reject('subject must not be empty');
    END IF;
    IF NEW.subject ~ '[\r\n]' THEN
        PERFORM postrunner.reject('subject must be a single line (no CR or LF)');
    END IF;
    IF postrunner.has_control_characters(NEW.subject) THEN
        PERFORM postrunner.reject('subject must not contain control characters');
    END IF;
    IF length(NEW.subject) > 998 THEN
        PERFORM postrunner.reject('subject is longer than 998 characters');
    END IF;

    IF coalesce(NEW.text_body, '') ~ '^[[:space:]]*$' AND coalesce(NEW.html_body, '') ~ '^[[:space:]]*$' THEN
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
        IF (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > max_headers THEN
            PERFORM postrunner.reject(format('headers: %s of them, more than max_headers (%s)',
                                             (SELECT count(*) FROM jsonb_object_keys(NEW.headers)), max_headers),
                                      'the limit is postrunner.settings max_headers');
        END IF;
        FOR header IN SELECT key, value FROM jsonb_each(NEW.headers) LOOP
            IF header.key !~ '^[!-9;-~]{1,76}$' THEN
                PERFORM postrunner.reject(format('header name %L is not a valid header field name', left(header.key, 80)));
            END IF;
            IF lower(header.key) = ANY (seen) THEN
                PERFORM postrunner.reject(format('header %L is given twice (header names are case-insensitive)', header.key));
            END IF;
            seen := seen || lower(header.key);
            IF lower(header.key) = ANY (postrunner.protected_headers()) THEN
                PERFORM postrunner.reject(format('header %L is set by postrunner and cannot be overridden', header.key),
                                          'protected headers: ' || array_to_string(postrunner.protected_headers(), ', '));
            END IF;
            IF postrunner.is_reserved_header(lower(header.key)) THEN
                PERFORM postrunner.reject(format('header %L is set by postrunner or the provider and cannot be given', header.key),
                                          'reserved: ' || array_to_string(postrunner.reserved_headers(), ', ') || ' (- ends a prefix)');
            END IF;
            IF jsonb_typeof(header.value) <> 'string' THEN
                PERFORM postrunner.reject(format('header %L must have a text value', header.key));
            END IF;
            IF header.value #>> '{}' ~ '[\r\n]' THEN
                PERFORM postrunner.reject(format('header %L must be a single line (no CR or LF)', header.key));
            END IF;
            IF postrunner.has_control_characters(header.value #>> '{}') THEN
                PERFORM postrunner.reject(format('header %L must not contain control characters', header.key));
            END IF;
            IF octet_length(header.value #>> '{}') > max_header_bytes THEN
                PERFORM postrunner.reject(format('header %L is %s bytes, over max_header_bytes (%s)',
                                                 header.key, octet_length(header.value #>> '{}'), max_header_bytes),
                                          'the limit is postrunner.settings max_header_bytes');
            END IF;
        END LOOP;
    END IF;
    IF NEW.metadata IS NOT NULL AND jsonb_typeof(NEW.metadata) <> 'object' THEN
        PERFORM postrunner.reject('metadata must be a JSON object');
    END IF;
    IF NEW.metadata IS NOT NULL AND octet_length(NEW.metadata::text) > max_metadata_bytes THEN
        PERFORM postrunner.reject(format('metadata is %s bytes, over max_metadata_bytes (%s)',
                                         octet_length(NEW.metadata::text), max_metadata_bytes),
                                  'the limit is postrunner.settings max_metadata_bytes');
    END IF;
    -- Only names of postrunner.time_zones: each one is a lane (routing/lane_key.sql), so
    -- what an application may write must not make lanes without bound.
    IF NEW.recipient_time_zone IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM postrunner.time_zones z WHERE z.name = NEW.recipient_time_zone) THEN
        PERFORM postrunner.reject(format('recipient_time_zone %L is not a canonical IANA time zone name',
                                         left(NEW.recipient_time_zone, 100)),
                                  'use a name such as America/New_York or Europe/Paris, spelt as in postrunner.time_zones');
    END IF;
    IF NEW.send_after IS NOT NULL AND NOT isfinite(NEW.send_after) THEN
        PERFORM postrunner.reject(format('send_after must be a finite time (got %s)', NEW.send_after));
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
    -- A person erased for this client (sql/definitions/100_gdpr_erasure.sql) is never mailed again,
    -- nor stored in clear: the message is kept, suppressed, without its contents, and
    -- gets no job (outbox_enqueue_jobs).
    IF EXISTS (SELECT 1 FROM postrunner.erasures e WHERE e.client = NEW.client)  -- most clients: none
       AND postrunner.is_erased(NEW.client, NEW.to_address) THEN
        NEW.to_address := postrunner.erased_address(postrunner.address_hash(NEW.client, NEW.to_address));
        NEW.subject := '[erased]';
        NEW.text_body := NULL;
        NEW.html_body := NULL;
        NEW.headers := NULL;
        NEW.metadata := NULL;
        NEW.status := 'suppressed';
        NEW.last_error := 'the recipient was erased (GDPR) for this client';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER outbox_before_insert
    BEFORE INSERT ON postrunner.outbox
    FOR EACH ROW EXECUTE FUNCTION postrunner.outbox_before_insert();
