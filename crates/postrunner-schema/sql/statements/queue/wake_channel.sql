-- The workers' NOTIFY channel, a secret of the database (sql/definitions/060_queue_wake.sql).
SELECT postrunner.wake_channel_name()
