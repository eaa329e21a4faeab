-- The operator's summary as one JSON document (sql/definitions/460_metrics_status.sql).
-- Read-only.
SELECT postrunner.status_summary()
