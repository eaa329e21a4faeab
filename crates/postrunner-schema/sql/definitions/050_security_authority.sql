-- Who a session is, as the triggers and row-level policies need to know it. Authority
-- comes from role membership of the session's current role, never from a setting a
-- session could SET for itself.
--
--   postrunner_service  the postrunner processes: every client's rows, and the writes
--                       only postrunner makes (a message's final status);
--   a bound login       an application or reporting login the operator bound to one or
--                       more clients (or to every client) in postrunner.client_logins.
--
-- Locks: none. These run as the caller (SECURITY INVOKER): current_user is the role
-- whose authority is being asked about.

-- True for the postrunner processes: members of postrunner_service (superusers are
-- members of every role). A single expression, so that PostgreSQL inlines it where it
-- is called per row (trigger WHEN clauses): a function call per row of every batch is
-- what a busy worker would otherwise pay. The SECURITY DEFINER functions acting for
-- postrunner run as the schema's owner, whose writes are mirrors of the queue and pass
-- the status guard as such; an owner that also writes statuses by hand grants itself
-- postrunner_service.
CREATE OR REPLACE FUNCTION postrunner.acts_as_service() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_has_role(current_user, 'postrunner_service', 'USAGE')
$$;
