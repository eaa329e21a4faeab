-- Tenant isolation: row-level security on the tables applications and reporting
-- logins read, so that a login bound to client acme (postrunner.client_logins) can
-- neither read, insert, cancel nor re-drive another client's mail (tests/tenancy.rs).
--
--   postrunner_service   every row (the processes);
--   postrunner_app       the outbox rows of its clients: SELECT, INSERT, UPDATE (status
--                        only, by column privilege: cancel and re-drive), and its
--                        clients' rows of clients and directions;
--   postrunner_reader    reads no table directly: the report_* views filter by the same
--                        binding (sql/views/).
-- The tables' owner and superusers are not subject to row-level security; the SECURITY
-- DEFINER functions acting for postrunner run as the owner.
--
-- Locks: DROP/CREATE POLICY and ENABLE ROW LEVEL SECURITY take ACCESS EXCLUSIVE on
-- outbox, clients, directions and client_logins until the definitions' transaction
-- commits; definitions are applied only when a file changed (an upgrade), never on a
-- routine start. Policies are replaced as a whole on every apply (no CREATE OR REPLACE
-- POLICY in PostgreSQL 15).

-- May the current role act for `p_client`? For the processes, yes; for a bound login,
-- when one of its bindings names that client or every client. With p_client NULL: may
-- it see what belongs to no single client (queue depth, provider health), which only
-- the processes and logins bound to every client may.
CREATE OR REPLACE FUNCTION postrunner.may_act_for(p_client text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT postrunner.acts_as_service()
        OR EXISTS (SELECT 1
                     FROM postrunner.client_logins b
                     JOIN pg_roles r ON r.rolname = b.login
                    WHERE (b.client IS NULL OR b.client = p_client)
                      AND pg_has_role(current_user, r.oid, 'USAGE'))
$$;

-- The clients the current role is bound to by name (for the report views, which
-- filter by `postrunner.may_act_for(NULL) OR client = ANY (postrunner.bound_clients())`,
-- each evaluated once per query rather than once per row).
CREATE OR REPLACE FUNCTION postrunner.bound_clients() RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT b.client) FILTER (WHERE b.client IS NOT NULL), '{}')
      FROM postrunner.client_logins b
      JOIN pg_roles r ON r.rolname = b.login
     WHERE pg_has_role(current_user, r.oid, 'USAGE')
$$;

-- Bindings: a login sees its own (so that may_act_for can read them as the login).
DROP POLICY IF EXISTS own_bindings ON postrunner.client_logins;
CREATE POLICY own_bindings ON postrunner.client_logins FOR SELECT
    USING (login IN (SELECT r.rolname FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'USAGE')));
DROP POLICY IF EXISTS service_all ON postrunner.client_logins;
CREATE POLICY service_all ON postrunner.client_logins TO postrunner_service USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS service_all ON postrunner.outbox;
CREATE POLICY service_all ON postrunner.outbox TO postrunner_service USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS bound_client ON postrunner.outbox;
CREATE POLICY bound_client ON postrunner.outbox TO postrunner_app, postrunner_reader
    USING (postrunner.may_act_for(client)) WITH CHECK (postrunner.may_act_for(client));

DROP POLICY IF EXISTS service_all ON postrunner.clients;
CREATE POLICY service_all ON postrunner.clients TO postrunner_service USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS bound_client ON postrunner.clients;
CREATE POLICY bound_client ON postrunner.clients FOR SELECT TO postrunner_app, postrunner_reader
    USING (postrunner.may_act_for(name));

DROP POLICY IF EXISTS service_all ON postrunner.directions;
CREATE POLICY service_all ON postrunner.directions TO postrunner_service USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS bound_client ON postrunner.directions;
CREATE POLICY bound_client ON postrunner.directions FOR SELECT TO postrunner_app, postrunner_reader
    USING (postrunner.may_act_for(client));

-- Enabled here too, after the policies (idempotent). Migration V13 enables it first:
-- between V13's commit and this file's, on the one upgrade that adds V13, application
-- and reporting logins see no rows (row-level security without a policy refuses
-- everything: it fails closed), and the processes, the owner and superusers are
-- unaffected.
ALTER TABLE postrunner.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.directions ENABLE ROW LEVEL SECURITY;
ALTER TABLE postrunner.client_logins ENABLE ROW LEVEL SECURITY;

-- An INSERT for a client the login is not bound to is refused by name, before the row
-- reaches the policy's generic "violates row-level security policy". Runs first of the
-- outbox's BEFORE INSERT triggers (they fire in name order), as the caller.
CREATE OR REPLACE FUNCTION postrunner.outbox_check_access() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    IF NOT postrunner.may_act_for(NEW.client) THEN
        PERFORM postrunner.reject(format('this login may not write mail for client %L', NEW.client),
                                  'the operator binds logins to clients in postrunner.client_logins',
                                  'insufficient_privilege');
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER outbox_access
    BEFORE INSERT ON postrunner.outbox
    FOR EACH ROW WHEN (NOT postrunner.acts_as_service())
    EXECUTE FUNCTION postrunner.outbox_check_access();
