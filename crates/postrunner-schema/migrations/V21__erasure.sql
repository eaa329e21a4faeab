-- GDPR erasure and export (issue 10, part 3). Function bodies are in sql/gdpr/.
--
-- An erased person's address is kept only as a salted hash, per client: enough to keep
-- them from ever being mailed again (a later INSERT to them ends 'suppressed', not
-- stored in clear) and to replay the erasure after restoring an older backup. The salt
-- is this database's own, readable only by its owner and postrunner's roles.
CREATE TABLE postrunner.erasure_salt (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    salt     bytea NOT NULL
);
-- 244 bits from the server's strong random source (gen_random_uuid).
INSERT INTO postrunner.erasure_salt (salt) VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));

-- One row per erased (client, person): the log of erasures and the hashed suppression.
CREATE TABLE postrunner.erasures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client       text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    address_hash text NOT NULL CHECK (address_hash ~ '^[0-9a-f]{64}$'),
    erased_at    timestamptz NOT NULL DEFAULT now(),
    -- What the last erasure found, per kind of row.
    erased       jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX erasures_client_hash_idx ON postrunner.erasures (client, address_hash);
-- Erasing walks a client's messages to one person.
CREATE INDEX outbox_client_recipient_idx ON postrunner.outbox (client, lower(to_address));
CREATE INDEX events_client_recipient_idx ON postrunner.events (client, lower(recipient));
