-- A step failed ($1 object key, $2 what went wrong). A pruned backup stays pruned.
UPDATE postrunner.backups SET status = 'failed', finished_at = coalesce(finished_at, now()), error = $2
 WHERE object_key = $1 AND status <> 'pruned'
