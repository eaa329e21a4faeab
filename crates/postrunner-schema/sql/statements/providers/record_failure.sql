-- A send through provider $1 failed because of the provider (error $2): count it
-- against the provider's circuit breaker, and pause the provider for $3 seconds when it
-- said when to come back (429 Retry-After; NULL: no hint). Returns its new health state
-- and the one before, so that a change of state is logged once, not every failure.
-- See postrunner.record_provider_failure in sql/definitions/220_providers_breaker.sql.
WITH before AS (
    SELECT h.state::text AS state FROM postrunner.provider_health h WHERE h.provider = $1
)
SELECT postrunner.record_provider_failure($1, $2, make_interval(secs => $3::float8))::text AS state,
       (SELECT state FROM before) AS previous
