-- A send through provider $1 failed because of the provider (error $2): count it
-- against the provider's circuit breaker, and pause the provider for $3 seconds when it
-- said when to come back (429 Retry-After; NULL: no hint). Returns its new health state.
-- See postrunner.record_provider_failure in sql/providers/breaker.sql.
SELECT postrunner.record_provider_failure($1, $2, make_interval(secs => $3::float8))::text
