-- Fire and resolve alerts (postrunner.evaluate_alerts, sql/alerts/rules.sql).
SELECT fired, resolved FROM postrunner.evaluate_alerts()
