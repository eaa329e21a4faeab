-- Folds old send ledger rows into the daily rollups (sql/definitions/440_metrics_rollups.sql).
SELECT postrunner.rollup_sends()
