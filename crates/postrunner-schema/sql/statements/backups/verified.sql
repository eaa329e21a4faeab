-- The restore check passed ($1 object key).
UPDATE postrunner.backups SET status = 'verified', verified_at = now(), error = NULL WHERE object_key = $1
