-- Exports the snapshot for pg_dump --snapshot.
SELECT pg_export_snapshot()
