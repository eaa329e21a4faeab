-- Tenant isolation (issue 8): an application or reporting login is bound by the
-- operator to the clients whose mail it may see and write; row-level security on the
-- tables applications read enforces it (policies in sql/security/tenancy.sql).
--
--   INSERT INTO postrunner.client_logins (login, client) VALUES ('crm_acme', 'acme');
--   INSERT INTO postrunner.client_logins (login, client) VALUES ('agency_dashboard', NULL);  -- every client
--
-- A login is bound when it is, or is a member of, the role named in `login`: a group
-- role bound to a client covers every login in it.
CREATE TABLE postrunner.client_logins (
    login      name NOT NULL,
    -- NULL: every client, present and future.
    client     text REFERENCES postrunner.clients (name) ON UPDATE CASCADE ON DELETE CASCADE,
    note       text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX client_logins_login_client_idx ON postrunner.client_logins (login, coalesce(client, ''));

ALTER TABLE postrunner.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.directions ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.client_logins ENABLE ROW LEVEL SECURITY;
