-- Fire and resolve alerts (postrunner.evaluate_alerts, migrations/V10__provider_health.sql).
SELECT fired, resolved FROM postrunner.evaluate_alerts()
