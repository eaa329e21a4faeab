-- Every database metric with its labels, for a scrape of /metrics/database
-- (sql/definitions/450_metrics_snapshot.sql). Read-only, inside the scrape's time limit.
SELECT metric, labels, value FROM postrunner.metrics_snapshot()
