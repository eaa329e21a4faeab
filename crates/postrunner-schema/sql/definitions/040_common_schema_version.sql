-- The newest migration applied to this database (refinery's history, which the
-- migrating owner's session keeps outside the schema, in its search path: `public`
-- unless the owner has a schema of its own name). Read through this function so that
-- postrunner's processes, logged in as their own non-owner logins, need no privilege
-- outside the schema (`/readyz` as postrunner_web: tests/roles.rs,
-- each_role_works_as_its_own_login_in_a_database_the_owner_migrated).
--
-- Locks: none.
CREATE OR REPLACE FUNCTION postrunner.schema_version() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, "$user", public, pg_temp AS $$
    SELECT max(version) FROM refinery_schema_history
$$;
