-- The outbox: the public way to send mail. Any application enqueues a message with a
-- plain INSERT inside its own transaction; the INSERT itself refuses bad input.
--
-- Each row is carried by exactly one job of kind 'email.send' in postrunner.jobs (same
-- claim/lease/retry machinery as every other job): the insert creates it, and the
-- job's state transitions are mirrored into `status`, `attempts` and `last_error` by a
-- trigger, so that the status users read is always the one the queue acts on.
--
-- The trigger functions an application's INSERT or cancel runs are SECURITY DEFINER
-- (with a fixed search_path), so the enqueueing role needs privileges on the outbox
-- only, never on the queue tables (sql/roles.sql).
--
-- Lock order, to stay deadlock-free: the queue always locks jobs rows and then outbox
-- rows. A user's cancel locks the outbox row first, so it takes the job with SKIP LOCKED
-- and refuses to cancel a message that a worker is claiming at that very moment.
CREATE TYPE postrunner.message_status AS ENUM (
    'queued', 'sending', 'sent', 'retrying', 'failed', 'suppressed', 'cancelled'
);

CREATE TABLE postrunner.outbox (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client              text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    direction           text NOT NULL,
    to_address          text NOT NULL,
    subject             text NOT NULL,
    text_body           text,
    html_body           text,
    headers             jsonb,
    metadata            jsonb,
    send_after          timestamptz,
    idempotency_key     text CHECK (length(idempotency_key) <= 255),
    priority            smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    -- Written by postrunner only.
    status              postrunner.message_status NOT NULL DEFAULT 'queued',
    attempts            integer NOT NULL DEFAULT 0,
    provider            text,
    from_address        text,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    job_id              bigint NOT NULL UNIQUE,
    FOREIGN KEY (client, direction) REFERENCES postrunner.directions (client, name) ON UPDATE CASCADE,
    -- Makes `ON CONFLICT DO NOTHING` an idempotent enqueue.
    CONSTRAINT outbox_idempotency UNIQUE (client, idempotency_key)
);
CREATE INDEX outbox_status_idx ON postrunner.outbox (client, direction, status);
CREATE INDEX outbox_created_idx ON postrunner.outbox (created_at);

-- Operator settings the outbox checks read. A table rather than a session setting, so
-- that an application cannot raise a limit for its own session.
CREATE TABLE postrunner.settings (
    name  text PRIMARY KEY,
    value text NOT NULL,
    note  text
);
INSERT INTO postrunner.settings (name, value, note) VALUES
    ('max_body_bytes', '1048576', 'largest text_body + html_body an INSERT into postrunner.outbox accepts');

-- Headers an application may not set: postrunner writes them itself, and letting a
-- caller override them would allow spoofing or break threading and unsubscribe.
CREATE FUNCTION postrunner.protected_headers() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['from', 'to', 'cc', 'bcc', 'subject', 'message-id', 'date', 'sender',
                 'return-path', 'mime-version', 'content-type', 'content-transfer-encoding',
                 'list-unsubscribe', 'list-unsubscribe-post', 'x-postrunner-id']
$$;

-- Raise a check_violation with a message that names the problem (and never echoes the
-- body, which may be large or private).
CREATE FUNCTION postrunner.reject(message text, hint text DEFAULT NULL, code text DEFAULT 'check_violation')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF hint IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = 'postrunner.outbox: ' || message, ERRCODE = code;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'postrunner.outbox: ' || message, HINT = hint, ERRCODE = code;
END
$$;

-- Validates a new message and fills the columns postrunner owns.
-- The body limit is postrunner.settings 'max_body_bytes' (default 1 MiB).
CREATE FUNCTION postrunner.outbox_before_insert() RETURNS trigger
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

CREATE TRIGGER outbox_before_insert
    BEFORE INSERT ON postrunner.outbox
    FOR EACH ROW EXECUTE FUNCTION postrunner.outbox_before_insert();

-- One set-based INSERT of the carrying jobs per statement (and so one NOTIFY), using the
-- rows that were really inserted: ON CONFLICT DO NOTHING skips create no job.
CREATE FUNCTION postrunner.outbox_enqueue_jobs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.jobs (id, kind, priority, run_at, state)
    SELECT n.job_id, 'email.send', n.priority, coalesce(n.send_after, now()),
           CASE WHEN n.send_after > now() THEN 'scheduled' ELSE 'available' END::postrunner.job_state
      FROM new_messages n;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_enqueue_jobs
    AFTER INSERT ON postrunner.outbox
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.outbox_enqueue_jobs();

-- The outbox status a job state stands for.
CREATE FUNCTION postrunner.message_status_for(state postrunner.job_state, attempts integer)
RETURNS postrunner.message_status
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE state
        WHEN 'running'   THEN 'sending'
        WHEN 'retryable' THEN 'retrying'
        WHEN 'discarded' THEN 'failed'
        WHEN 'cancelled' THEN 'cancelled'
        ELSE CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END
    END::postrunner.message_status
$$;

