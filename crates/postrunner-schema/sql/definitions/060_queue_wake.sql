-- Waking idle workers. They LISTEN on a channel whose name is a secret of this database
-- (postrunner.wake_channel, migration V29), and postrunner's statements NOTIFY it
-- through notify_workers(). PostgreSQL lets any login NOTIFY any channel and has no
-- privilege to revoke it, so a channel everyone knows would let an application login
-- make every idle worker run claims as fast as it can send NOTIFYs; one it cannot name,
-- it cannot reach (tests/tenancy.rs,
-- an_application_login_cannot_make_idle_workers_claim_by_notifying).
--
-- Only postrunner's processes may read the name (crates/postrunner-queue/src/wake.rs) or call
-- notify_workers (sql/definitions/540_security_grants.sql); triggers that run inside an application's
-- INSERT call it as the schema's owner (SECURITY DEFINER).
--
-- Locks: none.

-- The channel's name.
CREATE OR REPLACE FUNCTION postrunner.wake_channel_name() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
    SELECT name FROM postrunner.wake_channel
$$;

-- NOTIFY the workers' channel (PostgreSQL folds identical notifications within a
-- transaction into one).
CREATE OR REPLACE FUNCTION postrunner.notify_workers() RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
    SELECT pg_notify((SELECT name FROM postrunner.wake_channel), '')
$$;
