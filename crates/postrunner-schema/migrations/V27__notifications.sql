-- Notifications from the alerts table (issue 11), for deployments without
-- Alertmanager: channels configured in SQL (email through a configured provider, a
-- Slack-compatible JSON webhook, SMS through Twilio's API), one notification per alert
-- state change and channel, sent as jobs with retries; a digest when many are due at
-- once. The definitions are in sql/alerts/notifications.sql.

-- Where notifications go. Secrets are never stored: a webhook URL that is itself a
-- secret (Slack's are) and an SMS provider's auth token are named by the environment
-- variable holding them (config.url_env, config.auth_token_env).
--
--   kind     target                  config
--   email    the recipient address   {"provider": "<providers.name>", "from": "alerts@..."}
--   webhook  (empty)                 {"url": "https://..."} or {"url_env": "VARIABLE"}
--   sms      the phone number (E.164) {"account_sid": "AC...", "from": "+1...",
--                                      "auth_token_env": "VARIABLE", "api_base": optional}
CREATE TABLE postrunner.notification_channels (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]*$' AND length(name) <= 64),
    kind        text NOT NULL CHECK (kind IN ('email', 'webhook', 'sms')),
    target      text NOT NULL DEFAULT '',
    config      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    -- The alert kinds this channel hears (NULL: all of them).
    alert_kinds text[],
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per alert state change and channel: the unique key is what makes a change
-- notify each channel once, whichever process saw it first.
CREATE TABLE postrunner.notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel    text NOT NULL REFERENCES postrunner.notification_channels (name) ON DELETE CASCADE,
    alert_id   bigint NOT NULL REFERENCES postrunner.alerts (id) ON DELETE CASCADE,
    transition text NOT NULL CHECK (transition IN ('fired', 'resolved')),
    -- pending: not yet given to a job; queued: its job runs it (job_id); sent;
    -- failed: its job ran out of attempts (last_error).
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'queued', 'sent', 'failed')),
    job_id     bigint,
    -- Several notifications sent as one digest share their job.
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    last_error text,
    UNIQUE (channel, alert_id, transition)
);
CREATE INDEX notifications_pending_idx ON postrunner.notifications (id) WHERE status = 'pending';
CREATE INDEX notifications_job_idx ON postrunner.notifications (job_id) WHERE job_id IS NOT NULL;

INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('notification_digest_after', '3',
     'more than this many notifications due for one channel at once are sent as one digest', 'integer', 0, 1000);

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('dispatch_notifications', '*/5 * * * * *', 'system.dispatch_notifications', 80);
