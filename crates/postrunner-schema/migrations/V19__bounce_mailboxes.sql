-- SMTP bounces over IMAP (issue 9, part 3): the mailbox an SMTP provider's bounce
-- address delivers to, read by the system.read_bounce_mail task (src/kinds/bounce_mail.rs)
-- once per tick across all replicas. Processed mail is flagged $PostrunnerDone (and
-- \Seen) after its events are committed; a message flagged late is read again and
-- stored nothing twice (events are unique per provider and dedupe key).

-- imaps://<user>@<host>[:port][/<folder>] (imap:// only for a local server), the user
-- percent-encoded (bounces%40acme.test); the password is read from the variable
-- bounce_mailbox_secret_env names, never stored.
ALTER TABLE postrunner.providers
    ADD COLUMN bounce_mailbox text
        CHECK (bounce_mailbox IS NULL OR bounce_mailbox ~ '^imaps?://[^/@[:space:]]+@[^/@[:space:]]+(/[^[:space:]]*)?$'),
    ADD COLUMN bounce_mailbox_secret_env text
        CHECK (bounce_mailbox_secret_env ~ '^[A-Z_][A-Z0-9_]*$'),
    ADD CONSTRAINT providers_bounce_mailbox_secret
        CHECK (bounce_mailbox IS NULL OR bounce_mailbox_secret_env IS NOT NULL);

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('read_bounce_mail', '*/30 * * * * *', 'system.read_bounce_mail', 60);
