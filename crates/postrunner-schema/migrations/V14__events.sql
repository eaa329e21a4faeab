-- The feedback loop (issue 9): what providers tell postrunner after a send (delivered,
-- bounced, complained, unsubscribed, ...), stored once per provider event, and the
-- policies it feeds (suppressions, quarantine). Function bodies are in sql/feedback/.

-- Statuses an event moves a sent message to, only ever forward (sql/feedback/record_events.sql).
ALTER TYPE postrunner.message_status ADD VALUE IF NOT EXISTS 'delivered' AFTER 'sent';
ALTER TYPE postrunner.message_status ADD VALUE IF NOT EXISTS 'bounced' AFTER 'delivered';
ALTER TYPE postrunner.message_status ADD VALUE IF NOT EXISTS 'complained' AFTER 'bounced';

-- A recipient quarantined after repeated soft bounces: suppressed until expires_at.
ALTER TYPE postrunner.suppression_reason ADD VALUE IF NOT EXISTS 'soft_bounce';

CREATE TYPE postrunner.event_kind AS ENUM (
    'delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'rejected', 'opened', 'clicked'
);
CREATE TYPE postrunner.bounce_class AS ENUM ('hard', 'soft');

-- Where a provider's webhook secret is read from (an environment variable of the web
-- role, like secret_env for sending): SendGrid's verification public key, Mailgun's
-- webhook signing key, Resend's whsec_ secret, Postmark's `user:password`. The secret
-- itself is never stored.
ALTER TABLE postrunner.providers
    ADD COLUMN webhook_secret_env text CHECK (webhook_secret_env ~ '^[A-Z_][A-Z0-9_]*$'),
    -- Amazon SES: the SNS topics whose notifications are accepted (TopicArn).
    ADD COLUMN sns_topics text[] NOT NULL DEFAULT '{}';

-- One row per provider event, however often the provider delivers it: (provider,
-- dedupe_key) is the provider's own event identity (SendGrid sg_event_id, Svix msg id,
-- Mailgun event id and time, Postmark record type and id, SNS message id and recipient).
CREATE TABLE postrunner.events (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider            text NOT NULL,
    dedupe_key          text NOT NULL CHECK (length(dedupe_key) BETWEEN 1 AND 300),
    kind                postrunner.event_kind NOT NULL,
    bounce_class        postrunner.bounce_class CHECK ((kind = 'bounced') = (bounce_class IS NOT NULL)),
    -- The receiving server's or provider's words (recipient addresses redacted).
    diagnostic          text CHECK (length(diagnostic) <= 1000),
    -- Who the event is about: the suppression it may cause names them.
    recipient           text CHECK (length(recipient) <= 320),
    -- Our message, when the event carries our id or the provider's id of it; NULL for an
    -- event about a message postrunner does not know (kept and counted, not an error).
    message_id          uuid,
    client              text,
    provider_message_id text CHECK (length(provider_message_id) <= 300),
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    -- The provider's payload of this event as received; cleared after
    -- event_payload_days (setting) by the scheduler's cleanup.
    payload             jsonb,
    CONSTRAINT events_once UNIQUE (provider, dedupe_key)
);
CREATE INDEX events_message_idx ON postrunner.events (message_id) WHERE message_id IS NOT NULL;
-- Soft bounces of a recipient in the last days (quarantine policy).
CREATE INDEX events_soft_bounces_idx ON postrunner.events (client, lower(recipient), occurred_at)
    WHERE kind = 'bounced' AND bounce_class = 'soft';
CREATE INDEX events_received_idx ON postrunner.events (received_at);

-- Webhook nonces already honoured (Mailgun's token, which its HMAC covers instead of
-- the body): stored in the transaction that records the request's events, so a replay
-- is refused and a request whose commit failed can still be retried.
CREATE TABLE postrunner.webhook_nonces (
    provider text NOT NULL,
    nonce    text NOT NULL CHECK (length(nonce) BETWEEN 1 AND 300),
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, nonce)
);
CREATE INDEX webhook_nonces_seen_idx ON postrunner.webhook_nonces (seen_at);

-- Events find a message by the provider's id when they do not carry ours.
CREATE INDEX outbox_provider_message_idx ON postrunner.outbox (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Suppressions say what caused them, and a quarantine ends by itself.
ALTER TABLE postrunner.suppressions
    ADD COLUMN event_id bigint,
    ADD COLUMN expires_at timestamptz;

-- Per-client policy overrides (NULL: the setting of the same name).
ALTER TABLE postrunner.clients
    ADD COLUMN soft_bounce_limit integer CHECK (soft_bounce_limit BETWEEN 1 AND 1000),
    ADD COLUMN soft_bounce_days integer CHECK (soft_bounce_days BETWEEN 1 AND 365),
    ADD COLUMN quarantine_days integer CHECK (quarantine_days BETWEEN 1 AND 3650);

INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('soft_bounce_limit', '3', 'soft bounces of a recipient within soft_bounce_days that quarantine it', 'integer', 1, 1000),
    ('soft_bounce_days', '7', 'the window, in days, soft bounces are counted over', 'integer', 1, 365),
    ('quarantine_days', '30', 'how long a quarantine after soft bounces lasts, in days', 'integer', 1, 3650),
    ('event_payload_days', '30', 'how long an event keeps the provider''s raw payload, in days', 'integer', 0, 3650);
