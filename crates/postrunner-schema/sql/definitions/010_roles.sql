-- postrunner's database roles: three NOLOGIN group roles. `postrunner migrate` applies
-- this file first of the definitions (so that policies and grants can name the roles)
-- and sql/definitions/540_security_grants.sql last; running it by hand is harmless (idempotent). It
-- creates roles only when they are missing, which needs CREATEROLE (or a superuser): a
-- migrating owner without it needs the roles created beforehand.
--
--   postrunner_app      applications that enqueue mail: INSERT into postrunner.outbox,
--                       read their messages, cancel and re-drive them; only for the
--                       clients their login is bound to (postrunner.client_logins).
--   postrunner_reader   dashboards and psql reporting: the report_* views and `workers`,
--                       filtered by the same binding.
--   postrunner_service  the postrunner processes (worker, scheduler, web): everything in
--                       the schema.
--
-- Give your login roles membership, and bind application and reporting logins:
--   CREATE ROLE crm_acme LOGIN PASSWORD '...' IN ROLE postrunner_app;
--   INSERT INTO postrunner.client_logins (login, client) VALUES ('crm_acme', 'acme');
--   CREATE ROLE postrunner_worker LOGIN PASSWORD '...' IN ROLE postrunner_service;
--
-- Roles are cluster-wide, grants are per database.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['postrunner_app', 'postrunner_reader', 'postrunner_service'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by another session
            END;
        END IF;
    END LOOP;
END
$$;
