-- One provider's row: what its adapter is built from.
SELECT kind::text AS kind, endpoint, secret_env, region, bounce_address FROM postrunner.providers WHERE name = $1
