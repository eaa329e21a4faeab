-- Promises that hold where features meet (issue 18). Function bodies are in sql/:
-- routing/claim_messages.sql and routing/lane_wakeups.sql (lanes), queue/wake.sql (the
-- workers' channel), feedback/record_events.sql (matching, nonces, recipients),
-- common/validation.sql (time zones), verify/ (postrunner verify).

-- 1. Recipient time zones: canonical IANA names only, from this list (what the server's
-- tz database holds under the IANA areas, plus UTC), so that what an application writes
-- cannot make lanes without bound (a POSIX string, a case variant or a `posix/` copy
-- each made a lane of its own). An operator may add a name the list lacks.
CREATE TABLE postrunner.time_zones (
    name text PRIMARY KEY
);
INSERT INTO postrunner.time_zones (name)
SELECT name FROM pg_timezone_names
 WHERE name ~ '^(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)/[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)?$'
UNION
SELECT 'UTC';

-- 2. Lanes in line. queue_at is a lane's place: the claim walks lanes in (queue_at, id)
-- order through an index, so its cost does not grow with the number of lanes. Every
-- lane a claim examines goes to the back (queue_at = the claim's instant, or its gate's
-- time when it is gated), whether or not it sent; a lane found with no message waiting
-- is parked (queue_at NULL, out of the index) until something makes one of its jobs
-- available again, which leaves a row in lane_wakeups for the next claim to bring it
-- back (sql/routing/lane_wakeups.sql). New lanes join at the back, not the front.
ALTER TABLE postrunner.lanes
    ADD COLUMN queue_at timestamptz DEFAULT now(),
    -- The lane's client sends bulk mail (clients.bulk, kept in step by a trigger): only
    -- claimers that sign one-click unsubscribe links serve it.
    ADD COLUMN bulk boolean NOT NULL DEFAULT false;
UPDATE postrunner.lanes l
   SET queue_at = l.served_at,
       bulk = c.bulk
  FROM postrunner.clients c
 WHERE c.name = l.client;
CREATE INDEX lanes_queue_idx ON postrunner.lanes (queue_at, id) WHERE queue_at IS NOT NULL;
CREATE INDEX lanes_queue_transactional_idx ON postrunner.lanes (queue_at, id) WHERE queue_at IS NOT NULL AND NOT bulk;
-- A client's own line of lanes.
CREATE INDEX lanes_client_queue_idx ON postrunner.lanes (client, queue_at, id) WHERE queue_at IS NOT NULL;

-- Clients take turns too: each claim first serves the first lane in line of the few
-- clients whose turn is oldest, then fills up from the line of all lanes, so a client
-- with thousands of lanes cannot keep another waiting for thousands of claims.
CREATE TABLE postrunner.client_turns (
    client  text PRIMARY KEY REFERENCES postrunner.clients (name) ON UPDATE CASCADE ON DELETE CASCADE,
    turn_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX client_turns_turn_idx ON postrunner.client_turns (turn_at, client);
INSERT INTO postrunner.client_turns (client) SELECT name FROM postrunner.clients;

-- Lanes whose jobs became available since a claim may have parked them: written by
-- whoever makes a lane's job available (the outbox INSERT, promotion, rescue,
-- release, re-drive, ...), read and deleted by claims. Insert-only for writers, so an
-- application's INSERT never waits for a claim or another application, whatever its
-- isolation level; no key, so two writers never wait for each other either.
CREATE TABLE postrunner.lane_wakeups (
    lane integer NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);

-- 2b. The channel idle workers LISTEN on. Any login may NOTIFY any channel (PostgreSQL
-- has no privilege for it), so the channel's name is a secret of this database, read
-- only by postrunner's processes: a login that does not know it cannot wake workers.
CREATE TABLE postrunner.wake_channel (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    name     text NOT NULL CHECK (name ~ '^postrunner_jobs_[0-9a-f]{32}$')
);
INSERT INTO postrunner.wake_channel (name)
VALUES ('postrunner_jobs_' || replace(gen_random_uuid()::text, '-', ''));

-- 3a. Nonces are honoured once per signing key, not per provider row: Mailgun signs
-- with one key per account, and several provider rows (one per sending domain) share
-- it. The scope is a digest of the key (src/feedback/mod.rs), never the key.
ALTER TABLE postrunner.webhook_nonces RENAME COLUMN provider TO scope;

-- 3c. An event is about its message's recipient; when the provider named another
-- address, that address is kept here (and flagged by being set), not acted upon.
ALTER TABLE postrunner.events ADD COLUMN reported_recipient text CHECK (length(reported_recipient) <= 320);

-- 2.1 Events find their message among the messages with an attempt at the reporting
-- provider (a re-routed message has attempts at two).
CREATE INDEX send_attempts_message_idx ON postrunner.send_attempts (message_id, provider);

-- 2.3 An uncertain attempt closed by the erasure of its recipient.
ALTER TABLE postrunner.send_attempts DROP CONSTRAINT send_attempts_resolution_check;
ALTER TABLE postrunner.send_attempts ADD CONSTRAINT send_attempts_resolution_check
    CHECK (resolution IN ('event', 'lookup', 'resent', 'given_up', 'erased'));
