-- Health probes of providers $1 succeeded: a degraded provider is up again; a down one
-- on trial counts one trial success each (never enough alone to close its breaker).
-- See postrunner.record_provider_successes in sql/definitions/220_providers_breaker.sql.
SELECT postrunner.record_provider_successes($1)
