-- A process announces itself at start (see the `workers` view).
INSERT INTO postrunner.processes (id, role, host, pid, version, concurrency, heartbeat_interval, signs_unsubscribe)
VALUES ($1, $2, $3, $4, $5, $6, $7::interval, $8)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
