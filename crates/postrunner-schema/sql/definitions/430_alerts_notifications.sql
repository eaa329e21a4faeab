-- Notifications of alert state changes (V27): each alert that fires or resolves gives
-- one notifications row per channel that hears its kind (the alerts triggers); the
-- dispatch task (system.dispatch_notifications, every 5 s) hands the pending rows to
-- `system.notify` jobs, one per notification, or one digest per channel when more than
-- `notification_digest_after` are due at once. The jobs send them
-- (src/kinds/notify.rs) with the queue's retries (1, 5, 15 min).
--
-- Once per change and channel: the notifications row is unique per (channel, alert,
-- transition) and is written in the transaction that fires or resolves the alert,
-- which the alerts' own unique index already makes happen once across schedulers; a
-- pending row is claimed FOR UPDATE SKIP LOCKED and becomes 'queued' in the
-- transaction that enqueues its job, so two dispatchers never give it to two jobs
-- (tests/notifications.rs: one_notification_per_change_across_dispatchers).
--
-- Locks: the alerts triggers insert notifications rows (no other lock); dispatch locks
-- the pending rows it takes; the jobs update only their own rows.

-- A channel must be usable as written: rejected by its INSERT or UPDATE otherwise, and
-- never holding a secret (only the name of the environment variable that does).
CREATE OR REPLACE FUNCTION postrunner.notification_channel_check() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    problem text;
    key text;
BEGIN
    FOREACH key IN ARRAY ARRAY['auth_token', 'token', 'password', 'secret', 'api_key'] LOOP
        IF NEW.config ? key THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation',
                MESSAGE = format('postrunner.notification_channels: %s: config holds a secret (%s)', NEW.name, key),
                HINT = 'store the name of the environment variable that holds it instead (auth_token_env, url_env)';
        END IF;
    END LOOP;
    FOR key IN SELECT k FROM jsonb_object_keys(NEW.config) k WHERE k LIKE '%\_env' LOOP
        IF jsonb_typeof(NEW.config -> key) <> 'string' OR NEW.config ->> key !~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
            problem := format('config.%s must name an environment variable', key);
        END IF;
    END LOOP;
    IF problem IS NULL THEN
        problem := CASE NEW.kind
            WHEN 'email' THEN CASE
                WHEN NOT coalesce(postrunner.is_email_address(NEW.target), false) THEN 'target must be the recipient''s email address'
                WHEN NOT coalesce(postrunner.is_email_address(NEW.config ->> 'from'), false) THEN 'config.from must be the sender''s email address'
                WHEN NOT EXISTS (SELECT 1 FROM postrunner.providers p WHERE p.name = NEW.config ->> 'provider')
                    THEN 'config.provider must name a row of postrunner.providers'
            END
            WHEN 'webhook' THEN CASE
                WHEN (NEW.config ? 'url') = (NEW.config ? 'url_env') THEN 'config needs url or url_env (one of them)'
                WHEN NEW.config ? 'url' AND NEW.config ->> 'url' !~ '^https?://[^\s/]+' THEN 'config.url must be an http(s) URL'
            END
            WHEN 'sms' THEN CASE
                WHEN NEW.target !~ '^\+[1-9][0-9]{6,14}$' THEN 'target must be a phone number in E.164 form (+15551234567)'
                WHEN coalesce(NEW.config ->> 'from', '') !~ '^\+[1-9][0-9]{6,14}$' THEN 'config.from must be the sending number in E.164 form'
                WHEN coalesce(NEW.config ->> 'account_sid', '') !~ '^[A-Za-z0-9]+$' THEN 'config.account_sid is required'
                WHEN NOT NEW.config ? 'auth_token_env' THEN 'config.auth_token_env must name the variable holding the auth token'
                WHEN NEW.config ? 'api_base' AND NEW.config ->> 'api_base' !~ '^https?://[^\s/]+' THEN 'config.api_base must be an http(s) URL'
            END
        END;
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            MESSAGE = format('postrunner.notification_channels: %s (%s channel %s)', problem, NEW.kind, NEW.name);
    END IF;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE TRIGGER notification_channels_check
    BEFORE INSERT OR UPDATE ON postrunner.notification_channels
    FOR EACH ROW EXECUTE FUNCTION postrunner.notification_channel_check();

-- An alert fired (INSERT) or resolved (UPDATE firing -> resolved): one pending
-- notification for each enabled channel that hears its kind.
CREATE OR REPLACE FUNCTION postrunner.alerts_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO postrunner.notifications (channel, alert_id, transition)
    SELECT c.name, NEW.id, CASE WHEN TG_OP = 'INSERT' THEN 'fired' ELSE 'resolved' END
      FROM postrunner.notification_channels c
     WHERE c.enabled AND (c.alert_kinds IS NULL OR NEW.kind = ANY (c.alert_kinds))
    ON CONFLICT (channel, alert_id, transition) DO NOTHING;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER alerts_notify_fired
    AFTER INSERT ON postrunner.alerts
    FOR EACH ROW WHEN (NEW.state = 'firing') EXECUTE FUNCTION postrunner.alerts_notify();
CREATE OR REPLACE TRIGGER alerts_notify_resolved
    AFTER UPDATE OF state ON postrunner.alerts
    FOR EACH ROW WHEN (OLD.state = 'firing' AND NEW.state = 'resolved') EXECUTE FUNCTION postrunner.alerts_notify();

-- Gives the pending notifications to `system.notify` jobs: per channel, one job each,
-- or one digest job for all of them when more than notification_digest_after are due.
-- Returns the jobs enqueued and the notifications they carry.
CREATE OR REPLACE FUNCTION postrunner.dispatch_notifications(OUT jobs integer, OUT notifications integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    digest_after integer := postrunner.setting_number('notification_digest_after', 3)::integer;
    batch record;
    one bigint;
    job bigint;
BEGIN
    jobs := 0;
    notifications := 0;
    FOR batch IN
        WITH due AS (
            SELECT n.id, n.channel FROM postrunner.notifications n
             WHERE n.status = 'pending'
             ORDER BY n.id
               FOR UPDATE SKIP LOCKED
        )
        SELECT d.channel, array_agg(d.id ORDER BY d.id) AS ids FROM due d GROUP BY d.channel ORDER BY d.channel
    LOOP
        IF cardinality(batch.ids) > digest_after THEN
            INSERT INTO postrunner.jobs (kind, args, priority)
            VALUES ('system.notify', jsonb_build_object('channel', batch.channel, 'notifications', to_jsonb(batch.ids)), 80)
            RETURNING id INTO job;
            UPDATE postrunner.notifications SET status = 'queued', job_id = job WHERE id = ANY (batch.ids);
            jobs := jobs + 1;
        ELSE
            FOREACH one IN ARRAY batch.ids LOOP
                INSERT INTO postrunner.jobs (kind, args, priority)
                VALUES ('system.notify', jsonb_build_object('channel', batch.channel, 'notifications', jsonb_build_array(one)), 80)
                RETURNING id INTO job;
                UPDATE postrunner.notifications SET status = 'queued', job_id = job WHERE id = one;
                jobs := jobs + 1;
            END LOOP;
        END IF;
        notifications := notifications + cardinality(batch.ids);
    END LOOP;
END
$fn$;
