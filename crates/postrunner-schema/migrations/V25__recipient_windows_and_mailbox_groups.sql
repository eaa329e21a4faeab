-- Sending windows in the recipient's time zone, and throttles per recipient mailbox
-- provider (issue 10, parts 6 and 7). Function bodies: sql/routing/ (lane_key.sql,
-- mailbox_groups.sql, route_lane.sql) and sql/compliance/recipient_domains.sql.
--
-- Both are decided per lane, where the routed claim already gates a whole set of
-- messages with one row (ready_at, waiting_for): a lane is now a direction's messages
-- to one recipient time zone (only for directions whose window follows the
-- recipient) and one mailbox group (only for clients with group limits). A closed
-- window or a spent group limit gates its lane until it opens or frees, so waiting
-- messages cost nothing per message and use no capacity.

-- 6. A message may name its recipient's IANA time zone (checked by the INSERT).
ALTER TABLE postrunner.outbox ADD COLUMN recipient_time_zone text;

-- A direction's window is in its own (or its client's) time zone, or, with
-- window_basis = 'recipient', in each message's recipient_time_zone (falling back to
-- the direction's when a message has none): "9 to 17 on weekdays where they are".
ALTER TABLE postrunner.directions
    ADD COLUMN window_basis text NOT NULL DEFAULT 'direction' CHECK (window_basis IN ('direction', 'recipient'));

-- 7. Mailbox providers that judge a sender by everything it sends them (Gmail,
-- Outlook, Yahoo, ...), and the MX host suffixes by which a domain they host (a
-- company on Google Workspace or Microsoft 365) is recognised.
CREATE TABLE postrunner.mailbox_groups (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    mx_suffixes text[] NOT NULL DEFAULT '{}',
    note        text
);
INSERT INTO postrunner.mailbox_groups (name, mx_suffixes, note) VALUES
    ('google',    '{google.com,googlemail.com}', 'Gmail and Google Workspace'),
    ('microsoft', '{protection.outlook.com,outlook.com,hotmail.com}', 'Outlook.com, Hotmail and Microsoft 365'),
    ('yahoo',     '{yahoodns.net}', 'Yahoo and AOL'),
    ('apple',     '{mail.icloud.com}', 'iCloud');

-- Recipient domains and their group: listed by an operator (source 'listed'), or
-- found from the domain's MX hosts (source 'mx'; mailbox_group NULL when none
-- matched). 'pending': seen in a message of a client with group limits, not looked
-- up yet; its messages wait for the lookup (system.classify_recipient_domains).
CREATE TABLE postrunner.recipient_domains (
    domain        text PRIMARY KEY CHECK (domain ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'),
    mailbox_group text REFERENCES postrunner.mailbox_groups (name) ON UPDATE CASCADE ON DELETE SET NULL,
    source        text NOT NULL DEFAULT 'listed' CHECK (source IN ('listed', 'mx', 'pending')),
    mx_hosts      text,
    looked_up_at  timestamptz,
    -- When it was first seen pending: a lookup that fails (the resolver is down) is
    -- tried again for 10 minutes, then the domain counts as in no group.
    seen_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (source <> 'pending' OR mailbox_group IS NULL)
);
CREATE INDEX recipient_domains_pending_idx ON postrunner.recipient_domains (domain) WHERE source = 'pending';
INSERT INTO postrunner.recipient_domains (domain, mailbox_group) VALUES
    ('gmail.com', 'google'), ('googlemail.com', 'google'),
    ('outlook.com', 'microsoft'), ('hotmail.com', 'microsoft'), ('live.com', 'microsoft'), ('msn.com', 'microsoft'),
    ('hotmail.co.uk', 'microsoft'), ('hotmail.fr', 'microsoft'), ('hotmail.de', 'microsoft'), ('outlook.de', 'microsoft'),
    ('outlook.fr', 'microsoft'), ('live.co.uk', 'microsoft'),
    ('yahoo.com', 'yahoo'), ('ymail.com', 'yahoo'), ('rocketmail.com', 'yahoo'), ('yahoo.co.uk', 'yahoo'),
    ('yahoo.fr', 'yahoo'), ('yahoo.de', 'yahoo'), ('aol.com', 'yahoo'),
    ('icloud.com', 'apple'), ('me.com', 'apple'), ('mac.com', 'apple');

-- Per client and group: at most per_hour messages in a client-local clock hour and
-- per_day in a client-local day, across all its addresses, directions and workers.
CREATE TABLE postrunner.mailbox_group_limits (
    client        text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE ON DELETE CASCADE,
    mailbox_group text NOT NULL REFERENCES postrunner.mailbox_groups (name) ON UPDATE CASCADE ON DELETE CASCADE,
    per_hour      integer CHECK (per_hour >= 0),
    per_day       integer CHECK (per_day >= 0),
    PRIMARY KEY (client, mailbox_group),
    CONSTRAINT mailbox_group_limits_some CHECK (per_hour IS NOT NULL OR per_day IS NOT NULL)
);

-- Their counters, one row per limit (created with it), locked by the routed claim with
-- SKIP LOCKED like the provider and address counters. hour is a client-local
-- wall-clock hour, day a client-local day; neither ever moves backwards.
CREATE TABLE postrunner.mailbox_group_usage (
    client        text NOT NULL,
    mailbox_group text NOT NULL,
    hour          timestamp NOT NULL DEFAULT '-infinity',
    sent_in_hour  integer NOT NULL DEFAULT 0,
    day           date NOT NULL DEFAULT '-infinity',
    sent_on_day   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (client, mailbox_group),
    FOREIGN KEY (client, mailbox_group) REFERENCES postrunner.mailbox_group_limits (client, mailbox_group)
        ON UPDATE CASCADE ON DELETE CASCADE
);

-- The ledger says which group a reservation counted in (NULL: none), so capacity
-- given back returns to it, and sends per group can be counted.
ALTER TABLE postrunner.send_attempts ADD COLUMN mailbox_group text;

-- Lanes per (direction, recipient time zone, mailbox group). '' means none: the
-- direction's own window, no group. '?' as a group: the recipients' domain is being
-- looked up.
ALTER TABLE postrunner.lanes
    ADD COLUMN recipient_zone text NOT NULL DEFAULT '',
    ADD COLUMN mailbox_group text NOT NULL DEFAULT '';
ALTER TABLE postrunner.lanes DROP CONSTRAINT lanes_client_direction_key;
ALTER TABLE postrunner.lanes ADD CONSTRAINT lanes_key UNIQUE (client, direction, recipient_zone, mailbox_group);
ALTER TABLE postrunner.lanes DROP CONSTRAINT lanes_waiting_for_check;
ALTER TABLE postrunner.lanes ADD CONSTRAINT lanes_waiting_for_check CHECK (waiting_for IN (
    'window', 'pacing', 'daily_limit', 'provider_rate', 'budget', 'provider_down', 'provider_disabled',
    'no_address', 'no_provider', 'paused', 'mailbox_group', 'mailbox_lookup'));

-- Recipient domains waiting for their MX lookup are looked up every 15 seconds.
INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('classify_recipient_domains', '*/15 * * * * *', 'system.classify_recipient_domains', 60);
