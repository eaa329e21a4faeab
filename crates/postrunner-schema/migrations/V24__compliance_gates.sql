-- Compliance gates (issue 10, parts 1 and 5). Function and view bodies are in sql/
-- (sql/routing/claim_messages.sql, sql/compliance/domain_gate.sql, sql/views/).
--
-- One-click unsubscribe is required by default: a client sends bulk mail unless it is
-- marked otherwise, and a bulk client's messages are routed only by workers that sign
-- RFC 8058 links (`worker --unsubscribe-url` with POSTRUNNER_UNSUBSCRIBE_KEY); while no
-- such worker runs, they wait and report_blocked says 'unsubscribe'. Existing clients
-- become bulk too: after this upgrade, run the workers with --unsubscribe-url, or mark
-- the clients that send only transactional mail `bulk = false`.
ALTER TABLE postrunner.clients
    -- Sends bulk (outreach) mail: every message needs a one-click unsubscribe link.
    ADD COLUMN bulk boolean NOT NULL DEFAULT true,
    -- A mailbox the client reads for unsubscribe requests by mail, advertised beside the
    -- one-click link (List-Unsubscribe: <https://...>, <mailto:...>). The client must
    -- honour what arrives there within two days (Gmail's and Yahoo's rule).
    ADD COLUMN unsubscribe_mailto text
        CHECK (unsubscribe_mailto IS NULL OR postrunner.is_email_address(unsubscribe_mailto)),
    -- A footer added to the bodies of messages that do not place {{unsubscribe_url}}
    -- themselves; it must contain {{unsubscribe_url}} (the message's own link).
    ADD COLUMN unsubscribe_footer text
        CHECK (unsubscribe_footer IS NULL OR (position('{{unsubscribe_url}}' IN unsubscribe_footer) > 0
                                              AND length(unsubscribe_footer) <= 2000
                                              AND unsubscribe_footer !~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'));

-- Whether a process signs unsubscribe links (shown in the workers view; report_blocked
-- uses it to say why a bulk client's messages wait).
ALTER TABLE postrunner.processes ADD COLUMN signs_unsubscribe boolean NOT NULL DEFAULT false;

-- Settings may also be one of a fixed list of words.
ALTER TABLE postrunner.settings DROP CONSTRAINT settings_type_check;
ALTER TABLE postrunner.settings
    ADD CONSTRAINT settings_type_check CHECK (type IN ('integer', 'number', 'integer_list', 'choice')),
    ADD COLUMN choices text[],
    ADD CONSTRAINT settings_choices CHECK ((type = 'choice') = (choices IS NOT NULL));

-- What a sender domain failing its SPF/DKIM/DMARC/MX checks does: 'warn' (an alert,
-- domain_checks_failed, resolved when it passes) or 'block' (also: its active sender
-- addresses are paused until it passes again). The settings_check trigger of a database
-- being upgraded predates the 'choice' type (its new body comes from sql/ after the
-- migrations), so it is off for this one row.
ALTER TABLE postrunner.settings DISABLE TRIGGER USER;
INSERT INTO postrunner.settings (name, value, note, type, choices) VALUES
    ('domain_check_policy', 'warn',
     'what a sender domain failing its DNS checks does: warn (alert) or block (alert, and its addresses are paused until it passes)',
     'choice', '{warn,block}');
ALTER TABLE postrunner.settings ENABLE TRIGGER USER;
