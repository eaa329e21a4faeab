-- The dump and its manifest are in storage ($1 id).
UPDATE postrunner.backups
   SET status = 'uploaded', finished_at = now(), size_bytes = $2, sha256 = $3, schema_version = $4, row_counts = $5, error = NULL
 WHERE id = $1
