-- Hand pending notifications to system.notify jobs (postrunner.dispatch_notifications,
-- sql/alerts/notifications.sql).
SELECT jobs, notifications FROM postrunner.dispatch_notifications()
