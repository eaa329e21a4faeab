-- Hand pending notifications to system.notify jobs (postrunner.dispatch_notifications,
-- sql/definitions/430_alerts_notifications.sql).
SELECT jobs, notifications FROM postrunner.dispatch_notifications()
