-- Every backup, newest first (postrunner backup list, the retention policy).
SELECT id, object_key, status, started_at, finished_at, verified_at, size_bytes, sha256, error, trigger
  FROM postrunner.backups
 ORDER BY started_at DESC, id DESC
