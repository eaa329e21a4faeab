-- Fire and resolve alerts (postrunner.evaluate_alerts, sql/definitions/420_alerts_rules.sql).
SELECT fired, resolved FROM postrunner.evaluate_alerts()
