-- Automatic pauses (issue 9): a sender address whose recent sends bounce or are
-- complained about too often, or a direction or client bouncing too much, stops
-- sending until an operator resumes it. Function bodies: sql/feedback/pauses.sql.

-- When and why postrunner paused it (status_reason says why for addresses), and when
-- it was last resumed: the rates count only sends after that.
ALTER TABLE postrunner.sender_addresses
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN resumed_at timestamptz;
ALTER TABLE postrunner.directions
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_reason text,
    ADD COLUMN resumed_at timestamptz,
    -- Thresholds (NULL: the client's, else the setting of the same name).
    ADD COLUMN pause_address_bounce_rate numeric CHECK (pause_address_bounce_rate > 0 AND pause_address_bounce_rate <= 1),
    ADD COLUMN pause_address_complaint_rate numeric CHECK (pause_address_complaint_rate > 0 AND pause_address_complaint_rate <= 1),
    ADD COLUMN pause_bounce_rate numeric CHECK (pause_bounce_rate > 0 AND pause_bounce_rate <= 1);
ALTER TABLE postrunner.clients
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_reason text,
    ADD COLUMN resumed_at timestamptz,
    ADD COLUMN pause_address_bounce_rate numeric CHECK (pause_address_bounce_rate > 0 AND pause_address_bounce_rate <= 1),
    ADD COLUMN pause_address_complaint_rate numeric CHECK (pause_address_complaint_rate > 0 AND pause_address_complaint_rate <= 1),
    ADD COLUMN pause_bounce_rate numeric CHECK (pause_bounce_rate > 0 AND pause_bounce_rate <= 1);

INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('pause_address_bounce_rate', '0.05', 'share of hard bounces among a sender address''s last sends that pauses it', 'number', 0.001, 1),
    ('pause_address_complaint_rate', '0.003', 'share of complaints among a sender address''s last sends that pauses it', 'number', 0.0001, 1),
    ('pause_address_window', '100', 'how many of an address''s last sends its rates are taken over', 'integer', 10, 100000),
    ('pause_address_min_sends', '20', 'sends an address needs in its window before it can be paused', 'integer', 1, 100000),
    ('pause_bounce_rate', '0.10', 'share of hard bounces over pause_group_days that pauses a direction or a client', 'number', 0.001, 1),
    ('pause_group_days', '7', 'the days a direction''s or client''s bounce rate is taken over', 'integer', 1, 90),
    ('pause_group_min_sends', '100', 'sends a direction or client needs in that window before it can be paused', 'integer', 1, 10000000);

-- An address's latest sends, newest first (its rates).
CREATE INDEX send_attempts_address_sent_idx ON postrunner.send_attempts (from_address, id) WHERE outcome = 'sent';
-- A client's hard bounces and complaints over days (direction and client rates).
CREATE INDEX events_bad_idx ON postrunner.events (client, occurred_at)
    WHERE kind = 'complained' OR (kind = 'bounced' AND bounce_class = 'hard');

-- A lane whose direction or client is paused waits for 'paused'.
ALTER TABLE postrunner.lanes DROP CONSTRAINT lanes_waiting_for_check;
ALTER TABLE postrunner.lanes ADD CONSTRAINT lanes_waiting_for_check CHECK (waiting_for IN (
    'window', 'pacing', 'daily_limit', 'provider_rate', 'budget', 'provider_down', 'provider_disabled',
    'no_address', 'no_provider', 'paused'));
