-- Configuration tables of the public interface (shared spec, "Configuration tables").
-- Behaviour that reads them (routing, quotas, health, budgets) comes in later
-- migrations; the constraints are here from the start so that bad configuration is
-- refused when it is written, not when a message needs it.
CREATE TABLE postrunner.clients (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    time_zone  text NOT NULL DEFAULT 'UTC' CHECK (postrunner.is_time_zone(time_zone)),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A campaign stream of a client, with the window in which its messages may go out.
CREATE TABLE postrunner.directions (
    client       text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    -- ISO days of week (1 = Monday ... 7 = Sunday) on which sending is allowed.
    send_days    smallint[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}'
                 CHECK (send_days <@ '{1,2,3,4,5,6,7}'::smallint[] AND cardinality(send_days) > 0),
    window_start time NOT NULL DEFAULT '00:00',
    -- '24:00' means end of day.
    window_end   time NOT NULL DEFAULT '24:00',
    -- NULL: the client's time zone.
    time_zone    text CHECK (time_zone IS NULL OR postrunner.is_time_zone(time_zone)),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, name),
    CONSTRAINT directions_window_not_empty CHECK (window_start < window_end)
);

CREATE TYPE postrunner.provider_kind AS ENUM ('smtp', 'sendgrid', 'mailgun', 'ses', 'postmark', 'resend', 'log');

CREATE TABLE postrunner.providers (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    kind           postrunner.provider_kind NOT NULL,
    -- Base URL for HTTP APIs, or smtp://host:port / smtps://host:port.
    endpoint       text CHECK (endpoint ~ '^(https?|smtps?)://[^[:space:]]+$'),
    -- The NAME of the environment variable holding the API key or password: secrets
    -- never live in the database.
    secret_env     text CHECK (secret_env ~ '^[A-Z_][A-Z0-9_]*$'),
    region         text,
    priority       integer NOT NULL DEFAULT 0,
    weight         integer NOT NULL DEFAULT 100 CHECK (weight > 0),
    per_minute     integer CHECK (per_minute > 0),
    price_per_1000 numeric(12, 4) NOT NULL DEFAULT 0 CHECK (price_per_1000 >= 0),
    monthly_fee    numeric(12, 2) NOT NULL DEFAULT 0 CHECK (monthly_fee >= 0),
    monthly_budget numeric(12, 2) CHECK (monthly_budget >= 0),
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Which providers a direction may use; a direction with no rows may use all of its
-- client's providers.
CREATE TABLE postrunner.direction_providers (
    client    text NOT NULL,
    direction text NOT NULL,
    provider  text NOT NULL REFERENCES postrunner.providers (name) ON UPDATE CASCADE,
    priority  integer NOT NULL DEFAULT 0,
    weight    integer NOT NULL DEFAULT 100 CHECK (weight > 0),
    PRIMARY KEY (client, direction, provider),
    FOREIGN KEY (client, direction) REFERENCES postrunner.directions (client, name)
        ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE TYPE postrunner.address_status AS ENUM ('active', 'paused', 'retired');

CREATE TABLE postrunner.sender_addresses (
    address           text PRIMARY KEY CHECK (postrunner.is_email_address(address)),
    provider          text NOT NULL REFERENCES postrunner.providers (name) ON UPDATE CASCADE,
    client            text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    display_name      text,
    daily_limit       integer NOT NULL DEFAULT 50 CHECK (daily_limit > 0),
    warmup_started_on date,
    status            postrunner.address_status NOT NULL DEFAULT 'active',
    status_reason     text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sender_addresses_lower_idx ON postrunner.sender_addresses (lower(address));
CREATE INDEX sender_addresses_client_idx ON postrunner.sender_addresses (client, provider) WHERE status = 'active';

CREATE TYPE postrunner.suppression_reason AS ENUM ('hard_bounce', 'complaint', 'unsubscribe', 'manual');

-- Recipients a client must not write to again. Matched case-insensitively.
CREATE TABLE postrunner.suppressions (
    client     text NOT NULL REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    address    text NOT NULL CHECK (postrunner.is_email_address(address)),
    reason     postrunner.suppression_reason NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX suppressions_client_address_idx ON postrunner.suppressions (client, lower(address));
