-- Each role's privileges, exactly: applied last by `postrunner migrate`, after every
-- other definition, so that it covers whatever they created. tests/privileges.rs
-- checks every table, view and function against an expected table, so a new object
-- cannot silently be open to everyone.
--
-- Functions are executable by PUBLIC by default in PostgreSQL: that is revoked for the
-- whole schema, and each role gets what it calls. Views run with their owner's
-- privileges on tables, but functions they call (and row-level policies' functions)
-- run as the caller: the reporting role can execute the helpers its views use.
--
-- Locks: none beyond the catalog rows the grants change.

GRANT USAGE ON SCHEMA postrunner TO postrunner_app, postrunner_reader, postrunner_service;
REVOKE ALL ON ALL TABLES IN SCHEMA postrunner FROM PUBLIC, postrunner_app, postrunner_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA postrunner FROM PUBLIC, postrunner_app, postrunner_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA postrunner FROM PUBLIC, postrunner_app, postrunner_reader;

-- The processes: everything.
GRANT ALL ON ALL TABLES IN SCHEMA postrunner TO postrunner_service;
GRANT ALL ON ALL SEQUENCES IN SCHEMA postrunner TO postrunner_service;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA postrunner TO postrunner_service;

-- Applications: their clients' messages (row-level security), cancel and re-drive.
GRANT SELECT, INSERT ON postrunner.outbox TO postrunner_app;
GRANT UPDATE (status) ON postrunner.outbox TO postrunner_app;
GRANT SELECT ON postrunner.clients, postrunner.directions, postrunner.report_outbox TO postrunner_app;
GRANT EXECUTE ON FUNCTION postrunner.retry_message(uuid) TO postrunner_app;

-- Reporting: the report_* views and the live processes.
DO $$
DECLARE
    v text;
BEGIN
    FOR v IN SELECT viewname FROM pg_views
              WHERE schemaname = 'postrunner' AND (viewname LIKE 'report\_%' OR viewname = 'workers') LOOP
        EXECUTE format('GRANT SELECT ON postrunner.%I TO postrunner_reader', v);
    END LOOP;
END
$$;
-- Read by functions the views call (warm-up and breaker settings); no secrets.
GRANT SELECT ON postrunner.settings TO postrunner_reader;

-- Both: what their statements call as themselves (the status guard, the policies,
-- the INSERT's access check).
GRANT SELECT ON postrunner.client_logins TO postrunner_app, postrunner_reader;
GRANT EXECUTE ON FUNCTION
    postrunner.may_act_for(text),
    postrunner.bound_clients(),
    postrunner.acts_as_service()
    TO postrunner_app, postrunner_reader;
GRANT EXECUTE ON FUNCTION
    postrunner.reject(text, text, text)
    TO postrunner_app;
-- The helpers the report views call.
GRANT EXECUTE ON FUNCTION
    postrunner.effective_daily_limit(integer, date, date),
    postrunner.warmup_limit(integer),
    postrunner.setting_number(text, float8),
    postrunner.local_day(timestamptz, text),
    postrunner.counts_as_sent(postrunner.attempt_outcome),
    postrunner.breaker_cooldown(),
    postrunner.utc_month(timestamptz),
    postrunner.monthly_sends(date)
    TO postrunner_reader;