-- Mirrors job transitions of email jobs into the outbox. A row trigger whose WHEN clause
-- filters on the kind: other kinds of job (the bulk of a busy queue's maintenance work
-- and any no-op benchmark) pay only for evaluating the WHEN, not for a function call or
-- a transition table.
CREATE FUNCTION postrunner.jobs_sync_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE postrunner.outbox
       SET status = postrunner.message_status_for(NEW.state, NEW.attempts),
           attempts = NEW.attempts,
           last_error = NEW.last_error
     WHERE job_id = NEW.id
       AND (status, attempts, last_error)
           IS DISTINCT FROM (postrunner.message_status_for(NEW.state, NEW.attempts), NEW.attempts, NEW.last_error);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_sync_outbox
    AFTER UPDATE OF state, attempts ON postrunner.jobs
    FOR EACH ROW WHEN (NEW.kind = 'email.send' AND (OLD.state, OLD.attempts) IS DISTINCT FROM (NEW.state, NEW.attempts))
    EXECUTE FUNCTION postrunner.jobs_sync_outbox();

-- `status` is postrunner's to write. A change of status is accepted when it is:
-- - a mirror of the carrying job's state (what jobs_sync_outbox writes), or
-- - the final 'sent' (or 'queued' after a re-drive) written by postrunner once the job is
--   gone, which it announces with SET LOCAL postrunner.internal = 'on', or
-- - an application's cancel of a message that has not started (queued or retrying).
-- Anything else is refused, whoever writes it, so a forged 'sent' or 'sending' cannot
-- hide a message from the queue.
CREATE FUNCTION postrunner.outbox_guard_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job record;
BEGIN
    IF NEW.status = 'cancelled' AND OLD.status IN ('queued', 'retrying') THEN
        RETURN NEW;
    END IF;
    SELECT state, attempts INTO job FROM postrunner.jobs WHERE id = NEW.job_id;
    IF FOUND AND NEW.status = postrunner.message_status_for(job.state, job.attempts) THEN
        RETURN NEW;
    END IF;
    IF NOT FOUND AND current_setting('postrunner.internal', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'cancelled' THEN
        PERFORM postrunner.reject(format('message %s is %s and can no longer be cancelled', OLD.id, OLD.status),
                                  'only queued or retrying messages can be cancelled', 'object_not_in_prerequisite_state');
    END IF;
    PERFORM postrunner.reject(format('status is managed by postrunner; an application may only set it to ''cancelled'' (got %L)', NEW.status),
                              NULL, 'insufficient_privilege');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_guard_status
    BEFORE UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION postrunner.outbox_guard_status();

-- A cancel cancels the carrying job. The job is taken with SKIP LOCKED (see the lock
-- order above): a job locked at this instant by a worker's claim or completion is being
-- sent, and the cancel fails rather than wait. When the change is the mirror of a job
-- that is already cancelled (postrunner.cancel_job), there is nothing to do.
CREATE FUNCTION postrunner.outbox_cancel_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job_state postrunner.job_state;
BEGIN
    UPDATE postrunner.jobs
       SET state = 'cancelled', finalized_at = now()
     WHERE id = (SELECT id FROM postrunner.jobs
                  WHERE id = NEW.job_id AND state IN ('scheduled', 'available', 'retryable')
                  FOR UPDATE SKIP LOCKED);
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT state INTO job_state FROM postrunner.jobs WHERE id = NEW.job_id;
    IF job_state = 'cancelled' THEN
        RETURN NULL;
    END IF;
    PERFORM postrunner.reject(format('message %s is being sent and can no longer be cancelled', NEW.id),
                              NULL, 'object_not_in_prerequisite_state');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_cancel_job
    AFTER UPDATE OF status ON postrunner.outbox
    FOR EACH ROW WHEN (NEW.status = 'cancelled' AND OLD.status <> 'cancelled')
    EXECUTE FUNCTION postrunner.outbox_cancel_job();

-- Re-drive a failed (or cancelled) message: its job becomes available with a fresh
-- attempt budget. SECURITY DEFINER so that postrunner_app may call it without any
-- privilege on the queue; the message row is locked so concurrent re-drives serialise.
CREATE FUNCTION postrunner.retry_message(message_id uuid) RETURNS postrunner.message_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
DECLARE
    job bigint;
    old_status postrunner.message_status;
BEGIN
    SELECT job_id, status INTO job, old_status FROM postrunner.outbox WHERE id = message_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id USING ERRCODE = 'no_data_found';
    END IF;
    IF old_status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'message % is % and needs no retry', message_id, old_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postrunner.jobs WHERE id = job) THEN
        -- The cleanup task deleted the finished job: carry the message with a new one,
        -- created cancelled so that retry_job below makes the transition the mirror sees.
        INSERT INTO postrunner.jobs (id, kind, state, finalized_at) VALUES (job, 'email.send', 'cancelled', now());
    END IF;
    PERFORM postrunner.retry_job(job);
    RETURN old_status;
END
$$;
