-- Removed from storage by the retention policy ($1 object keys).
UPDATE postrunner.backups SET status = 'pruned' WHERE object_key = ANY ($1::text[])
