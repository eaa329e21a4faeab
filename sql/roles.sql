-- postrunner's database roles. Idempotent: run it as a superuser (or the owner of the
-- postrunner schema) in the postrunner database after every `postrunner migrate`:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Three NOLOGIN group roles; give your login roles membership:
--   CREATE ROLE crm LOGIN PASSWORD '...' IN ROLE postrunner_app;
--
--   postrunner_app      applications that enqueue mail: INSERT into postrunner.outbox,
--                       read it, and cancel (UPDATE of status). Nothing else: the
--                       outbox triggers that touch the queue run as their owner.
--   postrunner_reader   dashboards and psql reporting: the report_* views and `workers`.
--   postrunner_service  the postrunner processes (worker, scheduler, web): everything
--                       in the schema.
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

GRANT USAGE ON SCHEMA postrunner TO postrunner_app, postrunner_reader, postrunner_service;

-- Applications.
GRANT SELECT, INSERT ON postrunner.outbox TO postrunner_app;
GRANT UPDATE (status) ON postrunner.outbox TO postrunner_app;
GRANT SELECT ON postrunner.clients, postrunner.directions TO postrunner_app;
GRANT SELECT ON postrunner.report_outbox TO postrunner_app;
GRANT EXECUTE ON FUNCTION postrunner.retry_message(uuid) TO postrunner_app;

-- Reporting: every report_* view, and the live processes.
DO $$
DECLARE
    v text;
BEGIN
    FOR v IN SELECT viewname FROM pg_views WHERE schemaname = 'postrunner' AND (viewname LIKE 'report\_%' OR viewname = 'workers') LOOP
        EXECUTE format('GRANT SELECT ON postrunner.%I TO postrunner_reader', v);
    END LOOP;
END
$$;

-- The processes.
GRANT ALL ON ALL TABLES IN SCHEMA postrunner TO postrunner_service;
GRANT ALL ON ALL SEQUENCES IN SCHEMA postrunner TO postrunner_service;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA postrunner TO postrunner_service;
