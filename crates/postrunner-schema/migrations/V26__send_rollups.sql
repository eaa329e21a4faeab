-- Rollups of the ledger (issue 11): sends per hour and per month, so that metrics, cost
-- reports and the status page never scan the whole of send_attempts. The rollup task
-- (system.rollup_sends, every minute; sql/metrics/rollups.sql) adds the ledger rows
-- that have settled (reserved over an hour ago: released or not, their outcome no
-- longer changes the counts) past a watermark; readers add the few rows past the
-- watermark live (postrunner.unrolled_sends).

-- Per UTC hour, client, direction and provider: reservations that count (capacity
-- used, billed) and reservations the provider accepted ('sent').
CREATE TABLE postrunner.send_rollups_hourly (
    hour      timestamptz NOT NULL,
    client    text NOT NULL,
    direction text NOT NULL,
    provider  text NOT NULL,
    used      bigint NOT NULL DEFAULT 0,
    sent      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, client, direction, provider)
);

-- Per UTC month, client and provider: the same (costs per month).
CREATE TABLE postrunner.send_rollups_monthly (
    month    date NOT NULL,
    client   text NOT NULL,
    provider text NOT NULL,
    used     bigint NOT NULL DEFAULT 0,
    sent     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (month, client, provider)
);

-- How far the ledger is rolled up: every send_attempts row with id <= last_id.
CREATE TABLE postrunner.rollup_progress (
    name      text PRIMARY KEY,
    last_id   bigint NOT NULL DEFAULT 0,
    rolled_at timestamptz
);
INSERT INTO postrunner.rollup_progress (name) VALUES ('sends');

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('rollup_sends', '0 * * * * *', 'system.rollup_sends', 30);
