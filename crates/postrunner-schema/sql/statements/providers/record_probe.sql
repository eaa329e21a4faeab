-- A health probe of provider $1 took $2 ms and succeeded ($3) or failed with $4.
INSERT INTO postrunner.provider_probes (provider, latency_ms, ok, error) VALUES ($1, $2, $3, left($4, 500))
