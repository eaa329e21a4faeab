-- A send through provider $1 failed because of the provider (error $2): count it
-- against the provider's circuit breaker. Returns the provider's new health state.
-- See postrunner.record_provider_failure in migrations/V10__provider_health.sql.
SELECT postrunner.record_provider_failure($1, $2)::text
