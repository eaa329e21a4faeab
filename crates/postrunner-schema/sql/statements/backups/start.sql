-- A backup begins: its row, committed before the dump's snapshot (so the dump holds it
-- as 'running'). $1 object key, $2 'schedule' or 'manual'.
INSERT INTO postrunner.backups (object_key, trigger) VALUES ($1, $2) RETURNING id
